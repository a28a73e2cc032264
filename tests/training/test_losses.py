import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from specjax.training import losses


def _np_div(name, p, q, beta=0.5):
  p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)

  def kl(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
      t = np.where(a > 0, a * np.log(a / np.maximum(b, 1e-30)), 0.0)
    return t.sum(-1)

  if name == "fkl":
    return kl(p, q)
  if name == "rkl":
    return kl(q, p)
  if name == "jsd":
    m = beta * p + (1 - beta) * q
    return beta * kl(p, m) + (1 - beta) * kl(q, m)
  return 0.5 * np.abs(p - q).sum(-1)


def _dists(seed, rows=6, vocab=20, zeros=False):
  rng = np.random.default_rng(seed)
  x = rng.gamma(0.5, size=(rows, vocab))
  if zeros:  # filtered supports, as top-k/top-p warping makes them
    x[rng.random(x.shape) < 0.3] = 0.0
    x[:, 0] += 0.1
  return x / x.sum(-1, keepdims=True)


@pytest.mark.parametrize("name,beta", [("fkl", .5), ("rkl", .5), ("jsd", .5), ("jsd", .1),
                                       ("tvd", .5)])
def test_divergences_match_numpy_and_vanish_on_equal(name, beta):
  p, q = _dists(0), _dists(1)
  got = losses.divergence(name, jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32), beta)
  np.testing.assert_allclose(got, _np_div(name, p, q, beta), rtol=1e-4, atol=1e-6)
  assert np.all(np.asarray(got) > 0)
  same = losses.divergence(name, jnp.asarray(p, jnp.float32), jnp.asarray(p, jnp.float32), beta)
  np.testing.assert_allclose(same, 0.0, atol=1e-6)
  if name in ("jsd", "tvd"):  # bounded, finite even on disjoint-looking filtered supports
    pz, qz = _dists(2, zeros=True), _dists(3, zeros=True)
    got = losses.divergence(name, jnp.asarray(pz, jnp.float32), jnp.asarray(qz, jnp.float32), beta)
    np.testing.assert_allclose(got, _np_div(name, pz, qz, beta), rtol=1e-4, atol=1e-6)


def test_tvd_is_one_minus_expected_acceptance():
  p, q = _dists(4), _dists(5)
  accept = np.minimum(p, q).sum(-1)  # the per-position acceptance of the speculative rule
  np.testing.assert_allclose(losses.divergence("tvd", jnp.asarray(p), jnp.asarray(q)),
                             1 - accept, atol=1e-6)


def test_divergence_gradients_are_finite_with_filtered_supports():
  logits_t = jax.random.normal(jax.random.key(0), (2, 3, 32)) * 3
  logits_d = jax.random.normal(jax.random.key(1), (2, 3, 32)) * 3
  mask = jnp.ones((2, 3), bool)
  for name in losses.DIVERGENCES:
    g = jax.grad(lambda d: losses.distill_loss(name, logits_t, d, mask,
                                               sj.Sampling(0.8, top_k=5)))(logits_d)
    assert np.all(np.isfinite(np.asarray(g))), name
    assert np.abs(np.asarray(g)).sum() > 0, name


def test_cross_entropy_matches_numpy():
  logits = np.random.default_rng(0).normal(size=(2, 4, 10))
  targets = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
  mask = np.array([[1, 1, 1, 0], [1, 0, 1, 1]], bool)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  want = -np.take_along_axis(logp, targets[..., None], -1)[..., 0][mask].mean()
  got = losses.cross_entropy(jnp.asarray(logits, jnp.float32), jnp.asarray(targets),
                             jnp.asarray(mask))
  np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("name,sampling,beta,msg", [
    ("kl", sj.Sampling(1.0), .5, "unknown divergence"),
    ("fkl", sj.Sampling(0.0), .5, "temperature > 0"),
    ("jsd", sj.Sampling(1.0), 1.0, "beta"),
])
def test_bad_distillation_config(name, sampling, beta, msg):
  with pytest.raises(ValueError, match=msg):
    losses.check_divergence(name, sampling, beta)
