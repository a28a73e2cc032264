import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj


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
