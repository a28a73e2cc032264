import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from specjax import training
from specjax.models import drafts
from tests.decoding.test_speculative import ALPHA, _exact_two_tokens, _spec_pairs
from tests.helpers import LAW_KW, chisquare_pvalue, tiny_model

IDS = [0, 3, 5, 9, 17, 30, 41, 63]


def _small(target, ids=IDS, seed=1):
  return drafts.small_draft(target, jax.random.key(seed), d_model=32, num_layers=1, num_heads=2,
                            num_kv_heads=1, head_dim=16, d_ff=64, vocab_ids=ids)


def test_frequent_ids_are_the_most_frequent_plus_the_forced_ones():
  tokens = np.array([5, 5, 5, 2, 2, 7, 1])
  np.testing.assert_array_equal(drafts.frequent_ids(tokens, 10, 3, always=[9]), [2, 5, 9])
  with pytest.raises(ValueError, match="sub-vocab size"):
    drafts.frequent_ids(tokens, 10, 0)


def test_sub_vocab_logits_are_minus_inf_outside_the_subset():
  d = _small(tiny_model(seed=3))
  logits, _ = sj.forward(d.params, d.config, jnp.array([[1, 3, 64 - 1, 2]]))
  outside = np.setdiff1d(np.arange(64), IDS)
  assert np.all(np.isneginf(np.asarray(logits)[..., outside]))
  assert np.all(np.isfinite(np.asarray(logits)[..., IDS]))
  head, _ = sj.forward(d.params, d.config, jnp.array([[1, 3, 63, 2]]), head_logits=True)
  np.testing.assert_array_equal(head, np.asarray(logits)[..., IDS])
  with pytest.raises(ValueError, match="distinct ids"):
    _small(tiny_model(seed=3), ids=[1, 1, 2])


def test_untrained_adapter_is_the_self_draft_on_its_subset():
  target = tiny_model(seed=3)
  plain = sj.self_draft(target, 1)
  adapted = drafts.adapted_self_draft(target, 1, jax.random.key(0), adapter_dim=16,
                                      vocab_ids=IDS)
  toks = jnp.array([[4, 8, 15, 16, 23, 42]])
  want, _ = sj.forward(plain.params, plain.config, toks)
  got, _ = sj.forward(adapted.params, adapted.config, toks, head_logits=True)
  # Not equal: the adapter's RMSNorm input differs from none only through a zero projection.
  np.testing.assert_allclose(got, np.asarray(want)[..., IDS], atol=1e-5)


@pytest.mark.parametrize("kind", ["small", "adapter"])
def test_greedy_speculative_with_sub_vocab_drafts_equals_greedy_target(kind):
  target = tiny_model(seed=3)
  if kind == "small":
    d = _small(target)
  else:  # a trained-looking adapter: random, nonzero output projection
    d = drafts.adapted_self_draft(target, 1, jax.random.key(0), adapter_dim=16, vocab_ids=IDS)
    d.params["adapter"]["wdown_FD"] = 0.1 * jax.random.normal(
        jax.random.key(5), d.params["adapter"]["wdown_FD"].shape)
  prompts = [[1, 2, 3, 1, 2], list(range(5, 45)), [9]]
  want = sj.generate(target, prompts, max_new_tokens=20, eos_id=None)
  got = sj.speculative_generate(target, d, prompts, k=3, max_new_tokens=20, eos_id=None)
  np.testing.assert_array_equal(got.tokens, want.tokens)


@pytest.mark.slow
def test_sub_vocab_draft_is_lossless():
  """q is zero on 3 of the 8 ids, yet the output follows the target's joint law."""
  target = tiny_model(seed=11, **LAW_KW)
  draft = _small(target, ids=[0, 2, 3, 5, 6], seed=12)
  s = sj.Sampling(1.0)
  exact = _exact_two_tokens(target, [1, 5, 2], s)
  assert exact[[1, 4, 7]].sum() > 0.05  # the ids the draft cannot propose matter
  assert chisquare_pvalue(_spec_pairs(target, draft, [1, 5, 2], s), exact) > ALPHA


@pytest.mark.parametrize("name", ["tvd", "rkl", "jsd", "fkl"])
def test_bucketed_sub_vocab_divergence_equals_the_full_vocab_one(name):
  rng = np.random.default_rng(0)
  t_logits = jnp.asarray(rng.normal(size=(2, 3, 64)) * 2, jnp.float32)
  d_logits = jnp.asarray(rng.normal(size=(2, 3, len(IDS))) * 2, jnp.float32)
  mask = jnp.ones((2, 3), bool)
  s = sj.Sampling(1.0)
  loss = lambda d: training.distill_loss(name, t_logits, d, mask, s, 0.3, jnp.asarray(IDS))
  full_loss = lambda d: training.distill_loss(
      name, t_logits, jnp.full((2, 3, 64), -jnp.inf).at[..., jnp.asarray(IDS)].set(d), mask, s,
      0.3)
  if name != "fkl":  # fkl is infinite for any sub-vocab draft: both clamp it differently
    np.testing.assert_allclose(loss(d_logits), full_loss(d_logits), rtol=1e-5)
  np.testing.assert_allclose(jax.grad(loss)(d_logits), jax.grad(full_loss)(d_logits),
                             rtol=1e-4, atol=1e-7)


def test_split_params_trains_only_the_named_groups():
  target = tiny_model(seed=3)
  d = drafts.adapted_self_draft(target, 1, jax.random.key(0), adapter_dim=8, vocab_ids=IDS)
  train, frozen = training.split_params(d.params, "adapter,adapter_norm")
  assert sorted(train) == ["adapter", "adapter_norm"]
  assert "vocab_ids_U" in frozen and "layers_0" in frozen
  train, frozen = training.split_params(d.params, "all")
  assert list(frozen) == ["vocab_ids_U"]  # integer leaves never train
  with pytest.raises(ValueError, match="selects no parameters"):
    training.split_params(d.params, "nothing")


@pytest.mark.slow
def test_a_sub_vocab_draft_at_the_real_vocab_never_proposes_outside_its_subset():
  """SmolLM2's 49,152 ids, a 4,096-id subset: q is 0 on the other 45,056 ids."""
  from tests.decoding.test_sampling import _draws
  V = 49_152
  target = tiny_model(seed=3, vocab_size=V, d_model=32, d_ff=64, num_layers=1)
  ids = np.sort(np.random.default_rng(0).choice(V, 4096, replace=False))
  draft = _small(target, ids=ids)
  outside = np.ones(V, bool)
  outside[ids] = False
  s = sj.Sampling(1.0, top_p=0.95)
  # The real drafter's proposals (64 rows x k = 8, over several keys).
  drafter = sj.decoding.drafters.model_drafter(draft)
  seq = jnp.asarray(np.random.default_rng(1).integers(0, V, (64, 48)), jnp.int32)
  n = jnp.full((64,), 16, jnp.int32)
  state = drafter.init(seq[:, :16], n, 48)
  propose = jax.jit(lambda st, key: drafter.propose(st, seq, n, 8, s, key)[:2])
  for i in range(8):
    toks, q = propose(state, jax.random.key(i))
    assert not outside[np.asarray(toks)].any()
    assert (np.asarray(q)[..., outside] == 0).all()
  # A million draws from the q it proposes from.
  probs = q[:4, 0]
  bad = outside[_draws(probs, s, 1_000_000)]
  assert not bad.any(), f"{bad.sum()} of {bad.size} draws outside the subset"
