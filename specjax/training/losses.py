"""Losses: next-token cross-entropy and the distillation divergences of DistillConfig.

Notation: p = target (teacher), q = draft (student), both over the full vocab
at each position, computed with the one warping function (`warp`) so that the
draft is trained on the distributions the speculative rule will compare.
Per position, acceptance is 1 - TVD(p, q) (Leviathan et al.), which is why
total variation is the divergence that targets acceptance directly.

  fkl  KL(p || q) = sum p log(p / q)          (mode-covering)
  rkl  KL(q || p) = sum q log(q / p)          (mode-seeking)
  jsd  beta KL(p || m) + (1 - beta) KL(q || m),  m = beta p + (1 - beta) q
  tvd  1/2 sum |p - q|

Terms with a zero weight are zero (0 log 0 = 0); a log of a zero probability
is taken at `_TINY` instead of -inf, so filtered (top-k/top-p) supports give
large but finite values and finite gradients.
"""
import jax
import jax.numpy as jnp

from specjax.decoding.sampling import Sampling, warp

DIVERGENCES = ("fkl", "rkl", "jsd", "tvd")
_TINY = 1e-30


def _xlogy_ratio(a, b):
  """a * log(a / b), elementwise, with 0 where a == 0."""
  return jnp.where(a > 0, a * (jnp.log(jnp.maximum(a, _TINY)) - jnp.log(jnp.maximum(b, _TINY))),
                   0.0)


def divergence(name: str, p_XV, q_XV, beta: float = 0.5):
  """Per-position divergence [...] between probability rows p (target) and q (draft)."""
  if name == "fkl":
    return jnp.sum(_xlogy_ratio(p_XV, q_XV), axis=-1)
  if name == "rkl":
    return jnp.sum(_xlogy_ratio(q_XV, p_XV), axis=-1)
  if name == "jsd":
    if not 0.0 < beta < 1.0:
      raise ValueError(f"jsd beta must be in (0, 1), got {beta!r}")
    m = beta * p_XV + (1.0 - beta) * q_XV
    return beta * jnp.sum(_xlogy_ratio(p_XV, m), -1) + \
        (1.0 - beta) * jnp.sum(_xlogy_ratio(q_XV, m), -1)
  if name == "tvd":
    return 0.5 * jnp.sum(jnp.abs(p_XV - q_XV), axis=-1)
  raise ValueError(f"unknown divergence {name!r}; choose from {DIVERGENCES}")


def check_divergence(name: str, sampling: Sampling, beta: float = 0.5) -> None:
  """Host-side config check, before anything compiles or trains."""
  if name not in DIVERGENCES:
    raise ValueError(f"unknown divergence {name!r}; choose from {DIVERGENCES}")
  if sampling.greedy:
    raise ValueError("distillation needs temperature > 0 (greedy distributions are one-hot "
                     "and have no gradient); train at temperature 1 for greedy decoding")
  if name == "jsd" and not 0.0 < beta < 1.0:
    raise ValueError(f"jsd beta must be in (0, 1), got {beta!r}")


def distill_loss(name: str, target_logits_BTV, draft_logits_BTU, mask_BT, sampling: Sampling,
                 beta: float = 0.5, vocab_ids_U=None):
  """Mean divergence over the positions where mask_BT is true (target gets no gradient).

  With a sub-vocab draft (`vocab_ids_U`: the target ids its U logits score) q
  is zero outside the subset, so every divergence is computed exactly on U + 1
  buckets: the subset, plus one bucket holding the target's remaining mass
  (q = 0 there). Grouping is exact because within that bucket p/q (or p/m) is
  the same for every id; fkl is infinite there for any such draft and is
  clamped to a large constant with no gradient.
  """
  p = jax.lax.stop_gradient(warp(target_logits_BTV, sampling))
  q = warp(draft_logits_BTU, sampling)
  if vocab_ids_U is not None:
    p_U = jnp.take(p, vocab_ids_U, axis=-1)
    rest = jnp.maximum(1.0 - jnp.sum(p_U, -1, keepdims=True), 0.0)
    p = jnp.concatenate([p_U, rest], -1)
    q = jnp.concatenate([q, jnp.zeros_like(rest)], -1)
  d_BT = divergence(name, p, q, beta)
  m = mask_BT.astype(jnp.float32)
  return jnp.sum(d_BT * m) / jnp.maximum(jnp.sum(m), 1.0)


def cross_entropy(logits_BTV, targets_BT, mask_BT):
  """Mean next-token cross-entropy over masked positions (logits at t predict targets at t)."""
  logp = jax.nn.log_softmax(logits_BTV.astype(jnp.float32), axis=-1)
  nll_BT = -jnp.take_along_axis(logp, targets_BT[..., None], axis=-1)[..., 0]
  m = mask_BT.astype(jnp.float32)
  return jnp.sum(nll_BT * m) / jnp.maximum(jnp.sum(m), 1.0)
