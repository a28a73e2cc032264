"""`Sampling` and the one warping function that every sampler uses.

`warp` turns logits into probabilities over the full vocab, in float32:
temperature, then top-k, then top-p (nucleus). Both the target's p and the
draft's q in speculative sampling come from here, so the draft samples from
exactly the q that the accept ratio uses.

Tie rules (deterministic, order-free):
- top-k keeps every token whose logit is >= the k-th largest logit, so tokens
  tied with the k-th are all kept (as HF does);
- top-p keeps token i iff the total probability of the tokens *strictly* more
  likely than i is < top_p: the smallest set of most likely tokens whose mass
  reaches top_p, extended to whole groups of tied tokens. top_p = 1 keeps all.
"""
import dataclasses
from typing import Union

import jax
import jax.numpy as jnp
from flax import struct

from specjax.checks import as_float, as_int


@dataclasses.dataclass(frozen=True)
class Sampling:
  """`sj.Sampling(temperature=0.8, top_k=0, top_p=0.95)`; temperature 0 means greedy.

  top_k = 0 and top_p = 1 switch those filters off. Hashable (a static jit argument where
  training uses it); the sampling loops trace its values instead (`traced()`).
  """
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0

  def __post_init__(self):
    # NumPy/JAX scalars become Python numbers: equal samplings hash (compile) alike.
    set_ = lambda name, v: object.__setattr__(self, name, v)
    set_("temperature", as_float("Sampling.temperature", self.temperature, 0,
                                 note=" (0 = greedy)"))
    set_("top_k", as_int("Sampling.top_k", self.top_k, 0, note=" (0 = off)"))
    set_("top_p", as_float("Sampling.top_p", self.top_p, 0, 1, lo_open=True, note=" (1 = off)"))

  @property
  def greedy(self) -> bool:
    return self.temperature == 0

  @property
  def nucleus(self) -> bool:
    return self.top_p < 1

  def traced(self) -> "TracedSampling":
    """This sampling with its temperature and top_p as float32 arrays (see `TracedSampling`)."""
    return TracedSampling(temperature=jnp.float32(self.temperature),
                          top_p=jnp.float32(self.top_p), top_k=self.top_k)

  @classmethod
  def from_config(cls, cfg) -> "Sampling":
    """From a mapping with these three fields (configs/common.py `sampling()`), validated."""
    return cls(cfg["temperature"], cfg["top_k"], cfg["top_p"])


@struct.dataclass
class TracedSampling:
  """A `Sampling` as the sampling loops carry it: a pytree whose leaves are the temperature
  and top_p (float32 scalars); only top_k (a shape) is static. Whether it is greedy
  (temperature 0) and whether top-p filters are decided in the program (`lax.cond`, which
  runs one branch), so one compiled loop serves greedy and every temperature and top_p:
  Table 1's greedy and nucleus rows share their programs. `warp` and `sample` take either.
  """
  temperature: jax.Array
  top_p: jax.Array
  top_k: int = struct.field(pytree_node=False)

  @property
  def greedy(self) -> jax.Array:
    return self.temperature == 0

  @property
  def nucleus(self) -> jax.Array:
    return self.top_p < 1


SamplingLike = Union[Sampling, TracedSampling]  # what `warp`, `sample` and drafters take


def warp(logits_XV: jax.Array, sampling: SamplingLike) -> jax.Array:
  """Logits [..., V] -> float32 probabilities [..., V] under `sampling` (a `Sampling` or a
  `TracedSampling`).

  Greedy (temperature 0) gives the one-hot of the argmax, the first index on
  ties. Any temperature > 0 is finite: logits are divided by T after the row's
  maximum is subtracted, so nothing overflows; a T so small that every gap to
  the maximum becomes -inf is the T -> 0 limit of the softmax, which splits
  the mass evenly among tokens tied *exactly* at the maximum (one-hot, i.e.
  greedy, when the maximum is unique). A huge T gives a near-uniform row.
  The most likely token(s) always survive top-k and top-p.
  """
  return if_greedy(sampling, _one_hot_argmax, lambda x: _tempered(x, sampling),
                   logits_XV.astype(jnp.float32))


def if_greedy(sampling: SamplingLike, greedy_fn, sampled_fn, x):
  """greedy_fn(x) if `sampling` is greedy, else sampled_fn(x) (`_branch`). Every sampler
  that branches on greedy goes through here."""
  return _branch(sampling.greedy, greedy_fn, sampled_fn, x)


def _branch(flag, true_fn, false_fn, x):
  """A Python branch on a `Sampling`'s bool, a `lax.cond` (one branch runs) on a
  `TracedSampling`'s traced one."""
  if isinstance(flag, bool):
    return true_fn(x) if flag else false_fn(x)
  return jax.lax.cond(flag, true_fn, false_fn, x)


def _one_hot_argmax(logits_XV):
  return jax.nn.one_hot(argmax(logits_XV), logits_XV.shape[-1], dtype=jnp.float32)


def _tempered(logits, sampling: SamplingLike):
  """`warp` for temperature > 0: temperature, top-k, softmax, then top-p where it filters."""
  V = logits.shape[-1]
  gap = logits - jnp.max(logits, axis=-1, keepdims=True)  # <= 0; 0 at the maximum
  # 0 / T is kept 0 (not 0 * inf = nan when T underflows float32); gap / T <= 0 otherwise.
  logits = jnp.where(gap < 0, gap / sampling.temperature, 0.0)
  if 0 < sampling.top_k < V:
    kth = jax.lax.top_k(logits, sampling.top_k)[0][..., -1:]
    logits = jnp.where(logits >= kth, logits, -jnp.inf)
  probs = jax.nn.softmax(logits, axis=-1)
  return _branch(sampling.nucleus, lambda p: _nucleus(p, sampling.top_p), lambda p: p, probs)


def _nucleus(probs_XV, top_p):
  """The top-p filter, renormalised."""
  # A top_p below float32's smallest value (5e-324) still keeps the most likely group.
  t = jnp.minimum(_nucleus_threshold(probs_XV, top_p), jnp.max(probs_XV, axis=-1, keepdims=True))
  probs_XV = jnp.where(probs_XV >= t, probs_XV, 0.0)
  return probs_XV / jnp.sum(probs_XV, axis=-1, keepdims=True)


def _nucleus_threshold(probs_XV, top_p):
  """The smallest kept probability t* = min{p_i : mass(p > p_i) < top_p}, per row.

  No sort (a 49k-vocab sort took 9 ms per row on XLA:CPU): f(x) = mass(p > x)
  is non-increasing and steps only at probability values, so the smallest x
  with f(x) < top_p is t* itself. Bisection over the bit patterns of
  non-negative float32s (ordered like the floats) finds it exactly in 31
  masked sums.
  """
  lo = jnp.zeros(probs_XV.shape[:-1], jnp.int32)
  hi = jnp.full(probs_XV.shape[:-1], 0x3F800000, jnp.int32)  # 1.0, where f = 0 < top_p

  def halve(_, lo_hi):
    lo, hi = lo_hi
    mid = lo + (hi - lo) // 2
    x = jax.lax.bitcast_convert_type(mid, jnp.float32)[..., None]
    ok = jnp.sum(jnp.where(probs_XV > x, probs_XV, 0.0), axis=-1) < top_p
    return jnp.where(ok, lo, mid + 1), jnp.where(ok, mid, hi)

  _, hi = jax.lax.fori_loop(0, 31, halve, (lo, hi))
  return jax.lax.bitcast_convert_type(hi, jnp.float32)[..., None]


# Ids per block of the two-level sampler. At 49,152 ids, 64-128 cost the least per
# row-position on XLA:CPU (256: ~1.5x more; experiments/bench_sample.py measures it).
_BLOCK = 128


def sample(key: jax.Array, probs_XV: jax.Array, sampling: SamplingLike) -> jax.Array:
  """Draws one token per row from (warped) probabilities, argmax when greedy.

  `probs_XV` need not sum to 1 (a residual max(0, p - q) works as it is); each
  row needs some positive mass. Two-level inverse CDF: the vocab is cut into
  blocks of `_BLOCK` ids; one uniform picks a block by its mass, a second picks
  a token inside that block. Why not the textbook `sum(cumsum(p) <= u)` over
  the whole vocab:
  - XLA's cumsum is a parallel scan, not monotone at 49k ids in float32, and a
    uniform landing on a downward step picked tokens of probability 0 (about
    1.5e-5 per draw at top-p 0.9); here every CDF is made monotone and flat at
    zero weights (`_monotone_cdf`), so a zero-probability token is never drawn;
  - a float32 uniform has 2**23 values: over 49k ids that grid alone moved the
    law by a total variation of ~1e-3; over a few hundred blocks and then 128
    ids it moves it by ~1e-5 (tests/decoding/test_sampling.py computes the
    exact law);
  - it is cheaper: block sums are one pass, the scans are short (Gumbel-max
    needs 49k random numbers per draw, ~100x the cost).
  """
  draw = lambda p: _sample_from_uniforms(jax.random.uniform(key, p.shape[:-1] + (2,)), p)
  return if_greedy(sampling, argmax, draw, probs_XV)


def argmax(probs_XV):
  """The greedy pick: the first index of the maximum, int32."""
  return jnp.argmax(probs_XV, axis=-1).astype(jnp.int32)


def _blocks(probs_XV):
  """[..., V] -> float32 [..., N, b]: blocks of b = min(_BLOCK, V) ids, zero-padded."""
  V = probs_XV.shape[-1]
  b = min(_BLOCK, V)
  N = -(-V // b)
  p = probs_XV.astype(jnp.float32)
  if N * b != V:
    p = jnp.pad(p, [(0, 0)] * (p.ndim - 1) + [(0, N * b - V)])
  return p.reshape(p.shape[:-1] + (N, b))


def _sample_from_uniforms(u_X2, probs_XV):
  p_XNb = _blocks(probs_XV)
  b = p_XNb.shape[-1]
  blk_X = _pick(jnp.sum(p_XNb, axis=-1), u_X2[..., 0])
  row_Xb = jnp.take_along_axis(p_XNb, blk_X[..., None, None], axis=-2)[..., 0, :]
  return (blk_X * b + _pick(row_Xb, u_X2[..., 1])).astype(jnp.int32)


def _monotone_cdf(w_XN):
  """Inclusive CDF of non-negative weights: non-decreasing, and flat at zero weights.

  The running max of the cumsum at positive weights (the max is exact in any
  order): token i's step cdf[i] - cdf[i-1] is 0 whenever w[i] = 0.
  """
  cdf_XN = jnp.cumsum(w_XN, axis=-1)
  return jax.lax.cummax(jnp.where(w_XN > 0, cdf_XN, 0.0), axis=w_XN.ndim - 1)


def _pick(w_XN, u_X):
  """Index i with cdf[i-1] <= u * total < cdf[i]: only indices of positive weight."""
  N = w_XN.shape[-1]
  cdf_XN = _monotone_cdf(w_XN)
  idx_X = jnp.sum(cdf_XN <= u_X[..., None] * cdf_XN[..., -1:], axis=-1)
  # u * total can round up to total: that uniform goes to the last index with weight.
  last_X = N - 1 - jnp.argmax(jnp.flip(w_XN > 0, axis=-1), axis=-1)
  return jnp.minimum(idx_X, last_X)
