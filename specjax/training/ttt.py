"""Training a feature draft with training-time test (EAGLE-3) on the target's own replies.

One step: the target reads the batch once (its logits and the hidden states of the draft's
`feature_layers`, recomputed rather than stored: see replies.py); the draft is unrolled
`steps` runs on its own outputs (`feature_draft.unrolled_logits`, the decode loop's exact
computation for every pair at once); run j's loss is the soft cross-entropy of the draft's
distribution against the target's (both warped by `sampling`) at every reply position it
can reach, and the runs are weighted decay**(j - 1) (later steps matter less: a token is
only drafted there if all before it were accepted).

A sub-vocab draft scores U ids: the cross-entropy is taken over them, -sum_U p log q (the
target's mass outside U is unreachable for any such draft and carries no gradient).
"""
import dataclasses

import jax
import jax.numpy as jnp

from specjax.decoding.sampling import Sampling, warp
from specjax.models.config import ModelConfig
from specjax.models.feature_draft import fuse, unrolled_logits
from specjax.models.transformer import forward
from specjax.training.train_step import TrainState, apply_grads


@dataclasses.dataclass(frozen=True)
class TTTConfig:  # static
  steps: int = 3           # runs unrolled (1 = no training-time test)
  decay: float = 0.8       # run j's weight: decay ** (j - 1)
  sampling: Sampling = Sampling(temperature=1.0)

  def __post_init__(self):
    if not isinstance(self.steps, int) or self.steps < 1:
      raise ValueError(f"ttt steps must be an integer >= 1, got {self.steps!r}")
    if not 0 < self.decay <= 1:
      raise ValueError(f"ttt decay must be in (0, 1], got {self.decay!r}")
    if self.sampling.greedy:
      raise ValueError("ttt sampling needs temperature > 0 (a greedy target distribution is "
                       "one-hot); train at temperature 1 for greedy decoding")


def ttt_loss(params, config: ModelConfig, target_logits_BTV, hidden_BTLD, tokens_BT, mask_BT,
             ttt: TTTConfig):
  """(loss, metrics): metrics per run j (1-based) `loss_j` and `top1_j`, the fraction of
  positions where the draft's argmax is the target's (greedy acceptance, per position)."""
  T = tokens_BT.shape[1]
  feature_BTD = fuse(params, config, hidden_BTLD)
  logits = unrolled_logits(params, config, tokens_BT[:, 1:], feature_BTD[:, :-1], ttt.steps)
  # Pair p (0..T-2) predicts token p + 2 from the target's distribution at p + 1.
  p_BPV = jax.lax.stop_gradient(warp(target_logits_BTV[:, 1:], ttt.sampling))
  target_top_BP = jnp.argmax(target_logits_BTV[:, 1:], axis=-1)
  ids_U = params.get("vocab_ids_U")
  p_BPU = p_BPV if ids_U is None else jnp.take(p_BPV, ids_U, axis=-1)
  reply_BP = jnp.pad(mask_BT[:, 2:], ((0, 0), (0, 1)))  # pair T-2 has no next token here
  total, weights, metrics = 0.0, 0.0, {}
  for j, logits_BPU in enumerate(logits, start=1):
    valid = (reply_BP & (jnp.arange(T - 1) >= j - 1)).astype(jnp.float32)
    n = jnp.maximum(jnp.sum(valid), 1.0)
    ce_BP = -jnp.sum(p_BPU * jax.nn.log_softmax(logits_BPU, axis=-1), axis=-1)
    loss_j = jnp.sum(ce_BP * valid) / n
    top_BP = jnp.argmax(logits_BPU, axis=-1)
    top_BP = top_BP if ids_U is None else ids_U[top_BP]
    metrics[f"loss_{j}"] = loss_j
    metrics[f"top1_{j}"] = jnp.sum((top_BP == target_top_BP) * valid) / n
    w = ttt.decay ** (j - 1)
    total, weights = total + w * loss_j, weights + w
  return total / weights, metrics


def ttt_step(state: TrainState, target_params, tokens_BT, mask_BT, frozen, *,
             config: ModelConfig, target_config: ModelConfig, optimizer, ttt: TTTConfig):
  """One training-time-test step of the feature draft (state) on the target's replies."""
  target_logits_BTV, _, hidden_BTLD = forward(target_params, target_config, tokens_BT,
                                              hidden_layers=config.feature_layers)
  return apply_grads(state, lambda params: ttt_loss(
      {**frozen, **params}, config, target_logits_BTV, hidden_BTLD, tokens_BT, mask_BT, ttt),
                     optimizer)


ttt_step_jit = jax.jit(ttt_step, static_argnames=("config", "target_config", "optimizer", "ttt"),
                       donate_argnums=0)
