"""The EAGLE-3 style feature drafter in the speculative loop: exact, caches consistent, checked."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from specjax.decoding import speculative
from specjax.decoding.feature_drafter import FeatureDrafter, default_feature_layers
from tests.decoding.test_speculative import (ALPHA, PROMPTS, _correction_from_p, _exact_two_tokens,
                                             _spec_pairs)
from tests.helpers import LAW_KW, chisquare_pvalue, tiny_model


def _target(**kw):
  return tiny_model(seed=3, num_layers=4, **kw)


def test_default_layers_are_low_middle_high():
  assert default_feature_layers(30) == (1, 15, 28)
  assert default_feature_layers(4) == (1, 2)
  assert default_feature_layers(1) == (0,)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_greedy_equals_the_target_on_a_ragged_batch(k):
  target = _target()
  draft = sj.feature_draft(target, jax.random.key(1), vocab_ids=list(range(0, 64, 2)))
  assert isinstance(draft, sj.Drafter) and draft.feature_layers == (1, 2)
  want = sj.generate(target, PROMPTS, max_new_tokens=20, eos_id=None)
  got = sj.speculative_generate(target, draft, PROMPTS, k=k, max_new_tokens=20, eos_id=None)
  np.testing.assert_array_equal(got.tokens, want.tokens)
  np.testing.assert_array_equal(got.lengths, want.lengths)
  assert int(got.stats.draft_calls) == (k + 1) * int(got.stats.target_calls)


def test_caches_after_a_run_equal_a_fresh_prefill_of_the_final_sequence():
  target = _target()
  draft = sj.feature_draft(target, jax.random.key(2), feature_layers=(0, 3))
  out, _, state = sj.speculative_generate(target, draft, PROMPTS, k=3, max_new_tokens=16,
                                          eos_id=None, return_state=True)
  for b, prompt in enumerate(PROMPTS):
    seq = np.asarray(prompt + out.row(b), np.int32)[None]
    n = seq.shape[1]
    _, _, hidden = sj.forward(target.params, target.config, jnp.asarray(seq), hidden_layers=(0, 3))
    fresh = draft.init(jnp.asarray(seq), jnp.asarray([n]), 64, sj.Features(hidden, jnp.zeros(1,
                                                                                         jnp.int32)))
    assert int(state.cache.length_B[b]) == n - 2 == int(fresh.cache.length_B[0])
    for got_kv, want_kv in ((state.cache.k[0], fresh.cache.k[0]),
                            (state.cache.v[0], fresh.cache.v[0])):
      np.testing.assert_allclose(np.asarray(got_kv)[b, :, :n - 2], np.asarray(want_kv)[0, :, :n - 2],
                                 atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(state.feature_BSD)[b, :n - 1],
                               np.asarray(fresh.feature_BSD)[0, :n - 1], atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_sampled_output_follows_the_target_distribution(monkeypatch):
  target = tiny_model(seed=11, num_layers=3, **LAW_KW)
  draft = sj.feature_draft(target, jax.random.key(5), vocab_ids=[0, 1, 2, 3, 5, 6])
  prompt, s = [1, 5, 2], sj.Sampling(1.0)
  exact = _exact_two_tokens(target, prompt, s)
  counts = _spec_pairs(target, draft, prompt, s, k=3)
  assert chisquare_pvalue(counts, exact) > ALPHA
  jax.clear_caches()
  monkeypatch.setattr(speculative, "accept_and_correct", _correction_from_p)  # a biased rule
  assert chisquare_pvalue(_spec_pairs(target, draft, prompt, s, k=3), exact) < ALPHA
  jax.clear_caches()


@pytest.mark.parametrize("kwargs,msg", [
    (dict(feature_layers=(4,)), "hidden_layers"), (dict(feature_layers=(1, 1)), "hidden_layers"),
    (dict(vocab_ids=[1, 1, 2]), "vocab_ids"), (dict(vocab_ids=[0, 64]), "vocab_ids"),
    (dict(vocab_ids=list(range(64))), "vocab_ids")])
def test_bad_arguments_are_refused(kwargs, msg):
  with pytest.raises(ValueError, match=msg):
    sj.feature_draft(_target(), jax.random.key(0), **kwargs)


def test_the_draft_shares_the_target_embedding_and_is_small():
  target = _target()
  draft = sj.feature_draft(target, jax.random.key(0))
  assert isinstance(draft, FeatureDrafter)
  assert draft.params["embedding_VD"] is target.params["embedding_VD"]
  assert draft.params["fuse_FD"].shape == (2 * 64, 64)
