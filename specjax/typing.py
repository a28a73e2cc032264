"""Shape-suffix legend used in names and einsum strings across specjax.

  B batch            T tokens in this call      S cache slots
  N query heads      K kv heads                 H head dim
  D model width      F feed-forward width       V vocab
  G draft length (gamma, "k" in the papers)     L layers
  Q query rows per kv head in one call (= N // K * T)

E.g. `logits_BTV` is float[batch, tokens, vocab]; `k_BKSH` is a per-layer key cache.
"""
from typing import Any

import jax
from jaxtyping import Array, Float, Int, Bool, PRNGKeyArray  # noqa: F401  (re-exported)

Params = Any  # a nested dict of arrays (Flax Linen variables['params'])
PyTree = Any
KeyArray = jax.Array
