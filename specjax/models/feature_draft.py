"""An EAGLE-3 style draft network: one decoder layer that reads the target's hidden states.

Li et al. 2025 (EAGLE-3): the residual streams of a low, a middle and a high
target layer are concatenated and fused by one linear map to the model width
(`fuse`); the draft's input at a position is [token embedding ; feature]
projected to the width, then one decoder layer with its own KV cache, a final
norm and a head over a sub-vocabulary of U frequent ids (logit -inf elsewhere,
so q is 0 there and the accept rule stays exact). The token embedding is the
target's own (shared, frozen). Its output stream `h` stands in for the
target's feature when the draft runs ahead on its own tokens.

Params (a plain dict, as every specjax model):
  embedding_VD           the target's embedding (shared)
  fuse_FD                [L * D, D]: the L target features -> one
  embed_norm, feature_norm, in_proj_ED ([2D, D])
  layers_0               one `Block` (attention + MLP) of `config`'s shape
  final_norm, lm_head_DU, vocab_ids_U
`config` is a `ModelConfig` with num_layers 1 and `feature_layers` (the
target layers read), whose vocab_size is the target's and whose sub_vocab is
U (0: the full vocab).
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from specjax import sharding
from specjax.kernels import cpu_matmul
from specjax.models.config import ModelConfig
from specjax.models.kv_cache import KVCache, init_cache
from specjax.models.transformer import (ACT_AXES, Block, Mlp, RMSNorm, logical_param, rope,
                                        scatter_sub_vocab)


class FeatureDraftNet(nn.Module):
  """`fuse(hidden_BTLD) -> feature_BTD`; `__call__(tokens_BT, feature_BTD, cache)` ->
  `(logits_BTV float32, h_BTD, cache)`, the T tokens at positions `cache.length_B + t`."""
  config: ModelConfig
  num_features: int

  def setup(self):
    c = self.config
    dt, init = c.jnp_dtype, nn.initializers.normal(c.init_std)
    D, U = c.d_model, c.head_vocab
    self.embedding_VD = logical_param(self, "embedding_VD", ("vocab", "embed"), (c.vocab_size, D),
                               init, dt)
    self.fuse_FD = logical_param(self, "fuse_FD", (None, "embed"), (self.num_features * D, D),
                                 init, dt)
    self.embed_norm = RMSNorm(c.norm_eps, dt)
    self.feature_norm = RMSNorm(c.norm_eps, dt)
    self.in_proj_ED = logical_param(self, "in_proj_ED", (None, "embed"), (2 * D, D), init, dt)
    self.layers_0 = Block(c)
    self.final_norm = RMSNorm(c.norm_eps, dt)
    self.lm_head_DU = logical_param(self, "lm_head_DU", ("embed", "vocab"), (D, U), init, dt)
    if c.sub_vocab:
      self.vocab_ids_U = logical_param(self, "vocab_ids_U", (None,), (U,),
                                lambda key, shape, dtype: jnp.arange(shape[0], dtype=dtype),
                                jnp.int32)

  def fuse(self, hidden_BTLD):
    B, T, L, D = hidden_BTLD.shape
    return cpu_matmul.dense(hidden_BTLD.reshape(B, T, L * D).astype(self.config.jnp_dtype),
                            self.fuse_FD, mode=self.config.matmul)

  def inputs(self, tokens_BT, feature_BTD):
    """The layer's input at each pair: [embedding(token) ; feature], normed, projected."""
    c = self.config
    e_BTD = self.embed_norm(jnp.take(self.embedding_VD, tokens_BT, axis=0))
    f_BTD = self.feature_norm(feature_BTD.astype(c.jnp_dtype))
    x_BTD = cpu_matmul.dense(jnp.concatenate([e_BTD, f_BTD], axis=-1), self.in_proj_ED,
                             mode=c.matmul)
    return sharding.constrain(x_BTD, ACT_AXES)

  def head(self, h_BTD):
    """float32 logits over the head's U ids (ordered as vocab_ids_U)."""
    return cpu_matmul.dense(self.final_norm(h_BTD), self.lm_head_DU, mode=self.config.matmul,
                            out_dtype=jnp.float32).astype(jnp.float32)

  def __call__(self, tokens_BT, feature_BTD, cache: KVCache):
    c = self.config
    T = tokens_BT.shape[1]
    positions_BT = cache.length_B[:, None] + jnp.arange(T, dtype=jnp.int32)
    x_BTD = self.inputs(tokens_BT, feature_BTD)
    h_BTD, (k, v) = self.layers_0(x_BTD, positions_BT, (cache.k[0], cache.v[0]))
    logits_BTU = self.head(h_BTD)
    if c.sub_vocab:
      logits_BTU = scatter_sub_vocab(logits_BTU, self.vocab_ids_U, c.vocab_size)
    cache = KVCache(k=(k,), v=(v,), length_B=cache.length_B + T)
    return logits_BTU, h_BTD, cache

  def init_all(self, tokens_BT, hidden_BTLD, cache):
    return self(tokens_BT, self.fuse(hidden_BTLD), cache)


def ttt_attention(q_BPNH, kv, scale: float):
  """Attention of run j = len(kv) over all pairs at once, as the decode loop attends.

  At run j the query at pair p was reached from the target's feature at p - j + 1: the
  cache then holds run 1's keys of pairs 0..p-j+1 and run s's key of pair p - j + s for
  s = 2..j (the draft's own earlier steps). kv[s - 1] = (k_BPKH, v_BPKH) of run s.
  """
  B, P, N, H = q_BPNH.shape
  K = kv[0][0].shape[2]
  j = len(kv)
  q = q_BPNH.reshape(B, P, K, N // K, H)
  neg = jnp.finfo(jnp.float32).min
  k1, v1 = kv[0]
  scores = [jnp.einsum("bpkgh,bmkh->bkgpm", q, k1, preferred_element_type=jnp.float32) * scale]
  seen_PM = jnp.arange(P)[None, :] <= jnp.arange(P)[:, None] - (j - 1)
  scores[0] = jnp.where(seen_PM, scores[0], neg)
  shifted = []
  for s in range(2, j + 1):  # run s's key at pair p - (j - s): shift its keys right by j - s
    d = j - s
    k_s, v_s = (jnp.pad(x[:, :P - d], ((0, 0), (d, 0), (0, 0), (0, 0))) for x in kv[s - 1])
    sc = jnp.einsum("bpkgh,bpkh->bkgp", q, k_s, preferred_element_type=jnp.float32) * scale
    scores.append(jnp.where(jnp.arange(P) >= d, sc, neg)[..., None])
    shifted.append(v_s)
  probs = jax.nn.softmax(jnp.concatenate(scores, axis=-1), axis=-1).astype(v1.dtype)
  out = jnp.einsum("bkgpm,bmkh->bpkgh", probs[..., :P], v1)
  for i, v_s in enumerate(shifted):
    out = out + probs[..., P + i].transpose(0, 3, 1, 2)[..., None] * v_s[:, :, :, None]
  return out.reshape(B, P, N * H)


def unrolled_block(layer, config: ModelConfig, x_BPD, positions_BP, kv):
  """One run of the decoder layer (`Block`'s params `layer`) with `ttt_attention`; returns
  (h_BPD, kv + [this run's (k, v)])."""
  c = config
  a = layer["attn"]
  norm = lambda p, x: RMSNorm(c.norm_eps, c.jnp_dtype).apply({"params": p}, x)  # noqa: E731
  y = norm(layer["attn_norm"], x_BPD)
  q = jnp.einsum("bpd,dnh->bpnh", y, a["wq_DNH"])
  k = jnp.einsum("bpd,dkh->bpkh", y, a["wk_DKH"])
  v = jnp.einsum("bpd,dkh->bpkh", y, a["wv_DKH"])
  if c.qkv_bias:
    q, k, v = q + a["bq_NH"], k + a["bk_KH"], v + a["bv_KH"]
  q, k = rope(q, positions_BP, c.rope_theta), rope(k, positions_BP, c.rope_theta)
  kv = kv + [(k, v)]
  out = ttt_attention(q, kv, c.head_dim ** -0.5)
  x_BPD = x_BPD + jnp.einsum("bpi,id->bpd", out, a["wo_NHD"].reshape(-1, c.d_model))
  x_BPD = x_BPD + Mlp(c).apply({"params": layer["mlp"]}, norm(layer["mlp_norm"], x_BPD))
  return x_BPD, kv


def check_config(config: ModelConfig) -> None:
  if config.num_layers != 1 or config.adapter_dim or config.tie_embeddings or \
      not config.feature_layers:
    raise ValueError("a feature draft's ModelConfig has num_layers=1, no adapter, an untied "
                     f"head and feature_layers; got num_layers={config.num_layers}, adapter_dim="
                     f"{config.adapter_dim}, tie_embeddings={config.tie_embeddings}, "
                     f"feature_layers={config.feature_layers}")


def feature_variables(config: ModelConfig, key: jax.Array):
  """The network's boxed variables (logical axes kept), as `Module.init` gives them."""
  check_config(config)
  L = len(config.feature_layers)
  tokens = jnp.zeros((1, 1), jnp.int32)
  hidden = jnp.zeros((1, 1, L, config.d_model), config.jnp_dtype)
  return FeatureDraftNet(config, L).init(key, tokens, hidden, init_cache(config, 1, 1),
                                         method="init_all")


def init_feature_params(config: ModelConfig, key: jax.Array,
                        embedding_VD: Optional[jax.Array] = None, vocab_ids_U=None):
  """Random params (the target's embedding and the chosen sub-vocab ids set when given)."""
  params = nn.unbox(jax.jit(feature_variables, static_argnums=0)(config, key))["params"]
  if embedding_VD is not None:
    params["embedding_VD"] = embedding_VD
  if vocab_ids_U is not None:
    params["vocab_ids_U"] = jnp.asarray(vocab_ids_U, jnp.int32)
  return params


def fuse(params, config: ModelConfig, hidden_BTLD):
  """The target's L features at each position -> the draft's one feature, [B, T, D]."""
  return FeatureDraftNet(config, hidden_BTLD.shape[2]).apply(
      {"params": params}, hidden_BTLD, method="fuse")


def feature_forward(params, config: ModelConfig, tokens_BT, feature_BTD, cache: KVCache):
  """`(logits_BTV float32, h_BTD, cache)`: the draft on tokens with the features before them."""
  num_features = params["fuse_FD"].shape[0] // config.d_model
  return FeatureDraftNet(config, num_features).apply({"params": params}, tokens_BT,
                                                     feature_BTD, cache)


def unrolled_logits(params, config: ModelConfig, tokens_BP, feature_BPD, steps: int):
  """Training-time test: the draft run `steps` times over all P pairs at once, each run on
  the previous one's outputs, exactly as `FeatureDrafter.propose` runs it (`ttt_attention`).

  Pair p holds token p + 1 and, in run 1, the target's feature at p; in run j > 1 its
  feature is run j - 1's output at pair p - 1. Run j's logits at pair p predict token
  p + 2, j - 1 draft steps after the last target feature used (p - j + 1). Returns
  [steps] float32 logits over the head's U ids, each [B, P, U].
  """
  net = FeatureDraftNet(config, params["fuse_FD"].shape[0] // config.d_model)
  positions_BP = jnp.broadcast_to(jnp.arange(tokens_BP.shape[1], dtype=jnp.int32),
                                  tokens_BP.shape)
  kv, logits, feature = [], [], feature_BPD
  for _ in range(steps):
    x_BPD = net.apply({"params": params}, tokens_BP, feature, method="inputs")
    h_BPD, kv = unrolled_block(params["layers_0"], config, x_BPD, positions_BP, kv)
    logits.append(net.apply({"params": params}, h_BPD, method="head"))
    feature = jnp.pad(h_BPD[:, :-1], ((0, 0), (1, 0), (0, 0)))  # the next run reads pair p - 1
  return logits
