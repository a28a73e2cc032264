"""`FeatureDrafter`: the speculative loop's side of an EAGLE-3 style feature draft.

The draft (specjax/models/feature_draft.py) predicts the token at position
t + 2 from the token at t + 1 and the target's (fused) feature at t: its cache
entry t holds that pair. The loop hands the drafter the target's features at
the prefill and after every verification (`Features`, see decoding/drafters.py).

State invariant between iterations, for a row with n committed tokens:
- `cache` holds pairs 0..n-3 (token t + 1 with the target's feature at t);
- `feature_BSD[:, t]` holds the fused target feature of every committed
  position t <= n - 2 (later slots: stale, overwritten before use);
- `drafts_BS` holds the last proposal's tokens at their positions.
`propose` runs pair n - 2 (the last committed token with the feature before
it), then k - 1 steps on its own tokens, each with the draft's own output
stream `h` as the feature. `commit` rewrites the pairs of the accepted drafts
with the target's features from the verification call (one k-token call) and
rolls the cache back to n - 2 pairs: O(1) per row, nothing copied.
"""
from typing import Any, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
from flax import struct

from specjax import sharding
from specjax.decoding.drafters import Features, model_drafter
from specjax.decoding.sampling import SamplingLike, sample, warp
from specjax.models.config import ModelConfig
from specjax.models.feature_draft import check_config, feature_forward, fuse, init_feature_params
from specjax.models.kv_cache import KVCache, init_cache
from specjax.models.model import Model
from specjax.models.transformer import check_hidden_layers


@struct.dataclass
class FeatureState:
  cache: KVCache
  feature_BSD: jax.Array
  drafts_BS: jax.Array


def _write(buf_BS, values_BT, start_B):
  """buf[b, start_B[b] + t] = values[b, t] (positions past the end dropped)."""
  pos_BT = start_B[:, None] + jnp.arange(values_BT.shape[1])
  return buf_BS.at[jnp.arange(buf_BS.shape[0])[:, None], pos_BT].set(values_BT, mode="drop")


def _gather(buf_BS, pos_BT):
  return jnp.take_along_axis(buf_BS, pos_BT.reshape(pos_BT.shape + (1,) * (buf_BS.ndim - 2)),
                             axis=1)


@struct.dataclass
class FeatureDrafter:
  """A feature draft as a `Drafter`: `sj.feature_draft(target, ...)` builds one."""
  params: Any
  config: ModelConfig = struct.field(pytree_node=False)  # its feature_layers: the ones read
  name: str = struct.field(pytree_node=False, default="feature_draft")
  placement: Optional[sharding.Placement] = struct.field(pytree_node=False, default=None)

  @property
  def feature_layers(self) -> Tuple[int, ...]:
    return self.config.feature_layers

  @property
  def vocab_size(self) -> int:
    return self.config.vocab_size

  @classmethod
  def from_model(cls, model: Model) -> "FeatureDrafter":
    """A feature draft loaded as a `Model` (`sj.load("smollm2-135m-eagle")`) as a drafter."""
    check_config(model.config)
    return cls(params=model.params, config=model.config, name=model.name)

  def as_model(self, target: Model) -> Model:
    """This draft as a `Model` (to save it: `sj.save`), with the target's tokenizer."""
    return Model(config=self.config, params=self.params, tokenizer=target.tokenizer,
                 eos_id=target.eos_id, name=self.name)

  def init(self, prompt_BT, prompt_len_B, capacity, features: Optional[Features] = None):
    with sharding.active(self.placement):
      return self._init(prompt_BT, prompt_len_B, capacity, features)

  def propose(self, state: FeatureState, seq_BS, n_B, k: int, sampling: SamplingLike, key):
    with sharding.active(self.placement):
      return self._propose(state, seq_BS, n_B, k, sampling, key)

  def commit(self, state: FeatureState, n_B, features: Optional[Features] = None):
    with sharding.active(self.placement):
      return self._commit(state, n_B, features)

  def _init(self, prompt_BT, prompt_len_B, capacity, features: Features):
    B, T = prompt_BT.shape
    feature_BTD = fuse(self.params, self.config, features.hidden_BTLD)
    feature_BSD = jnp.zeros((B, capacity, self.config.d_model), feature_BTD.dtype)
    feature_BSD = feature_BSD.at[:, :T].set(feature_BTD)
    cache = init_cache(self.config, B, capacity)
    if T > 1:  # pairs 0..T-2: token t + 1 with the feature at t
      _, _, cache = feature_forward(self.params, self.config, prompt_BT[:, 1:],
                                    feature_BTD[:, :-1], cache)
    return FeatureState(cache=cache.rollback(jnp.maximum(prompt_len_B - 2, 0)),
                        feature_BSD=feature_BSD, drafts_BS=jnp.zeros((B, capacity), jnp.int32))

  def _propose(self, state: FeatureState, seq_BS, n_B, k: int, sampling: SamplingLike, key):
    pos_B = jnp.maximum(n_B - 2, 0)
    tok_B = jnp.take_along_axis(seq_BS, (n_B - 1)[:, None], axis=1)[:, 0]
    feat_BD = jnp.where((n_B >= 2)[:, None], _gather(state.feature_BSD, pos_B[:, None])[:, 0],
                        0).astype(state.feature_BSD.dtype)

    def step(carry, i):
      cache, tok_B, feat_BD = carry
      logits_B1V, h_B1D, cache = feature_forward(self.params, self.config, tok_B[:, None],
                                                 feat_BD[:, None], cache)
      q_BV = warp(logits_B1V[:, 0], sampling)
      tok_B = sample(jax.random.fold_in(key, i), q_BV, sampling)
      return (cache, tok_B, h_B1D[:, 0].astype(feat_BD.dtype)), (tok_B, q_BV)

    (cache, _, _), (toks_GB, q_GBV) = jax.lax.scan(
        step, (state.cache.rollback(pos_B), tok_B, feat_BD), jnp.arange(k))
    tokens_BG, q_BGV = toks_GB.T, q_GBV.transpose(1, 0, 2)
    drafts_BS = _write(state.drafts_BS, tokens_BG, n_B)
    return tokens_BG, q_BGV, state.replace(cache=cache, drafts_BS=drafts_BS)

  def _commit(self, state: FeatureState, n_B, features: Features):
    start_B = features.start_B  # the last token committed before the verification
    feature_BGD = fuse(self.params, self.config, features.hidden_BTLD)  # [B, k + 1, D]
    feature_BSD = _write(state.feature_BSD, feature_BGD, start_B)
    k = feature_BGD.shape[1] - 1
    # Pairs start..start+k-1: draft j + 1 (at position start + 1 + j) with the feature at
    # start + j. Those of accepted drafts are kept; the rest are rolled back.
    drafts_BG = _gather(state.drafts_BS, start_B[:, None] + 1 + jnp.arange(k))
    _, _, cache = feature_forward(self.params, self.config, drafts_BG, feature_BGD[:, :k],
                                  state.cache.rollback(start_B))
    return state.replace(cache=cache.rollback(jnp.maximum(n_B - 2, 0)), feature_BSD=feature_BSD)

  def calls_per_proposal(self, k: int) -> int:
    return k + 1  # k one-token steps, and the k-token rewrite of the accepted pairs


def drafter_of(model: Model):
  """The drafter a `Model` runs as: a `FeatureDrafter` when it is a feature draft (its config
  names `feature_layers`, e.g. `sj.load("smollm2-135m-eagle")`), else a `ModelDrafter`."""
  return FeatureDrafter.from_model(model) if model.config.feature_layers else \
      model_drafter(model)


def default_feature_layers(num_layers: int) -> Tuple[int, ...]:
  """A low, a middle and a high layer (EAGLE-3's choice), distinct, in order."""
  return tuple(sorted({min(1, num_layers - 1), num_layers // 2, num_layers - 2 if num_layers > 2
                       else num_layers - 1}))


def feature_draft(target: Model, key: jax.Array, feature_layers: Optional[Sequence[int]] = None,
                  vocab_ids=None, d_ff: Optional[int] = None,
                  name: str = "feature_draft") -> FeatureDrafter:
  """`sj.feature_draft(target, key)`: a randomly initialised EAGLE-3 style feature draft.

  One decoder layer of the target's width (its own `d_ff`, default the
  target's), reading the target's residual stream at `feature_layers`
  (default: a low, a middle and a high layer), with the target's embedding
  (shared) and a head over `vocab_ids` (default: every id).
  """
  tc = target.config
  layers = check_hidden_layers(tc, feature_layers if feature_layers is not None
                               else default_feature_layers(tc.num_layers))
  U = 0 if vocab_ids is None else len(vocab_ids)
  if vocab_ids is not None and (U < 1 or U >= tc.vocab_size or
                                len(set(int(i) for i in vocab_ids)) != U or
                                min(vocab_ids) < 0 or max(vocab_ids) >= tc.vocab_size):
    raise ValueError(f"vocab_ids: want 1..{tc.vocab_size - 1} distinct ids in "
                     f"[0, {tc.vocab_size}), got {U} ids")
  config = tc.replace(num_layers=1, sub_vocab=U, adapter_dim=0, tie_embeddings=False,
                      d_ff=d_ff or tc.d_ff, feature_layers=layers)
  params = init_feature_params(config, key, embedding_VD=target.params["embedding_VD"],
                               vocab_ids_U=vocab_ids)
  return FeatureDrafter(params=params, config=config, name=name)
