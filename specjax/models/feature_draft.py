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
`config` is a `ModelConfig` with num_layers 1 whose vocab_size is the
target's and whose sub_vocab is U (0: the full vocab).
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from specjax import sharding
from specjax.kernels import cpu_matmul
from specjax.models.config import ModelConfig
from specjax.models.kv_cache import KVCache, init_cache
from specjax.models.transformer import (ACT_AXES, Block, RMSNorm, logical_param,
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

  def __call__(self, tokens_BT, feature_BTD, cache: KVCache):
    c = self.config
    T = tokens_BT.shape[1]
    positions_BT = cache.length_B[:, None] + jnp.arange(T, dtype=jnp.int32)
    e_BTD = self.embed_norm(jnp.take(self.embedding_VD, tokens_BT, axis=0))
    f_BTD = self.feature_norm(feature_BTD.astype(c.jnp_dtype))
    x_BTD = cpu_matmul.dense(jnp.concatenate([e_BTD, f_BTD], axis=-1), self.in_proj_ED,
                             mode=c.matmul)
    x_BTD = sharding.constrain(x_BTD, ACT_AXES)
    h_BTD, (k, v) = self.layers_0(x_BTD, positions_BT, (cache.k[0], cache.v[0]))
    logits_BTU = cpu_matmul.dense(self.final_norm(h_BTD), self.lm_head_DU, mode=c.matmul,
                                  out_dtype=jnp.float32).astype(jnp.float32)
    if c.sub_vocab:
      logits_BTU = scatter_sub_vocab(logits_BTU, self.vocab_ids_U, c.vocab_size)
    cache = KVCache(k=(k,), v=(v,), length_B=cache.length_B + T)
    return logits_BTU, h_BTD, cache

  def init_all(self, tokens_BT, hidden_BTLD, cache):
    return self(tokens_BT, self.fuse(hidden_BTLD), cache)


def check_config(config: ModelConfig) -> None:
  if config.num_layers != 1 or config.adapter_dim or config.tie_embeddings:
    raise ValueError("a feature draft's ModelConfig has num_layers=1, no adapter and an untied "
                     f"head; got num_layers={config.num_layers}, adapter_dim="
                     f"{config.adapter_dim}, tie_embeddings={config.tie_embeddings}")


def init_feature_params(config: ModelConfig, num_features: int, key: jax.Array,
                        embedding_VD: Optional[jax.Array] = None, vocab_ids_U=None):
  """Random params (the target's embedding and the chosen sub-vocab ids set when given)."""
  check_config(config)
  net = FeatureDraftNet(config, num_features)
  tokens = jnp.zeros((1, 1), jnp.int32)
  hidden = jnp.zeros((1, 1, num_features, config.d_model), config.jnp_dtype)
  params = nn.unbox(jax.jit(lambda k: net.init(k, tokens, hidden, init_cache(config, 1, 1),
                                                method="init_all"))(key))["params"]
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
