"""Adaptive K: the length policy, exactness (greedy and in distribution) and the counts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from specjax.decoding import adaptive, speculative
from specjax.decoding.stats import Stats
from tests.decoding.test_speculative import (ALPHA, PROMPTS, _accept_and_correct, _drafters,
                                             _exact_tokens, _target, _tiny_pair, _with_length)
from tests.helpers import chisquare_pvalue


def _policy(k, **kw):
  return sj.AdaptiveK(**kw).for_k(k, kw.get("c", 0.05))


def test_lengths_follow_the_running_acceptance():
  policy = _policy(4)
  assert policy.lengths == (0, 1, 2, 4)
  counts_B2 = jnp.asarray([[40.0, 0.0], [0.0, 40.0], [0.0, 0.0]])  # always / never / no history
  m_B = np.asarray(adaptive.choose_lengths(policy, counts_B2))
  assert m_B[0] == 4 and m_B[1] == 0 and m_B[2] in policy.lengths  # never: ArS steps
  # Free verification and drafting: the longest draft always pays.
  free = _policy(4, c=0.0, r_slope=0.0)
  assert (np.asarray(adaptive.choose_lengths(free, counts_B2)) == 4).all()
  # The variant: the shortest compiled length covering every live row.
  live_B = jnp.asarray([True, True, False])
  assert int(adaptive.variant_for(policy, jnp.asarray([1, 2, 4]), live_B)) == 2
  assert int(adaptive.variant_for(policy, jnp.asarray([1, 1, 4]), live_B)) == 1
  assert int(adaptive.variant_for(policy, jnp.asarray([0, 0, 4]), live_B)) == 0


def test_measured_iteration_costs_replace_the_cost_model():
  counts_B2 = jnp.asarray([[3.0, 1.0]])  # a = 0.67 with the prior
  linear = _policy(4, c=0.0, r_slope=0.0)  # free drafts: the longest
  assert int(adaptive.choose_lengths(linear, counts_B2)[0]) == 4
  # An iteration of 4 drafts measured at 3x an ArS step: 1 draft is worth more.
  measured = sj.AdaptiveK(lengths=(4, 1, 2), iteration_costs=(3.0, 1.2, 1.9)).for_k(4, 0.0)
  assert measured.lengths == (1, 2, 4) and measured.iteration_costs == (1.2, 1.9, 3.0)
  assert int(adaptive.choose_lengths(measured, counts_B2)[0]) == 1


def test_counts_decay_and_skip_ended_rows():
  counts_B2 = jnp.asarray([[2.0, 1.0], [5.0, 0.0]])
  new = adaptive.update_counts(counts_B2, jnp.asarray([3, 0]), jnp.asarray([False, True]),
                               jnp.asarray([True, False]), decay=0.5)
  np.testing.assert_allclose(new, [[4.0, 0.5], [5.0, 0.0]])


@pytest.mark.parametrize("kw,msg", [
    (dict(c=-1.0), "costs"), (dict(decay=2.0), "decay"), (dict(lengths=(-1, 2)), "lengths"),
    (dict(lengths=(2, 2)), "lengths"), (dict(r_slope=float("nan")), "r_slope"),
    (dict(c=True), "c must be a finite number"), (dict(iteration_costs=(1.0,)), "iteration_costs"),
    (dict(lengths=(1, 2), iteration_costs=(1.0, -1.0)), "iteration_costs")])
def test_bad_policies_are_refused(kw, msg):
  with pytest.raises(ValueError, match=msg):
    sj.AdaptiveK(**kw)


def test_lengths_must_end_at_k_and_the_policy_type_is_checked():
  target = _target()
  with pytest.raises(ValueError, match="must end at k"):
    sj.speculative_generate(target, sj.prompt_lookup(), [[1, 2]], k=4,
                            adaptive_k=sj.AdaptiveK(lengths=(1, 2)))
  with pytest.raises(ValueError, match="adaptive_k must be"):
    sj.speculative_generate(target, sj.prompt_lookup(), [[1, 2]], k=4, adaptive_k=3)


def _all_drafters(target):
  return dict(_drafters(target), feature_draft=sj.feature_draft(target, jax.random.key(5)))


# Drafting pays only when the row's acceptance is high: rows switch between no draft (ArS
# steps) and 2 or 4 drafts.
SWITCHING = sj.AdaptiveK(lengths=(0, 2, 4), iteration_costs=(1.0, 1.5, 2.0))


@pytest.mark.parametrize("policy", ["default", "switching"])
@pytest.mark.parametrize("drafter", ["draft_model", "self_draft", "prompt_lookup",
                                     "feature_draft"])
def test_greedy_adaptive_equals_greedy_target_on_a_ragged_batch(drafter, policy):
  target = _target()
  want = sj.generate(target, PROMPTS, max_new_tokens=24, eos_id=None)
  d = _all_drafters(target)[drafter]
  # The self draft accepts often (long drafts), the others seldom: both ends are exercised.
  got = sj.speculative_generate(target, d, PROMPTS, k=4, max_new_tokens=24, eos_id=None,
                                adaptive_k=sj.AdaptiveK() if policy == "default" else SWITCHING)
  np.testing.assert_array_equal(got.tokens, want.tokens)
  np.testing.assert_array_equal(got.lengths, want.lengths)
  st = got.stats
  blocks_B = np.asarray(st.accepted_histogram_BG).sum(1)
  drafted_B, rejected_B = np.asarray(st.drafted_B), np.asarray(st.rejected_B)
  assert (drafted_B <= 4 * blocks_B).all()
  assert (rejected_B <= blocks_B).all()
  assert st.accepted <= st.drafted
  # Each row drafted no more than its variant: draft calls are those of the variants run.
  per_call = {"draft_model": 1, "self_draft": 1, "prompt_lookup": 0, "feature_draft": 1}[drafter]
  assert int(st.draft_calls) <= int(st.target_calls) * (4 + (drafter == "feature_draft")) * \
      per_call
  if policy == "switching" and drafter != "self_draft":  # seldom accepted: ArS steps too
    assert (drafted_B < 2 * blocks_B).all()


# At the prior (a = 0.5) no length pays: 1 / 1.0 > 1.75 / 2.0 > 1.94 / 3.0.
NEVER = sj.AdaptiveK(lengths=(0, 2, 4), iteration_costs=(1.0, 2.0, 3.0))


def test_a_policy_that_never_drafts_runs_ars(monkeypatch):
  """Rows at m = 0 only decay their counts: a policy choosing 0 at the prior never drafts,
  so the engine runs ArS itself: the same tokens as sj.generate with the same key."""
  assert adaptive.never_drafts(NEVER.for_k(4, 0.05))
  assert not adaptive.never_drafts(SWITCHING.for_k(4, 0.05))
  assert not adaptive.never_drafts(sj.AdaptiveK(lengths=(2, 4)).for_k(4, 0.05))  # no 0
  target = _target()
  real_loop = speculative._loop_jit
  monkeypatch.setattr(speculative, "_loop_jit", lambda *a, **k: pytest.fail("the loop ran"))
  for s, key in ((sj.Sampling(0.0), None), (sj.Sampling(1.0), jax.random.key(3))):
    want = sj.generate(target, PROMPTS, max_new_tokens=12, sampling=s, key=key)
    got = sj.speculative_generate(target, sj.self_draft(target, num_layers=1), PROMPTS, k=4,
                                  max_new_tokens=12, sampling=s, key=key, adaptive_k=NEVER)
    np.testing.assert_array_equal(got.tokens, want.tokens)
    np.testing.assert_array_equal(got.lengths, want.lengths)
    st = got.stats
    assert st.drafted == 0 and st.rejected == 0 and int(st.draft_calls) == 0
    assert st.accepted_histogram.tolist() == [int(np.sum(want.lengths)), 0, 0, 0, 0]
  # Asked for its caches and draft state, the call runs the loop (at m = 0 throughout).
  monkeypatch.setattr(speculative, "_loop_jit", real_loop)
  out, _, _ = sj.speculative_generate(target, sj.prompt_lookup(), PROMPTS, k=4,
                                      max_new_tokens=6, adaptive_k=NEVER, return_state=True)
  assert out.stats.drafted == 0 and int(out.stats.target_calls) > 0


def test_a_fixed_k_counts_k_drafts_per_block():
  target = _target()
  out = sj.speculative_generate(target, sj.prompt_lookup(), PROMPTS, k=3, max_new_tokens=16,
                                eos_id=None)
  h = out.stats.accepted_histogram
  assert out.stats.drafted == 3 * h.sum() and out.stats.rejected == h[:-1].sum()
  summed = Stats.from_histogram(h)  # records without the counts: the same figures
  assert summed.alpha == out.stats.alpha and summed.acceptance_rate == out.stats.acceptance_rate


def test_alpha_with_adaptive_counts():
  # 4 blocks; 4 drafts accepted, 7 drafted; 2 blocks ended in a rejection, 2 were cut short.
  st = Stats.from_histogram([1, 2, 1], drafted=7, rejected=2)
  assert st.alpha == 4 / 6 and st.acceptance_rate == 4 / 7


# ---- lossless: adaptive lengths keep the target's law ----

# Rows start long (a prior of 0.5 prefers k = 2), and a row whose first draft was
# rejected drafts 1 next: over 3 tokens, batches mix lengths inside one variant.
POLICY = sj.AdaptiveK(c=0.05, r_slope=0.08, lengths=(1, 2))
# A row whose first draft was rejected takes ArS steps (m = 0) next, the others draft 2.
POLICY_0 = sj.AdaptiveK(lengths=(0, 2), iteration_costs=(1.0, 1.6))


def _adaptive_counts(target, draft, prompt, sampling, n=50_000, batch=12_500, k=2, M=3,
                     policy=POLICY):
  V = target.config.vocab_size
  counts = np.zeros((V,) * M + (2,))
  for i in range(n // batch):
    out = sj.speculative_generate(target, draft, [prompt] * batch, k=k, max_new_tokens=M,
                                  sampling=sampling, key=jax.random.key(300 + i), eos_id=None,
                                  adaptive_k=policy)
    t = np.asarray(out.tokens)
    np.add.at(counts, tuple(t.T) + ((np.asarray(out.lengths) != M).astype(int),), 1)
  return counts, out.stats


def _residual_at_the_cut(p_BG1V, q_BGV, draft_BG, key, length_B=None):
  """Biased: a row cut short samples its next token from p - q there, as if it had drafted
  one more token and seen it rejected, instead of from p."""
  n, nxt = _accept_and_correct(p_BG1V, q_BGV, draft_BG, key, length_B)
  cut = n == length_B
  q_pad = jnp.concatenate([q_BGV, jnp.zeros_like(q_BGV[:, :1])], axis=1)
  p_at = jnp.take_along_axis(p_BG1V, n[:, None, None], 1)[:, 0]
  q_at = jnp.take_along_axis(q_pad, n[:, None, None], 1)[:, 0]
  r = jnp.maximum(p_at - q_at, 0)
  s = r.sum(-1, keepdims=True)
  return n, jnp.where(cut[:, None] & (s > 0), r / jnp.where(s > 0, s, 1), nxt)


@pytest.mark.slow
@pytest.mark.parametrize("policy", [POLICY, POLICY_0], ids=["lengths_1_2", "lengths_0_2"])
def test_adaptive_samples_follow_the_target_distribution(monkeypatch, policy):
  target, draft = _tiny_pair()
  prompt, s = [1, 5, 2], sj.Sampling(1.0)
  exact = _with_length(_exact_tokens(target, prompt, s, 3))
  counts, stats = _adaptive_counts(target, draft, prompt, s, policy=policy)
  assert chisquare_pvalue(counts, exact) > ALPHA
  # Not vacuous: some blocks drafted fewer than 2 (cut short in a batch that drafted 2).
  assert stats.drafted < 2 * stats.accepted_histogram.sum()
  jax.clear_caches()
  monkeypatch.setattr(speculative, "accept_and_correct", _residual_at_the_cut)
  biased, _ = _adaptive_counts(target, draft, prompt, s, policy=policy)
  assert chisquare_pvalue(biased, exact) < ALPHA
  jax.clear_caches()
