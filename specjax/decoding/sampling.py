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

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Sampling:
  """`sj.Sampling(temperature=0.8, top_k=0, top_p=0.95)`; temperature 0 means greedy.

  top_k = 0 and top_p = 1 switch those filters off. Hashable: a static jit argument.
  """
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0

  def __post_init__(self):
    t, k, p = self.temperature, self.top_k, self.top_p
    if not isinstance(t, (int, float)) or t != t or t < 0 or t == float("inf"):
      raise ValueError(f"Sampling.temperature must be a finite number >= 0 (0 = greedy), got {t!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
      raise ValueError(f"Sampling.top_k must be an integer >= 0 (0 = off), got {k!r}")
    if not isinstance(p, (int, float)) or not 0.0 < p <= 1.0:
      raise ValueError(f"Sampling.top_p must be in (0, 1] (1 = off), got {p!r}")

  @property
  def greedy(self) -> bool:
    return self.temperature == 0


def warp(logits_XV: jax.Array, sampling: Sampling) -> jax.Array:
  """Logits [..., V] -> float32 probabilities [..., V] under `sampling`.

  Greedy gives the one-hot of the argmax (first index on ties).
  """
  logits = logits_XV.astype(jnp.float32)
  V = logits.shape[-1]
  if sampling.greedy:
    return jax.nn.one_hot(jnp.argmax(logits, axis=-1), V, dtype=jnp.float32)
  logits = logits / sampling.temperature
  if 0 < sampling.top_k < V:
    kth = jax.lax.top_k(logits, sampling.top_k)[0][..., -1:]
    logits = jnp.where(logits >= kth, logits, -jnp.inf)
  probs = jax.nn.softmax(logits, axis=-1)
  if sampling.top_p < 1.0:
    desc = -jnp.sort(-probs, axis=-1)
    mass_before = jnp.cumsum(desc, axis=-1) - desc  # mass of the tokens ahead in sorted order
    n_keep = jnp.sum(mass_before < sampling.top_p, axis=-1, keepdims=True)  # >= 1
    threshold = jnp.take_along_axis(desc, n_keep - 1, axis=-1)
    probs = jnp.where(probs >= threshold, probs, 0.0)
    probs = probs / jnp.sum(probs, axis=-1, keepdims=True)
  return probs


def sample(key: jax.Array, probs_XV: jax.Array, sampling: Sampling) -> jax.Array:
  """Draws one token per row from warped probabilities (argmax when greedy)."""
  if sampling.greedy:
    return jnp.argmax(probs_XV, axis=-1).astype(jnp.int32)
  return jax.random.categorical(key, jnp.log(probs_XV), axis=-1).astype(jnp.int32)
