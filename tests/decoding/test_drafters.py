import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import specjax as sj
from specjax.decoding import drafters
from tests.helpers import tiny_model


def test_every_drafter_implements_the_protocol():
  target = tiny_model(seed=3)
  for d in (drafters.model_drafter(target), sj.prompt_lookup(3),
            sj.feature_draft(target, jax.random.key(0))):
    assert isinstance(d, sj.Drafter), type(d).__name__
  assert not isinstance(target, sj.Drafter)  # a Model is turned into one by the loop


def test_build_drafter_names_every_kind():
  target = tiny_model(seed=3)
  d = sj.build_drafter("lookup:2", target)
  assert isinstance(d, sj.PromptLookup) and d.max_ngram == 2
  assert sj.build_drafter("lookup", target).max_ngram == 3
  d = sj.build_drafter("self:1", target)
  assert isinstance(d, sj.Model) and d.config.num_layers == 1
  assert sj.build_drafter(target, target) is target
  for bad, msg in [("self:abc", "self:N needs an integer"), ("self:0", "num_layers"),
                   ("lookup:x", "lookup:N needs an integer"), ("/no/such/draft", "draft must be")]:
    with pytest.raises(ValueError, match=msg):
      sj.build_drafter(bad, target)


@pytest.mark.parametrize("name", ["self:1", "lookup:3"])
def test_speculative_generate_takes_a_drafter_name(name):
  target = tiny_model(seed=3)
  prompts = [[1, 2, 3, 1, 2], [9, 8]]
  by_name = sj.speculative_generate(target, name, prompts, k=3, max_new_tokens=8)
  by_object = sj.speculative_generate(target, sj.build_drafter(name, target), prompts, k=3,
                                      max_new_tokens=8)
  np.testing.assert_array_equal(by_name.tokens, by_object.tokens)


@struct.dataclass
class _FeatureRecorder:
  """Proposes as prompt lookup does, and stores every target feature it is given at its position."""
  lookup: drafters.PromptLookup
  feature_layers: tuple = struct.field(pytree_node=False, default=(1, 0))
  name: str = struct.field(pytree_node=False, default="feature_recorder")

  def init(self, prompt_BT, prompt_len_B, capacity, features=None):
    B, _, L, D = features.hidden_BTLD.shape
    return self._write(jnp.zeros((B, capacity, L, D), features.hidden_BTLD.dtype), features)

  def _write(self, store_BSLD, f):
    pos_BT = f.start_B[:, None] + jnp.arange(f.hidden_BTLD.shape[1])
    rows_B1 = jnp.arange(pos_BT.shape[0])[:, None]
    return store_BSLD.at[rows_B1, pos_BT].set(f.hidden_BTLD, mode="drop")

  def propose(self, state, seq_BS, n_B, k, sampling, key):
    tokens_BG, q_BGV, _ = self.lookup.propose((), seq_BS, n_B, k, sampling, key)
    return tokens_BG, q_BGV, state

  def commit(self, state, n_B, features=None):
    return self._write(state, features)

  def calls_per_proposal(self, k):
    return 0


@pytest.mark.parametrize("k", [1, 3])
def test_a_feature_drafter_gets_the_target_features_of_every_committed_position(k):
  target = tiny_model(num_layers=3)
  prompts = [[5, 9, 3, 5, 9], [1, 2, 3, 4, 1, 2, 3, 7, 8], [4]]  # ragged
  recorder = _FeatureRecorder(drafters.prompt_lookup(2, vocab_size=target.config.vocab_size))
  assert isinstance(recorder, sj.Drafter)
  out, _, store_BSLD = sj.speculative_generate(target, recorder, prompts, k=k,
                                               max_new_tokens=12, eos_id=None, return_state=True)
  ars = sj.generate(target, prompts, max_new_tokens=12, eos_id=None)
  np.testing.assert_array_equal(out.tokens, ars.tokens)  # reading features changes no token
  for b, prompt in enumerate(prompts):
    seq = np.asarray(prompt + out.row(b), np.int32)
    _, _, want_1TLD = sj.forward(target.params, target.config, jnp.asarray(seq[None]),
                                 hidden_layers=(1, 0))
    # Every committed position but the last (whose features the next verification would give).
    n = len(seq) - 1
    np.testing.assert_allclose(np.asarray(store_BSLD)[b, :n], np.asarray(want_1TLD)[0, :n],
                               atol=1e-4, rtol=1e-5)


def test_feature_layers_outside_the_target_are_refused_before_compiling():
  target = tiny_model(num_layers=3)
  recorder = _FeatureRecorder(drafters.prompt_lookup(2, vocab_size=target.config.vocab_size),
                              feature_layers=(3,))
  with pytest.raises(ValueError, match="hidden_layers"):
    sj.speculative_generate(target, recorder, [[1, 2]], k=2, max_new_tokens=4)


def _lookup_reference(seq, n, max_ngram, min_ngram, k):
  """Prompt lookup by the definition: the longest n-gram first, its latest earlier match."""
  for m in range(max_ngram, min_ngram - 1, -1):
    for j in range(n - 2, m - 2, -1):
      if n >= m + 1 and seq[j - m + 1:j + 1] == seq[n - m:n]:
        return [seq[min(j + 1 + i, n - 1)] for i in range(k)]
  return [seq[n - 1]] * k


@pytest.mark.parametrize("max_ngram,min_ngram", [(3, 1), (2, 2), (50, 1), (10**6, 4)])
def test_prompt_lookup_proposes_the_longest_latest_match(max_ngram, min_ngram):
  rng = np.random.default_rng(max_ngram)
  seq_BS = rng.integers(0, 3, (16, 24))  # 3 ids: many matches of every length
  seq_BS[:4] = np.tile([1, 2], 12)  # a repeat longer than most max_ngram
  n_B = rng.integers(1, 25, 16)
  d = sj.prompt_lookup(max_ngram, min_ngram, vocab_size=3)
  got, q, _ = d.propose((), jnp.asarray(seq_BS, jnp.int32), jnp.asarray(n_B, jnp.int32), 4,
                        sj.Sampling(0.0), None)
  want = [_lookup_reference(list(s), int(n), max_ngram, min_ngram, 4)
          for s, n in zip(seq_BS, n_B)]
  np.testing.assert_array_equal(got, want)
