"""The KV cache: an explicit pytree, preallocated, with a per-row length.

Layout: one `[B, K, S, H]` array per layer for keys and one for values. Batch
and kv heads lead, so the attention einsums `bkqh,bksh->bkqs` are batched
matmuls over contiguous `[S, H]` slabs and XLA never transposes (copies) the
cache (the issue reported that a `[B, S, K, H]` layout made XLA:CPU copy it
every layer). Per-layer arrays (a tuple, not one stacked `[L, ...]` array)
make each layer's update one in-place scatter of its own buffer, with no
dynamic slicing of a stacked array; tests/models/test_transformer.py checks
the compiled decode loop holds no cache copies.
"""
from typing import Tuple

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class KVCache:
  k: Tuple[jax.Array, ...]  # L x [B, K, S, H]
  v: Tuple[jax.Array, ...]  # L x [B, K, S, H]
  length_B: jax.Array       # int32[B]; slots >= length are stale: masked out, overwritten later

  @property
  def capacity(self) -> int:
    return self.k[0].shape[2]

  @property
  def batch_size(self) -> int:
    return self.k[0].shape[0]

  def rollback(self, length_B: jax.Array) -> "KVCache":
    """O(1): only the lengths change; the slots past them become stale."""
    return self.replace(length_B=jnp.asarray(length_B, jnp.int32))


def init_cache(config, batch_size: int, capacity: int, dtype=None) -> KVCache:
  """An empty cache (all lengths 0) for `batch_size` rows and `capacity` slots."""
  dtype = dtype or config.jnp_dtype
  shape = (batch_size, config.num_kv_heads, capacity, config.head_dim)
  zeros = lambda: tuple(jnp.zeros(shape, dtype) for _ in range(config.num_layers))
  return KVCache(k=zeros(), v=zeros(), length_B=jnp.zeros((batch_size,), jnp.int32))
