import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from tests.helpers import chisquare_pvalue


def _reference(logits, temperature, top_k, top_p):
  """Brute-force NumPy (float64) statement of the documented warping rules."""
  logits = np.asarray(logits, np.float64)
  out = np.zeros_like(logits)
  for r, row in enumerate(logits):
    if temperature == 0:
      out[r, int(np.argmax(row))] = 1.0
      continue
    z = row / temperature
    if 0 < top_k < len(z):
      kth = np.sort(z)[::-1][top_k - 1]
      z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p < 1:
      keep = np.array([p[p > pi].sum() < top_p for pi in p])
      p = np.where(keep, p, 0.0)
      p /= p.sum()
    out[r] = p
  return out


def _logits(seed, rows=16, vocab=50, ties=False):
  x = np.random.default_rng(seed).normal(0, 2, (rows, vocab))
  return np.round(x, 0) if ties else x  # rounding makes many exact ties


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("temperature,top_k,top_p", [
    (1.0, 0, 1.0), (0.7, 0, 1.0), (1.0, 5, 1.0), (1.0, 1, 1.0), (1.3, 0, 0.8),
    (0.7, 5, 0.8), (1.0, 0, 0.3), (1.0, 49, 1.0), (1.0, 50, 1.0), (1.0, 500, 0.95),
    (0.0, 0, 1.0), (0.0, 3, 0.5)])
def test_warp_matches_numpy_reference(temperature, top_k, top_p, ties):
  logits = _logits(0, ties=ties)
  s = sj.Sampling(temperature=temperature, top_k=top_k, top_p=top_p)
  got = np.asarray(sj.warp(jnp.asarray(logits, jnp.float32), s))
  want = _reference(logits, temperature, top_k, top_p)
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got > 0, want > 0)  # the same tokens survive
  np.testing.assert_allclose(got, want, atol=1e-6)
  np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)


def test_top_k_keeps_tied_tokens_and_top_p_one_keeps_all():
  logits = jnp.array([[3.0, 1.0, 2.0, 2.0, 0.0]])
  p = sj.warp(logits, sj.Sampling(1.0, top_k=2))
  np.testing.assert_array_equal(np.asarray(p) > 0, [[True, False, True, True, False]])
  p = sj.warp(logits, sj.Sampling(1.0, top_p=1.0))
  assert np.all(np.asarray(p) > 0)


def test_warp_works_on_any_leading_shape_and_bf16_logits():
  logits = jnp.asarray(_logits(3, rows=6), jnp.bfloat16).reshape(2, 3, 50)
  p = sj.warp(logits, sj.Sampling(0.8, top_k=7, top_p=0.9))
  assert p.shape == (2, 3, 50) and p.dtype == jnp.float32
  ref = _reference(np.asarray(logits.astype(jnp.float32)).reshape(6, 50), 0.8, 7, 0.9)
  np.testing.assert_allclose(np.asarray(p).reshape(6, 50), ref, atol=1e-6)


def test_sample_greedy_is_argmax_and_sampling_uses_key():
  logits = jnp.asarray(_logits(4))
  g = sj.sample(None, sj.warp(logits, sj.Sampling(0.0)), sj.Sampling(0.0))
  np.testing.assert_array_equal(g, np.argmax(np.asarray(logits), -1))
  s = sj.Sampling(1.0)
  p = sj.warp(logits, s)
  a = sj.sample(jax.random.key(0), p, s)
  b = sj.sample(jax.random.key(0), p, s)
  c = sj.sample(jax.random.key(1), p, s)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


@pytest.mark.parametrize("kw,msg", [
    (dict(temperature=-0.1), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(top_p=-1), "top_p"),
    (dict(top_k=-1), "top_k"), (dict(top_k=2.5), "top_k")])
def test_invalid_sampling_parameters(kw, msg):
  with pytest.raises(ValueError, match=msg):
    sj.Sampling(**kw)


# ---- exactness at the real vocab size (SmolLM2: 49,152 ids) ----

V_REAL = 49_152
REAL_SAMPLINGS = [sj.Sampling(1.0, top_p=0.9), sj.Sampling(1.0, top_k=1000)]


def _real_probs(sampling, rows=4, seed=0):
  logits = np.random.default_rng(seed).normal(0, 3, (rows, V_REAL)).astype(np.float32)
  return sj.warp(jnp.asarray(logits), sampling)


def _draws(probs_RV, sampling, n, seed=0, chunk=2_000):
  """n // R draws per row through sj.sample, vmapped over keys (probs not batched)."""
  R = probs_RV.shape[0]
  f = jax.jit(jax.vmap(lambda k, p: sj.sample(k, p, sampling), (0, None)))
  keys = jax.random.split(jax.random.key(seed), n // R)
  return np.concatenate([np.asarray(f(keys[i:i + chunk], probs_RV))
                         for i in range(0, n // R, chunk)])


@pytest.mark.slow
@pytest.mark.parametrize("sampling", REAL_SAMPLINGS, ids=["top_p0.9", "top_k1000"])
def test_a_million_draws_at_the_real_vocab_never_hit_a_zero_probability_token(sampling):
  probs = _real_probs(sampling)
  p = np.asarray(probs)
  assert (p == 0).sum(-1).min() > 40_000  # most of the vocab is cut: the test is not vacuous
  toks_NR = _draws(probs, sampling, 1_000_000)
  assert toks_NR.size >= 1_000_000
  hit = p[np.arange(p.shape[0]), toks_NR]
  assert (hit > 0).all(), f"{(hit == 0).sum()} draws of a token with warped probability 0"


def _grid_law(cdf_N, w_N):
  """Exact law of `_pick` over the 2**23 float32 uniforms jax.random.uniform can return.

  The token picked for uniform u is #(cdf <= u * total), clamped to the last
  token with weight: so token i gets the uniforms with cdf[i-1] <= u * total <
  cdf[i]. Counted with searchsorted on the sorted products (u * total is
  monotone in u), in float32 as the sampler computes it.
  """
  grid = np.arange(2 ** 23, dtype=np.float32) * np.float32(2.0 ** -23)  # exact
  x = grid * np.float32(cdf_N[-1])
  below = np.searchsorted(x, cdf_N, side="left").astype(np.int64)  # #(u*total < cdf[i])
  law = np.diff(np.concatenate([[0], below])).astype(np.float64)
  law[np.flatnonzero(w_N > 0)[-1]] += 2 ** 23 - below[-1]  # u * total >= cdf[-1]: clamped to the last positive
  return law / 2 ** 23


@pytest.mark.slow
@pytest.mark.parametrize("sampling", REAL_SAMPLINGS, ids=["top_p0.9", "top_k1000"])
def test_exact_law_of_sample_gives_zero_mass_to_zero_probability_tokens_and_equals_q(sampling):
  """The sampler's law, computed from its own float32 arrays, is q to within TV 2e-5."""
  from specjax.decoding import sampling as sm
  probs = _real_probs(sampling, rows=2, seed=1)
  p_RNb = sm._blocks(probs)
  R, N, bs = p_RNb.shape
  w_RN = jax.jit(lambda p: jnp.sum(p, -1))(p_RNb)
  cdf_blocks_RN = np.asarray(sm._monotone_cdf(w_RN))
  cdf_within_RNb = np.asarray(sm._monotone_cdf(p_RNb))
  for r in range(R):
    block_law = _grid_law(cdf_blocks_RN[r], np.asarray(w_RN[r]))
    law = np.zeros(N * bs)
    for b in np.flatnonzero(block_law):
      law[b * bs:(b + 1) * bs] = block_law[b] * _grid_law(cdf_within_RNb[r, b],
                                                          np.asarray(p_RNb[r, b]))
    q = np.asarray(probs[r], np.float64)
    assert law[:V_REAL][q == 0].sum() == 0 and law[V_REAL:].sum() == 0
    tv = 0.5 * np.abs(law[:V_REAL] - q / q.sum()).sum()
    assert tv < 2e-5, tv
    # The law above is the sampler's: its tokens for given uniforms are the law's picks.
    u_X2 = jax.random.uniform(jax.random.key(r), (4096, 2))
    toks = np.asarray(jax.jit(jax.vmap(sm._sample_from_uniforms, (0, None)))(u_X2, probs[r]))
    bl = np.searchsorted(cdf_blocks_RN[r], np.asarray(u_X2[:, 0]) * cdf_blocks_RN[r, -1],
                         side="right")
    assert (law[toks] > 0).all() and np.array_equal(toks // bs, bl)


def test_sample_follows_q_at_a_vocab_that_is_not_a_whole_number_of_blocks():
  logits = _logits(5, rows=1, vocab=300)  # 3 blocks of 128, the last one padded
  s = sj.Sampling(1.0, top_k=40)
  p = np.asarray(sj.warp(jnp.asarray(logits, jnp.float32), s))[0]
  toks = _draws(jnp.asarray(p[None]), s, 200_000, chunk=200_000)[:, 0]
  counts = np.bincount(toks, minlength=300)
  assert counts[p == 0].sum() == 0 and counts.size == 300
  assert chisquare_pvalue(counts, p) > 1e-3
  biased = np.roll(p, 1)  # a negative control: the same counts against a shifted law fail
  assert chisquare_pvalue(counts, np.where(p > 0, biased + 1e-3, 0)) < 1e-3


# ---- temperatures and top_p at the edges of what Sampling accepts ----

@pytest.mark.parametrize("scale", [30.0, 1e4])
@pytest.mark.parametrize("temperature", [1e-38, 1e-40, 1e-45, 5e-324])
def test_the_smallest_temperatures_are_greedy(temperature, scale):
  logits = jnp.asarray(_logits(6, rows=8, vocab=V_REAL) * scale / 2, jnp.float32)
  s = sj.Sampling(temperature)
  p = np.asarray(sj.warp(logits, s))
  greedy = np.asarray(sj.warp(logits, sj.Sampling(0.0)))
  np.testing.assert_array_equal(p, greedy)
  np.testing.assert_array_equal(sj.sample(jax.random.key(0), jnp.asarray(p), s),
                                np.argmax(np.asarray(logits), -1))


def test_a_tiny_temperature_splits_exact_ties_evenly():
  """T > 0 is the T -> 0 limit of the softmax: exact ties at the top share its mass."""
  logits = jnp.array([[1.0, 30.0, -5.0, 30.0, 29.9]])
  p = np.asarray(sj.warp(logits, sj.Sampling(1e-38)))
  np.testing.assert_array_equal(p, [[0.0, 0.5, 0.0, 0.5, 0.0]])
  g = np.asarray(sj.warp(logits, sj.Sampling(0.0)))  # greedy: the first of the tied
  np.testing.assert_array_equal(g, [[0.0, 1.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize("top_p", [5e-324, 1e-45, 1e-10, 0.3, 0.9, 1 - 1e-12, 1.0])
@pytest.mark.parametrize("temperature", [1e-45, 1e-30, 1e-10, 1e-3, 1.0, 7.0, 1e4])
def test_warp_is_finite_for_every_accepted_temperature_and_top_p(temperature, top_p):
  for scale in (1.0, 30.0, 1e4):
    logits = jnp.asarray(_logits(7, rows=3, vocab=4096) * scale, jnp.float32)
    for top_k in (0, 50):
      s = sj.Sampling(temperature, top_k=top_k, top_p=top_p)
      p = np.asarray(sj.warp(logits, s))
      assert np.isfinite(p).all(), (s, scale)
      np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
      tok = np.asarray(sj.sample(jax.random.key(1), jnp.asarray(p), s))
      assert (p[np.arange(3), tok] > 0).all()
      # The most likely token always survives the warping.
      assert (p[np.arange(3), np.argmax(np.asarray(logits), -1)] > 0).all()


def test_a_huge_temperature_is_near_uniform():
  logits = jnp.asarray(_logits(8, rows=2, vocab=V_REAL) * 10, jnp.float32)
  p = np.asarray(sj.warp(logits, sj.Sampling(1e30)))
  np.testing.assert_allclose(p, 1.0 / V_REAL, rtol=1e-5)
