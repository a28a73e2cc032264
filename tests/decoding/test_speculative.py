import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from specjax.decoding import engine, speculative
from specjax.decoding.stats import init_stats
from tests.helpers import LAW_KW, chisquare_pvalue, tiny_model

ALPHA = 1e-3  # significance level of the distribution tests
_accept_and_correct = speculative.accept_and_correct  # the real rule, kept before monkeypatching
PROMPTS = [[1, 2, 3, 1, 2], list(range(5, 45)), [9]]  # very different lengths


def _target():
  return tiny_model(seed=3)


def _drafters(target):
  return {"draft_model": tiny_model(seed=4, num_layers=1, d_model=32, d_ff=64),
          "self_draft": sj.self_draft(target, num_layers=1),
          "prompt_lookup": sj.prompt_lookup(max_ngram=3)}


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("drafter", ["draft_model", "self_draft", "prompt_lookup"])
def test_greedy_speculative_equals_greedy_target(k, drafter):
  target = _target()
  want = sj.generate(target, PROMPTS, max_new_tokens=24, eos_id=None)
  got = sj.speculative_generate(target, _drafters(target)[drafter], PROMPTS, k=k,
                                max_new_tokens=24, eos_id=None)
  np.testing.assert_array_equal(got.tokens, want.tokens)
  np.testing.assert_array_equal(got.lengths, want.lengths)
  _assert_counts_add_up(got.stats, k, 24, draft_calls_per_block=0 if drafter == "prompt_lookup"
                        else k)


def _assert_counts_add_up(stats, k, max_new_tokens, draft_calls_per_block):
  """Without stop ids: the loop ran until the slowest row's last block, and each row's
  blocks cover its budget (sum of accepted + 1 >= budget) with no block to spare."""
  h_BG1 = np.asarray(stats.accepted_histogram_BG)
  blocks_B = h_BG1.sum(1)
  assert int(stats.target_calls) == blocks_B.max()
  assert int(stats.draft_calls) == int(stats.target_calls) * draft_calls_per_block
  covered_B = (h_BG1 * (np.arange(k + 1) + 1)).sum(1)
  np.testing.assert_array_equal(stats.new_tokens_B, max_new_tokens)
  assert (covered_B >= max_new_tokens).all() and (covered_B < max_new_tokens + k + 1).all()


@pytest.mark.parametrize("drafter", ["draft_model", "self_draft", "prompt_lookup"])
def test_ragged_batch_rows_equal_rows_alone(drafter):
  target = _target()
  d = _drafters(target)[drafter]
  batch = sj.speculative_generate(target, d, PROMPTS, k=3, max_new_tokens=16, eos_id=None)
  for b, p in enumerate(PROMPTS):
    alone = sj.speculative_generate(target, d, [p], k=3, max_new_tokens=16, eos_id=None)
    np.testing.assert_array_equal(batch.tokens[b], alone.tokens[0])
    np.testing.assert_array_equal(batch.stats.accepted_histogram_BG[b],
                                  alone.stats.accepted_histogram_BG[0])


def test_eos_ends_rows_independently():
  target = _target()
  free = sj.generate(target, PROMPTS, max_new_tokens=16, eos_id=None)
  eos = int(free.tokens[1, 5])
  want = sj.generate(target, PROMPTS, max_new_tokens=16, eos_id=eos)
  got = sj.speculative_generate(target, sj.self_draft(target, 1), PROMPTS, k=4,
                                max_new_tokens=16, eos_id=eos)
  np.testing.assert_array_equal(got.lengths, want.lengths)
  np.testing.assert_array_equal(got.tokens, want.tokens)
  assert int(got.lengths[1]) <= 6


def test_any_of_several_stop_ids_ends_a_row():
  target = _target()
  free = sj.generate(target, PROMPTS, max_new_tokens=16, eos_id=None)
  stops = [int(free.tokens[0, 6]), int(free.tokens[1, 2])]
  want = sj.generate(target, PROMPTS, max_new_tokens=16, eos_id=stops)
  for b in range(len(PROMPTS)):
    row = np.asarray(free.tokens[b])
    n = int(np.argmax(np.isin(row, stops))) + 1 if np.isin(row, stops).any() else 16
    assert int(want.lengths[b]) == n
  got = sj.speculative_generate(target, sj.self_draft(target, 1), PROMPTS, k=4,
                                max_new_tokens=16, eos_id=stops)
  np.testing.assert_array_equal(got.lengths, want.lengths)
  np.testing.assert_array_equal(got.tokens, want.tokens)
  assert int(got.lengths[0]) <= 7 and int(got.lengths[1]) <= 3


def test_pad_multiple_shares_one_compilation_and_keeps_outputs():
  target = _target()
  d = sj.self_draft(target, 1)
  prompts = [[1, 2, 3], list(range(1, 20)), list(range(5, 45))]
  want = [sj.speculative_generate(target, d, [p], k=3, max_new_tokens=8) for p in prompts]
  jits = speculative._prefill_jit, speculative._loop_jit
  before = [f._cache_size() for f in jits]
  got = [sj.speculative_generate(target, d, [p], k=3, max_new_tokens=8, pad_multiple=64)
         for p in prompts]
  assert [f._cache_size() for f in jits] == [n + 1 for n in before]
  for w, g in zip(want, got):
    np.testing.assert_array_equal(w.tokens, g.tokens)


def test_identical_draft_accepts_everything():
  target = _target()
  for s, key in [(sj.Sampling(0.0), None), (sj.Sampling(0.9, top_k=20), jax.random.key(0))]:
    out = sj.speculative_generate(target, target, PROMPTS, k=4, max_new_tokens=20, sampling=s,
                                  key=key, eos_id=None)
    assert out.stats.acceptance_rate == 1.0 and out.stats.alpha == 1.0
    assert out.stats.mean_accepted_length == 5.0
    assert out.stats.target_calls == 4  # 20 tokens, 5 per call
    np.testing.assert_array_equal(out.stats.accepted_histogram, [0, 0, 0, 0, 12])


@pytest.mark.parametrize("drafter", ["draft_model", "self_draft"])
def test_caches_after_a_run_equal_a_fresh_prefill(drafter):
  target = _target()
  d = _drafters(target)[drafter]
  out, t_cache, d_cache = sj.speculative_generate(
      target, d, PROMPTS, k=3, max_new_tokens=13, sampling=sj.Sampling(1.0),
      key=jax.random.key(1), eos_id=None, return_state=True)
  for b, p in enumerate(PROMPTS):
    seq = p + out.row(b)
    n = len(seq)
    for model, cache, live in [(target, t_cache, n - 1), (d, d_cache, max(n - 2, 0))]:
      assert int(cache.length_B[b]) == live
      fresh = sj.init_cache(model.config, 1, cache.capacity)
      _, fresh = sj.forward(model.params, model.config, jnp.asarray([seq[:live]]), fresh)
      for got, want in zip(cache.k + cache.v, fresh.k + fresh.v):
        np.testing.assert_allclose(got[b, :, :live], want[0, :, :live], atol=1e-5)


# ---- lossless: the joint law of the first tokens equals the target's ----

def _exact_tokens(model, prompt, sampling, n):
  """The target's exact joint law of its first n sampled tokens: float64 [V] * n."""
  V = model.config.vocab_size
  law = np.ones(())
  for m in range(n):
    prefixes = [list(c) for c in itertools.product(range(V), repeat=m)]  # every m-token prefix
    logits, _ = sj.forward(model.params, model.config, jnp.asarray([prompt + c for c in prefixes]))
    p = np.asarray(sj.warp(logits[:, -1], sampling), np.float64).reshape((V,) * m + (V,))
    law = law[..., None] * p
  return law


def _exact_two_tokens(model, prompt, sampling):
  return _exact_tokens(model, prompt, sampling, 2)


def _spec_counts(target, draft, prompt, sampling, k, max_new_tokens, n=50_000, batch=12_500):
  """Counts of SpS's first max_new_tokens tokens, [V] * M; one more axis (size 2) says
  whether the row's length was exactly max_new_tokens (index 0) or not (index 1)."""
  V, M = target.config.vocab_size, max_new_tokens
  counts = np.zeros((V,) * M + (2,))
  for i in range(n // batch):
    out = sj.speculative_generate(target, draft, [prompt] * batch, k=k, max_new_tokens=M,
                                  sampling=sampling, key=jax.random.key(200 + i), eos_id=None)
    t = np.asarray(out.tokens)
    np.add.at(counts, tuple(t.T) + ((np.asarray(out.lengths) != M).astype(int),), 1)
  return counts


def _with_length(law):  # the exact law gives every row exactly max_new_tokens tokens
  return np.stack([law, np.zeros_like(law)], axis=-1)


def _spec_pairs(target, draft, prompt, sampling, n=50_000, batch=12_500, k=2):
  return _spec_counts(target, draft, prompt, sampling, k, 2, n, batch)[..., 0]


def _accept_if_q_le_p(p_BG1V, q_BGV, draft_BG, key):
  """Biased: accepts iff q(x) <= p(x), without the random min(1, p/q) test."""
  p_x = jnp.take_along_axis(p_BG1V[:, :-1], draft_BG[..., None], -1)[..., 0]
  q_x = jnp.take_along_axis(q_BGV, draft_BG[..., None], -1)[..., 0]
  n = jnp.sum(jnp.cumprod((q_x <= p_x).astype(jnp.int32), axis=1), axis=1)
  q_pad = jnp.concatenate([q_BGV, jnp.zeros_like(q_BGV[:, :1])], axis=1)
  p_at = jnp.take_along_axis(p_BG1V, n[:, None, None], 1)[:, 0]
  q_at = jnp.take_along_axis(q_pad, n[:, None, None], 1)[:, 0]
  r = jnp.maximum(p_at - q_at, 0)
  s = r.sum(-1, keepdims=True)
  return n, jnp.where(s > 0, r / jnp.where(s > 0, s, 1), p_at)


def _correction_from_p(p_BG1V, q_BGV, draft_BG, key):
  """Biased: samples the correction from p instead of the residual max(0, p - q)."""
  n, _ = _accept_and_correct(p_BG1V, q_BGV, draft_BG, key)
  return n, jnp.take_along_axis(p_BG1V, n[:, None, None], 1)[:, 0]


@pytest.mark.slow
@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.0, 0, 0.8)])
def test_speculative_samples_follow_the_target_distribution(temperature, top_k, top_p,
                                                            monkeypatch):
  target = tiny_model(seed=11, **LAW_KW)
  draft = tiny_model(seed=12, **LAW_KW)  # a deliberately different model
  prompt = [1, 5, 2]
  s = sj.Sampling(temperature, top_k, top_p)
  exact = _exact_two_tokens(target, prompt, s)
  counts = _spec_pairs(target, draft, prompt, s)
  assert chisquare_pvalue(counts, exact) > ALPHA
  # The draft disagrees with the target, so the test below is not vacuous.
  assert np.abs(_exact_two_tokens(draft, prompt, s) - exact).sum() > 0.2
  # Negative controls: the same test rejects two known-biased accept rules.
  for biased in (_accept_if_q_le_p, _correction_from_p):
    jax.clear_caches()
    monkeypatch.setattr(speculative, "accept_and_correct", biased)
    assert chisquare_pvalue(_spec_pairs(target, draft, prompt, s), exact) < ALPHA, biased
  jax.clear_caches()


def _bonus_from_q(p_BG1V, q_BGV, draft_BG, key):
  """Biased: after k accepted drafts, the bonus token comes from q_k instead of p_{k+1}."""
  n, nxt = _accept_and_correct(p_BG1V, q_BGV, draft_BG, key)
  return n, jnp.where((n == q_BGV.shape[1])[:, None], q_BGV[:, -1], nxt)


def _tiny_pair():
  return tiny_model(seed=11, **LAW_KW), tiny_model(seed=12, **LAW_KW)


@pytest.mark.slow
def test_the_bonus_token_follows_the_target_distribution(monkeypatch):
  """k = 1 and 3 tokens: whenever the first draft is accepted, the second token is the
  bonus from p_2, and the third can be a bonus too."""
  target, draft = _tiny_pair()
  prompt, s = [1, 5, 2], sj.Sampling(1.0)
  exact = _with_length(_exact_tokens(target, prompt, s, 3))
  assert chisquare_pvalue(_spec_counts(target, draft, prompt, s, k=1, max_new_tokens=3),
                          exact) > ALPHA
  jax.clear_caches()
  monkeypatch.setattr(speculative, "accept_and_correct", _bonus_from_q)
  biased = _spec_counts(target, draft, prompt, s, k=1, max_new_tokens=3)
  assert chisquare_pvalue(biased, exact) < ALPHA
  jax.clear_caches()


def _cut_one_too_many(draft_BG, n_acc_B, next_B, room_B, eos_id):
  """Biased: a block cut by the token budget emits one token past it."""
  emit, n_emit, hit = _emit_block(draft_BG, n_acc_B, next_B, room_B + 1, eos_id)
  return emit, n_emit, hit


def _cut_ends_with_next(draft_BG, n_acc_B, next_B, room_B, eos_id):
  """Biased: a block cut by the token budget ends with the correction/bonus token."""
  emit, n_emit, hit = _emit_block(draft_BG, n_acc_B, next_B, room_B, eos_id)
  cut_B = n_acc_B + 1 > room_B
  last_BG1 = (jnp.arange(emit.shape[1]) == (n_emit - 1)[:, None]) & cut_B[:, None]
  return jnp.where(last_BG1, next_B[:, None], emit), n_emit, hit


_emit_block = engine.emit_block  # the real rule, kept before monkeypatching


@pytest.mark.slow
def test_a_block_cut_by_the_token_budget_follows_the_target_distribution(monkeypatch):
  """k = 3, 3 tokens: the first block emits up to 4 tokens and is cut at 3."""
  target, draft = _tiny_pair()
  prompt, s = [1, 5, 2], sj.Sampling(0.8, top_p=0.9)
  exact = _with_length(_exact_tokens(target, prompt, s, 3))
  assert chisquare_pvalue(_spec_counts(target, target, prompt, s, k=3, max_new_tokens=3),
                          exact) > ALPHA  # the target as its own draft: every block is cut
  assert chisquare_pvalue(_spec_counts(target, draft, prompt, s, k=3, max_new_tokens=3),
                          exact) > ALPHA
  for biased in (_cut_one_too_many, _cut_ends_with_next):
    jax.clear_caches()
    monkeypatch.setattr(engine, "emit_block", biased)
    assert chisquare_pvalue(_spec_counts(target, target, prompt, s, k=3, max_new_tokens=3),
                            exact) < ALPHA, biased
  jax.clear_caches()


@pytest.mark.parametrize("kwargs,msg", [
    (dict(k=0), "k .* must be an integer >= 1"),
    (dict(k=2.0), "k .* must be an integer >= 1"),
    (dict(max_new_tokens=510), "prompt 0 is too long"),
    (dict(max_new_tokens=505, k=8), "exceeds the cache capacity"),
    (dict(prompts=[[1, 99]]), "outside the vocab"),
    (dict(prompts=[[]]), "empty"),
    (dict(sampling=sj.Sampling(0.5)), "PRNG key"),
])
def test_bad_input_raises_before_compiling(kwargs, msg):
  target = _target()
  before = speculative._prefill_jit._cache_size()
  kw = dict(prompts=[[1, 2, 3]], k=3, max_new_tokens=8)
  kw.update(kwargs)
  with pytest.raises(ValueError, match=msg):
    sj.speculative_generate(target, sj.self_draft(target, 1), **kw)
  assert speculative._prefill_jit._cache_size() == before


def test_mismatched_vocab_and_bad_drafters_are_rejected():
  target = _target()
  with pytest.raises(ValueError, match="vocab sizes differ"):
    sj.speculative_generate(target, tiny_model(vocab_size=32), [[1, 2]], k=2)
  with pytest.raises(ValueError, match="num_layers"):
    sj.self_draft(target, num_layers=3)
  with pytest.raises(ValueError, match="draft must be"):
    sj.speculative_generate(target, "not a model", [[1, 2]], k=2)
  with pytest.raises(ValueError, match="min_ngram"):
    sj.prompt_lookup(max_ngram=0)


def test_alpha_counts_only_verified_drafts():
  stats = init_stats(2, 2).replace(  # no per-row counts: a fixed k = 2 is assumed
      accepted_histogram_BG=jnp.array([[2, 1, 0], [0, 0, 3]]), drafted_B=None, rejected_B=None)
  # 7 drafts accepted; 3 iterations ended in a rejection; the 3 drafts after those never ran.
  assert stats.alpha == 7 / 10
  assert stats.acceptance_rate == 7 / 12
  assert stats.mean_accepted_length == (2 * 1 + 1 * 2 + 3 * 3) / 6


def test_prompt_lookup_proposes_the_continuation_of_the_last_match():
  pl = sj.prompt_lookup(max_ngram=2).replace(vocab_size=16)
  seq = jnp.zeros((1, 32), jnp.int32).at[0, :9].set(jnp.array([7, 8, 9, 10, 11, 3, 7, 8, 9]))
  toks, q, _ = pl.propose((), seq, jnp.array([9]), 3, sj.Sampling(0.0), jax.random.key(0))
  np.testing.assert_array_equal(toks, [[10, 11, 3]])  # '8 9' matched at positions 1-2
  np.testing.assert_array_equal(q.argmax(-1), toks)
  toks, _, _ = pl.propose((), seq, jnp.array([4]), 3, sj.Sampling(0.0), jax.random.key(0))
  np.testing.assert_array_equal(toks, [[10, 10, 10]])  # no match: repeat the last token
