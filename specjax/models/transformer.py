"""A Llama-family decoder in Flax Linen, used pure-functionally.

Why Linen `apply` rather than NNX split/merge: specjax only ever uses the
model as a pure function `(params, tokens, cache) -> (logits, cache)` inside
jitted loops, and Linen's params are a plain nested dict. That dict is what
checkpoint import/export (GGUF, safetensors, orbax) maps tensor names onto,
what `self_draft` slices (first N `layers_i`), and what logical-axis sharding
annotates (`nn.with_logical_partitioning` + `nn.get_partition_spec`); there is
no module graph to merge on every call.

Positions: every row's tokens live at cache slot == position (prompts are
right-padded), so a row's RoPE position is its slot index and `length_B` is
both the next position and the number of live slots.
"""
import functools
from typing import Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from specjax import sharding
from specjax.checks import as_int
from specjax.kernels import cpu_matmul
from specjax.models.config import ModelConfig
from specjax.models.kv_cache import KVCache


ACT_AXES = ("batch", None, "embed")  # the residual stream [B, T, D]


def logical_param(module, name, axes, shape, init, dtype):
  return module.param(name, nn.with_logical_partitioning(init, axes), shape, dtype)


def sub_vocab_index(ids_U, vocab_size: int, outside: int):
  """[V] int32: each id's position in a sub-vocab head's `ids_U`, `outside` for the rest."""
  U = ids_U.shape[0]
  return jnp.full((vocab_size,), outside, jnp.int32).at[ids_U].set(jnp.arange(U, dtype=jnp.int32))


def scatter_sub_vocab(logits_BTU, ids_U, vocab_size: int):
  """A sub-vocab head's [B, T, U] logits into the full vocab: -inf elsewhere, so q = 0 there."""
  return jnp.full(logits_BTU.shape[:2] + (vocab_size,), -jnp.inf, jnp.float32).at[
      :, :, ids_U].set(logits_BTU, mode="promise_in_bounds")


class RMSNorm(nn.Module):
  eps: float
  dtype: jnp.dtype

  @nn.compact
  def __call__(self, x_BTD):
    scale_D = logical_param(self, "scale", ("embed",), (x_BTD.shape[-1],), nn.initializers.ones,
                     self.dtype)
    x = x_BTD.astype(jnp.float32)
    x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps)
    return (x * scale_D.astype(jnp.float32)).astype(self.dtype)


def rope(x_BTnH, positions_BT, theta: float):
  """Rotate-half RoPE (the HF Llama convention) at integer positions."""
  h = x_BTnH.shape[-1]
  inv_freq = theta ** (-jnp.arange(0, h, 2, dtype=jnp.float32) / h)
  angles_BTh = positions_BT.astype(jnp.float32)[..., None] * inv_freq
  cos = jnp.cos(angles_BTh)[:, :, None, :]
  sin = jnp.sin(angles_BTh)[:, :, None, :]
  x = x_BTnH.astype(jnp.float32)
  x1, x2 = x[..., : h // 2], x[..., h // 2:]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_BTnH.dtype)


def _write(cache_BKSH, new_BTKH, positions_BT):
  """Writes each row's T new slots at that row's own positions, in place under jit.

  One scatter with in-bounds promised (capacity is checked on the host): a
  vmapped dynamic_update_slice lowered to a bounds-checked scatter that XLA
  expanded into extra full-cache copies every step.
  """
  B = cache_BKSH.shape[0]
  rows_B1 = jnp.arange(B, dtype=jnp.int32)[:, None]
  return cache_BKSH.at[rows_B1, :, positions_BT].set(new_BTKH.astype(cache_BKSH.dtype),
                                                     mode="promise_in_bounds")


CAUSAL_CHUNK = 512  # query rows per block of a call's causal self-attention


def _causal_attention(q_BTNH, k_BKTH, v_BKTH, positions_BT, K: int, scale: float, dt):
  """Causal attention among one call's T tokens -> [B, K, G*T, H], rows ordered (g, t).

  Queries go in blocks of CAUSAL_CHUNK, each against the keys up to its end only:
  a 2,048-token prefill then scores 62% of the T x T pairs (the rest would all be
  masked), and each block's scores stay small enough to stay in cache.
  """
  B, T, N, H = q_BTNH.shape
  G = N // K
  neg = jnp.finfo(jnp.float32).min
  outs = []
  for a in range(0, T, CAUSAL_CHUNK):
    b = min(T, a + CAUSAL_CHUNK)
    q_BKQH = q_BTNH[:, a:b].reshape(B, b - a, K, G, H).transpose(0, 2, 3, 1, 4).reshape(
        B, K, G * (b - a), H)
    q_pos_BQ = jnp.broadcast_to(positions_BT[:, None, a:b], (B, G, b - a)).reshape(B, -1)
    scores_BKQT = jnp.einsum("bkqh,bkth->bkqt", q_BKQH, k_BKTH[:, :, :b],
                             preferred_element_type=jnp.float32) * scale
    causal_BQT = positions_BT[:, None, :b] <= q_pos_BQ[:, :, None]
    scores_BKQT = jnp.where(causal_BQT[:, None], scores_BKQT, neg)
    probs_BKQT = jax.nn.softmax(scores_BKQT, axis=-1).astype(dt)
    out_BKQH = jnp.einsum("bkqt,bkth->bkqh", probs_BKQT, v_BKTH[:, :, :b])
    outs.append(out_BKQH.reshape(B, K, G, b - a, H))
  return jnp.concatenate(outs, axis=3).reshape(B, K, G * T, H)


class Attention(nn.Module):
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BTD, positions_BT, kv: Optional[Tuple[jax.Array, jax.Array]],
               empty_cache: bool = False):
    """`empty_cache` (static): the cache `kv` holds no live slot (a prefill), so its
    capacity is not read: only this call's tokens are attended to, then written."""
    c = self.config
    dt, init = c.jnp_dtype, nn.initializers.normal(c.init_std)
    D, N, K, H = c.d_model, c.num_heads, c.num_kv_heads, c.head_dim
    wq = logical_param(self, "wq_DNH", ("embed", "heads", "head_dim"), (D, N, H), init, dt)
    wk = logical_param(self, "wk_DKH", ("embed", "kv_heads", "head_dim"), (D, K, H), init, dt)
    wv = logical_param(self, "wv_DKH", ("embed", "kv_heads", "head_dim"), (D, K, H), init, dt)
    wo = logical_param(self, "wo_NHD", ("heads", "head_dim", "embed"), (N, H, D), init, dt)
    B, T = positions_BT.shape
    dense = functools.partial(cpu_matmul.dense, mode=c.matmul)
    q_BTI, k_BTI, v_BTI = dense(x_BTD, wq.reshape(D, N * H), wk.reshape(D, K * H),
                                wv.reshape(D, K * H))
    q_BTNH = q_BTI.reshape(B, T, N, H)
    k_BTKH, v_BTKH = k_BTI.reshape(B, T, K, H), v_BTI.reshape(B, T, K, H)
    if c.qkv_bias:
      zeros = nn.initializers.zeros
      q_BTNH += logical_param(self, "bq_NH", ("heads", "head_dim"), (N, H), zeros, dt)
      k_BTKH += logical_param(self, "bk_KH", ("kv_heads", "head_dim"), (K, H), zeros, dt)
      v_BTKH += logical_param(self, "bv_KH", ("kv_heads", "head_dim"), (K, H), zeros, dt)
    q_BTNH = rope(q_BTNH, positions_BT, c.rope_theta)
    k_BTKH = rope(k_BTKH, positions_BT, c.rope_theta)

    G = N // K
    # Attention over [the cache's live slots] + [this call's T tokens, causally].
    # The cache is read as it was *before* this call and updated only for the
    # returned cache, so the update has a single user and stays in place: when
    # attention read the updated cache, XLA:CPU duplicated the update and copied
    # the whole cache every layer, every step.
    k_BKTH = k_BTKH.transpose(0, 2, 1, 3)
    v_BKTH = v_BTKH.transpose(0, 2, 1, 3)
    scale = H ** -0.5
    if kv is None or empty_cache:  # attend within this call (training, a prefill)
      # A prefill's cache is all stale slots: reading it cost O(T x capacity) for nothing.
      out_BKQH = _causal_attention(q_BTNH, k_BKTH, v_BKTH, positions_BT, K, scale, dt)
      new_kv = None if kv is None else (_write(kv[0], k_BTKH, positions_BT),
                                        _write(kv[1], v_BTKH, positions_BT))
    else:
      cache_k, cache_v = kv
      S = cache_k.shape[2]
      # Query rows of one kv head, ordered (g, t): [B, K, Q=G*T, H].
      q_BKQH = q_BTNH.reshape(B, T, K, G, H).transpose(0, 2, 3, 1, 4).reshape(B, K, G * T, H)
      q_pos_BQ = jnp.broadcast_to(positions_BT[:, None, :], (B, G, T)).reshape(B, G * T)
      neg = jnp.finfo(jnp.float32).min
      scores_BKQT = jnp.einsum("bkqh,bkth->bkqt", q_BKQH, k_BKTH,
                               preferred_element_type=jnp.float32) * scale
      causal_BQT = positions_BT[:, None, :] <= q_pos_BQ[:, :, None]
      scores_BKQT = jnp.where(causal_BQT[:, None], scores_BKQT, neg)
      scores_BKQS = jnp.einsum("bkqh,bksh->bkqs", q_BKQH, cache_k,
                               preferred_element_type=jnp.float32) * scale
      live_BS = jnp.arange(S, dtype=jnp.int32)[None, :] < positions_BT[:, :1]  # stale: masked
      scores_BKQS = jnp.where(live_BS[:, None, None, :], scores_BKQS, neg)
      probs = jax.nn.softmax(jnp.concatenate([scores_BKQS, scores_BKQT], axis=-1), axis=-1)
      probs = probs.astype(dt)
      out_BKQH = (jnp.einsum("bkqs,bksh->bkqh", probs[..., :S], cache_v) +
                  jnp.einsum("bkqt,bkth->bkqh", probs[..., S:], v_BKTH))
      # Every read of the old cache must happen before its in-place update.
      # XLA:CPU drops optimization barriers before copy insertion, so the order
      # is made a data dependency instead (x * 0 is not folded for floats);
      # without it XLA copied the whole cache twice per layer per step.
      after_reads = jnp.zeros((), k_BTKH.dtype) * out_BKQH[0, 0, 0, 0].astype(k_BTKH.dtype)
      k_BTKH, v_BTKH = k_BTKH + after_reads, v_BTKH + after_reads
      new_kv = (_write(cache_k, k_BTKH, positions_BT), _write(cache_v, v_BTKH, positions_BT))
    out_BTI = out_BKQH.reshape(B, K, G, T, H).transpose(0, 3, 1, 2, 4).reshape(B, T, N * H)
    # A 2-D contraction: with 'btnh,nhd' XLA transposed (copied) wo every call.
    return dense(out_BTI, wo.reshape(N * H, D)), new_kv


class Mlp(nn.Module):
  """SwiGLU MLP. `zero_out`: the output projection starts at zero, so a residual adapter
  built from it starts as the identity."""
  config: ModelConfig
  zero_out: bool = False

  @nn.compact
  def __call__(self, x_BTD):
    c = self.config
    dt, init = c.jnp_dtype, nn.initializers.normal(c.init_std)
    wg = logical_param(self, "wgate_DF", ("embed", "mlp"), (c.d_model, c.d_ff), init, dt)
    wu = logical_param(self, "wup_DF", ("embed", "mlp"), (c.d_model, c.d_ff), init, dt)
    wd = logical_param(self, "wdown_FD", ("mlp", "embed"), (c.d_ff, c.d_model),
                nn.initializers.zeros if self.zero_out else init, dt)
    dense = functools.partial(cpu_matmul.dense, mode=c.matmul)
    g_BTF, u_BTF = dense(x_BTD, wg, wu)
    h_BTF = jax.nn.silu(g_BTF) * u_BTF
    return dense(h_BTF, wd)


class Block(nn.Module):
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BTD, positions_BT, kv, empty_cache: bool = False):
    c = self.config
    h, new_kv = Attention(c, name="attn")(
        RMSNorm(c.norm_eps, c.jnp_dtype, name="attn_norm")(x_BTD), positions_BT, kv, empty_cache)
    x_BTD = x_BTD + h
    x_BTD = x_BTD + Mlp(c, name="mlp")(RMSNorm(c.norm_eps, c.jnp_dtype, name="mlp_norm")(x_BTD))
    return x_BTD, new_kv


class Transformer(nn.Module):
  """`(tokens_BT, cache) -> (logits_BTV float32, cache)`.

  With a cache, the T tokens of row b sit at positions `cache.length_B[b] + t`;
  they are written into the cache and the returned cache's lengths advance by
  T. Without one (`cache=None`), the call is a plain causal forward over the T
  tokens at positions `0..T-1`. `logits_at_B` selects one
  position per row for the head (e.g. the last prompt token), giving [B, 1, V]
  and sparing the vocab projection for the rest. `hidden_layers` (layer
  indices, static) also returns the residual stream after each of those
  layers at every position, [B, T, L, D] (the features a drafter reads).
  `empty_cache` (static): the cache holds nothing yet (a prefill), so attention
  skips reading its capacity.
  """
  config: ModelConfig

  @nn.compact
  def __call__(self, tokens_BT, cache: Optional[KVCache] = None, logits_at_B=None,
               head_logits=False, hidden_layers: Tuple[int, ...] = (), empty_cache=False):
    c = self.config
    dt, init = c.jnp_dtype, nn.initializers.normal(c.init_std)
    V, U = c.vocab_size, c.head_vocab
    if c.sub_vocab:
      ids_U = logical_param(self, "vocab_ids_U", (None,), (U,),
                     lambda key, shape, dtype: jnp.arange(shape[0], dtype=dtype), jnp.int32)
    # Tied sub-vocab: row U of the [U + 1, D] table embeds every id outside the subset.
    rows = U + 1 if c.sub_vocab and c.tie_embeddings else V
    embedding_VD = logical_param(self, "embedding_VD", ("vocab", "embed"), (rows, c.d_model),
                                 init, dt)
    B, T = tokens_BT.shape
    start_B = jnp.zeros((B,), jnp.int32) if cache is None else cache.length_B
    positions_BT = start_B[:, None] + jnp.arange(T, dtype=jnp.int32)
    rows_BT = tokens_BT
    if c.sub_vocab and c.tie_embeddings:
      rows_BT = sub_vocab_index(ids_U, V, outside=U)[tokens_BT]
    x_BTD = sharding.constrain(jnp.take(embedding_VD, rows_BT, axis=0), ACT_AXES)
    ks, vs, hidden = [], [], {}
    for i in range(c.num_layers):
      kv = None if cache is None else (cache.k[i], cache.v[i])
      x_BTD, new_kv = Block(c, name=f"layers_{i}")(x_BTD, positions_BT, kv, empty_cache)
      x_BTD = sharding.constrain(x_BTD, ACT_AXES)
      if i in hidden_layers:
        hidden[i] = x_BTD
      if new_kv is not None:
        ks.append(new_kv[0])
        vs.append(new_kv[1])
    if c.adapter_dim:
      a = c.replace(d_ff=c.adapter_dim)
      x_BTD = x_BTD + Mlp(a, zero_out=True, name="adapter")(
          RMSNorm(c.norm_eps, dt, name="adapter_norm")(x_BTD))
    x_BTD = RMSNorm(c.norm_eps, dt, name="final_norm")(x_BTD)
    if logits_at_B is not None:
      x_BTD = jnp.take_along_axis(x_BTD, logits_at_B[:, None, None].astype(jnp.int32), axis=1)
    if c.tie_embeddings:
      logits_BTU = cpu_matmul.dense(x_BTD, embedding_VD, nt=True, ns=(U,), mode=c.matmul,
                                    out_dtype=jnp.float32)
    else:
      head_DU = logical_param(self, "lm_head_DU", ("embed", "vocab"), (c.d_model, U), init, dt)
      logits_BTU = cpu_matmul.dense(x_BTD, head_DU, mode=c.matmul, out_dtype=jnp.float32)
    logits_BTU = logits_BTU.astype(jnp.float32)
    if c.sub_vocab and not head_logits:
      logits_BTU = scatter_sub_vocab(logits_BTU, ids_U, V)
    logits_BTV = sharding.constrain(logits_BTU, ("batch", None, "vocab"))
    if cache is not None:
      cache = sharding.constrain_cache(
          KVCache(k=tuple(ks), v=tuple(vs), length_B=cache.length_B + T))
    if hidden_layers:
      return logits_BTV, cache, jnp.stack([hidden[i] for i in hidden_layers], axis=2)
    return logits_BTV, cache


def check_hidden_layers(config: ModelConfig, hidden_layers) -> Tuple[int, ...]:
  """`hidden_layers` as a tuple of valid layer indices (raised before tracing otherwise)."""
  layers = tuple(as_int("hidden_layers[]", i, 0, config.num_layers - 1) for i in hidden_layers)
  if len(set(layers)) != len(layers):
    raise ValueError(f"hidden_layers {layers}: want distinct layer indices in "
                     f"[0, {config.num_layers})")
  return layers


def forward(params, config: ModelConfig, tokens_BT, cache: Optional[KVCache] = None,
            logits_at_B=None, head_logits=False, hidden_layers: Sequence[int] = (),
            empty_cache: bool = False):
  """Pure function: `(params, tokens, cache) -> (logits_BTV float32, cache)`.

  `head_logits=True` returns a sub-vocab model's logits over its own U ids
  (ordered as `params["vocab_ids_U"]`) instead of scattering them into V.
  `hidden_layers=(i, j, ...)` returns `(logits, cache, hidden_BTLD)` as well: the
  residual stream after layers i, j, ... (in that order) at every position,
  in the model's dtype. Without it the call computes nothing extra.
  `empty_cache=True` promises that `cache` holds nothing yet (a fresh
  `init_cache`: the samplers' prefills); the result is the same, without reading
  the cache's capacity (stale slots, masked out anyway).
  """
  layers = check_hidden_layers(config, hidden_layers)
  return Transformer(config).apply({"params": params}, tokens_BT, cache, logits_at_B,
                                   head_logits, layers, empty_cache)
