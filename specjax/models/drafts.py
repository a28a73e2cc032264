"""Draft models for a given target: small ones trained from scratch, and adapted self-drafts.

Both keep the target's tokenizer and vocab_size (the speculative rule compares
p and q id by id) and may predict only a frequent subset of ids
(`ModelConfig.sub_vocab`), so that the output head stops dominating a small
draft's cost: SmolLM2's 49,152 x 576 head is 28M of its 134M parameters.
"""
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from specjax.models.config import ModelConfig
from specjax.models.model import Model, init_params


def frequent_ids(tokens, vocab_size: int, n: int, always: Sequence[int] = ()) -> np.ndarray:
  """The n most frequent ids in `tokens` (ties: lower id first), `always` included, int32."""
  if not 1 <= n <= vocab_size:
    raise ValueError(f"sub-vocab size must be in [1, {vocab_size}], got {n}")
  counts = np.bincount(np.asarray(tokens).ravel(), minlength=vocab_size).astype(np.float64)
  counts[list(always)] = np.inf
  order = np.argsort(-counts, kind="stable")
  return np.sort(order[:n]).astype(np.int32)


def _with_ids(config: ModelConfig, vocab_ids) -> Optional[np.ndarray]:
  if vocab_ids is None:
    return None
  ids = np.asarray(vocab_ids, np.int32)
  if ids.ndim != 1 or len(np.unique(ids)) != len(ids) or ids.min() < 0 or \
      ids.max() >= config.vocab_size:
    raise ValueError(f"vocab_ids must be distinct ids in [0, {config.vocab_size}), got shape "
                     f"{ids.shape} range [{ids.min()}, {ids.max()}]")
  return ids


def small_draft(target: Model, key: jax.Array, *, d_model: int, num_layers: int,
                num_heads: int, num_kv_heads: int, head_dim: int, d_ff: int,
                vocab_ids=None, name: str = "small-draft") -> Model:
  """A randomly initialised Llama-style draft sharing the target's vocab (tied embeddings)."""
  ids = _with_ids(target.config, vocab_ids)
  config = ModelConfig(vocab_size=target.config.vocab_size, d_model=d_model,
                       num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
                       head_dim=head_dim, d_ff=d_ff, rope_theta=target.config.rope_theta,
                       norm_eps=target.config.norm_eps, tie_embeddings=True,
                       max_len=target.config.max_len, dtype=target.config.dtype,
                       sub_vocab=0 if ids is None else len(ids))
  params = init_params(config, key)
  if ids is not None:
    params["vocab_ids_U"] = jnp.asarray(ids)
  return Model(config=config, params=params, tokenizer=target.tokenizer, eos_id=target.eos_id,
               name=name)


def adapted_self_draft(target: Model, num_layers: int, key: jax.Array, adapter_dim: int = 0,
                       vocab_ids=None) -> Model:
  """The target's first `num_layers` layers (shared arrays), an optional adapter, its head.

  The head is the target's own (restricted to `vocab_ids` when given: its
  rows of the tied embedding); the adapter starts as the identity, so before
  training this is exactly `sj.self_draft` (up to the sub-vocab).
  """
  L = target.config.num_layers
  if not isinstance(num_layers, int) or not 1 <= num_layers <= L:
    raise ValueError(f"num_layers must be an integer in [1, {L}], got {num_layers!r}")
  ids = _with_ids(target.config, vocab_ids)
  tc = target.config
  config = tc.replace(num_layers=num_layers, adapter_dim=adapter_dim, tie_embeddings=False,
                      sub_vocab=0 if ids is None else len(ids))
  head_DU = (target.params["embedding_VD"].T if tc.tie_embeddings
             else target.params["lm_head_DU"])
  if ids is not None:
    head_DU = jnp.take(head_DU, jnp.asarray(ids), axis=1)
  params = {n: v for n, v in target.params.items()
            if n in ("embedding_VD", "final_norm") or
            (n.startswith("layers_") and int(n.split("_")[1]) < num_layers)}
  params["lm_head_DU"] = jnp.asarray(head_DU)
  if adapter_dim:
    fresh = init_params(config.replace(num_layers=1), key)
    params["adapter"], params["adapter_norm"] = fresh["adapter"], fresh["adapter_norm"]
  if ids is not None:
    params["vocab_ids_U"] = jnp.asarray(ids)
  tag = f"[:{num_layers}]" + (f"+adapter{adapter_dim}" if adapter_dim else "") + \
      (f"/sub{len(ids)}" if ids is not None else "")
  return target.replace(config=config, params=params, name=f"{target.name}{tag}")
