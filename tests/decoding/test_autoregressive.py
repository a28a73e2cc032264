import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from specjax.decoding import autoregressive as ar
from tests.helpers import LAW_KW, chisquare_pvalue, tiny_model

ALPHA = 1e-3  # significance level of the distribution tests


def test_ragged_batch_rows_equal_rows_alone_greedy():
  model = tiny_model(seed=3)
  rng = np.random.default_rng(0)
  prompts = [rng.integers(0, 64, n).tolist() for n in (2, 17, 40, 5)]
  batch = sj.generate(model, prompts, max_new_tokens=12, eos_id=None)
  assert batch.tokens.shape == (4, 12)
  for b, p in enumerate(prompts):
    alone = sj.generate(model, [p], max_new_tokens=12, eos_id=None)
    np.testing.assert_array_equal(batch.tokens[b], alone.tokens[0])
  # Not a degenerate model: the rows differ and tokens change along a row.
  assert len({tuple(r) for r in np.asarray(batch.tokens).tolist()}) == 4
  assert len(set(np.asarray(batch.tokens[1]).tolist())) > 2


def test_greedy_matches_step_by_step_argmax_of_full_forward():
  model = tiny_model(seed=5)
  prompt = [3, 14, 15, 9, 2]
  out = sj.generate(model, [prompt], max_new_tokens=10, eos_id=None)
  seq = list(prompt)
  fwd = jax.jit(lambda t: sj.forward(model.params, model.config, t)[0])
  for _ in range(10):  # a fixed-width buffer: causal, so the zeros after seq don't matter
    logits = fwd(jnp.asarray([seq + [0] * (16 - len(seq))]))
    seq.append(int(jnp.argmax(logits[0, len(seq) - 1])))
  assert out.row(0) == seq[len(prompt):]


def test_eos_stops_rows_and_pads_after():
  model = tiny_model(seed=3)
  prompts = [[1, 2, 3], [40, 41, 42, 43, 44, 45]]
  free = sj.generate(model, prompts, max_new_tokens=10, eos_id=None)
  eos = int(free.tokens[0, 3])  # the 4th token row 0 emits
  out = sj.generate(model, prompts, max_new_tokens=10, eos_id=eos)
  first = int(np.argmax(np.asarray(free.tokens[0]) == eos))
  assert int(out.lengths[0]) == first + 1  # EOS included
  np.testing.assert_array_equal(out.tokens[0, :first + 1], free.tokens[0, :first + 1])
  assert np.all(np.asarray(out.tokens[0, first + 1:]) == 0)
  row1 = np.asarray(free.tokens[1])
  n1 = int(np.argmax(row1 == eos)) + 1 if eos in row1 else 10
  assert int(out.lengths[1]) == n1
  np.testing.assert_array_equal(out.tokens[1, :n1], free.tokens[1, :n1])
  assert out.stats.target_calls == max(int(out.lengths[0]), n1) - 1
  np.testing.assert_array_equal(out.stats.new_tokens_B, out.lengths)


def test_sampling_is_reproducible_for_a_key():
  model = tiny_model()
  s = sj.Sampling(temperature=1.0)
  a = sj.generate(model, [[1, 2], [3]], 16, s, key=jax.random.key(7), eos_id=None)
  b = sj.generate(model, [[1, 2], [3]], 16, s, key=jax.random.key(7), eos_id=None)
  c = sj.generate(model, [[1, 2], [3]], 16, s, key=jax.random.key(8), eos_id=None)
  np.testing.assert_array_equal(a.tokens, b.tokens)
  assert not np.array_equal(a.tokens, c.tokens)


def _exact_two_token_distribution(model, prompt, sampling):
  """P(x1, x2 | prompt) by enumeration under the same warping."""
  V = model.config.vocab_size
  logits, _ = sj.forward(model.params, model.config, jnp.asarray([prompt]))
  p1 = np.asarray(sj.warp(logits[0, -1], sampling), np.float64)
  seqs = jnp.asarray([prompt + [x] for x in range(V)])
  logits2, _ = sj.forward(model.params, model.config, seqs)
  p2 = np.asarray(sj.warp(logits2[:, -1], sampling), np.float64)
  return p1[:, None] * p2


def _sample_pairs(model, prompt, sampling, n, batch=12_500):
  counts = np.zeros((model.config.vocab_size,) * 2)
  for i in range(n // batch):
    out = sj.generate(model, [prompt] * batch, 2, sampling, key=jax.random.key(100 + i),
                      eos_id=None)
    t = np.asarray(out.tokens)
    np.add.at(counts, (t[:, 0], t[:, 1]), 1)
  return counts


@pytest.mark.slow
@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.0, 0, 0.8)])
def test_ars_samples_follow_the_warped_distribution(temperature, top_k, top_p):
  model = tiny_model(seed=11, **LAW_KW)
  prompt = [1, 5, 2]
  s = sj.Sampling(temperature, top_k, top_p)
  counts = _sample_pairs(model, prompt, s, n=50_000)
  exact = _exact_two_token_distribution(model, prompt, s)
  assert chisquare_pvalue(counts, exact) > ALPHA
  # Negative control: the same test rejects a slightly different distribution
  # (temperature off by 15%), so it has the power to see a sampler bug that size.
  wrong = _exact_two_token_distribution(model, prompt, sj.Sampling(temperature * 1.15, top_k, top_p))
  assert chisquare_pvalue(counts, wrong) < ALPHA


@pytest.mark.parametrize("prompts,kw,msg", [
    ([[1, 2], []], {}, "prompt 1 is empty"),
    ([], {}, "prompts is empty"),
    ([[1, 64]], {}, "token id 64 outside the vocab"),
    ([[-1]], {}, "token id -1 outside the vocab"),
    ([[1] * 500], dict(max_new_tokens=13), "prompt 0 is too long"),
    ([[1, 2]], dict(max_new_tokens=0), "max_new_tokens"),
    ([[1.5, 2]], {}, "integer token ids"),
    (["hello"], {}, "no tokenizer"),
    ([[1, 2]], dict(eos_id=64), "eos_id"),
    ([[1, 2]], dict(eos_id=[2, 64]), "eos_id"),
    ([[1, 2]], dict(eos_id=[]), "eos_id is an empty list"),
    ([[1, 2]], dict(pad_multiple=0), "pad_multiple"),
    ([[1, 2]], dict(sampling=sj.Sampling(1.0)), "needs a PRNG key"),
])
def test_bad_input_raises_before_compiling(prompts, kw, msg):
  model = tiny_model()
  before = ar._prefill_jit._cache_size()
  kw.setdefault("max_new_tokens", 4)
  with pytest.raises(ValueError, match=msg):
    sj.generate(model, prompts, **kw)
  assert ar._prefill_jit._cache_size() == before
