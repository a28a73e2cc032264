"""Optimizer and jitted train steps (LM from scratch, and draft distillation)."""
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from specjax.checks import as_float, as_int
from specjax.decoding.sampling import Sampling
from specjax.models.config import ModelConfig
from specjax.models.transformer import forward, sub_vocab_index
from specjax.training import losses


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  learning_rate: float = 1e-3
  warmup_steps: int = 100
  total_steps: int = 10_000
  weight_decay: float = 0.1
  b1: float = 0.9
  b2: float = 0.95
  clip_norm: float = 1.0
  min_lr_ratio: float = 0.1

  def __post_init__(self):
    """Each field a finite number in its range (clip_norm > 0: 0 would zero every update)."""
    f = lambda name, *a, **kw: object.__setattr__(
        self, name, as_float(f"OptimConfig.{name}", getattr(self, name), *a, **kw))
    f("learning_rate", 0)
    f("weight_decay", 0)
    f("b1", 0, 1)
    f("b2", 0, 1)
    f("clip_norm", 0, lo_open=True, note=" (the global gradient norm kept)")
    f("min_lr_ratio", 0, 1)
    for name, lo in (("warmup_steps", 0), ("total_steps", 1)):
      object.__setattr__(self, name, as_int(f"OptimConfig.{name}", getattr(self, name), lo))


def make_schedule(c: OptimConfig) -> optax.Schedule:
  """Linear warmup to learning_rate, then cosine decay to min_lr_ratio of it."""
  return optax.warmup_cosine_decay_schedule(
      0.0, c.learning_rate, max(c.warmup_steps, 1), max(c.total_steps, c.warmup_steps + 1),
      end_value=c.learning_rate * c.min_lr_ratio)


def make_optimizer(c: OptimConfig) -> optax.GradientTransformation:
  """AdamW with linear warmup then cosine decay, after global-norm clipping."""
  return optax.chain(optax.clip_by_global_norm(c.clip_norm),
                     optax.adamw(make_schedule(c), b1=c.b1, b2=c.b2,
                                 weight_decay=c.weight_decay))


@struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any


def init_train_state(params, optimizer) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(params))


@dataclasses.dataclass(frozen=True)
class DistillConfig:  # static
  divergence: str = "tvd"
  sampling: Sampling = Sampling(temperature=1.0)
  beta: float = 0.5


def split_params(params, trainable="all"):
  """(trainable, frozen) top-level param groups; integer leaves are always frozen.

  `trainable`: "all", or a comma-separated list of top-level names/prefixes
  ("adapter,adapter_norm,lm_head_DU"): e.g. a self-draft trains its adapter
  while the target's layers it shares stay fixed.
  """
  names = None if trainable == "all" else tuple(n.strip() for n in trainable.split(",") if n)
  matches = lambda name, n: name == n or name.startswith(n + "_")
  train, frozen = {}, {}
  for name, value in params.items():
    is_int = all(jnp.issubdtype(x.dtype, jnp.integer) for x in jax.tree.leaves(value))
    wanted = names is None or any(matches(name, n) for n in names)
    (train if wanted and not is_int else frozen)[name] = value
  if not train:
    raise ValueError(f"trainable={trainable!r} selects no parameters; top-level names are "
                     f"{sorted(params)}")
  unknown = [n for n in names or () if not any(matches(name, n) for name in params)]
  if unknown:  # e.g. a name from before a rename (lm_head_DV): it would silently stay frozen
    raise ValueError(f"trainable={trainable!r}: {unknown} match no parameter; top-level names "
                     f"are {sorted(params)}")
  return train, frozen


def lm_step(state: TrainState, tokens_BT, mask_BT, frozen=None, *, config: ModelConfig,
            optimizer):
  """One next-token cross-entropy step; tokens_BT[:, t+1] is the target at t.

  A sub-vocab model scores only its U ids: targets outside them are masked out.
  """
  targets_BT, mask_BT = tokens_BT[:, 1:], mask_BT[:, 1:]

  def loss_fn(params):
    params = {**(frozen or {}), **params}
    logits, _ = forward(params, config, tokens_BT[:, :-1], head_logits=True)
    tgt, m = targets_BT, mask_BT
    if config.sub_vocab:
      tgt = sub_vocab_index(params["vocab_ids_U"], config.vocab_size, outside=-1)[targets_BT]
      m = mask_BT & (tgt >= 0)
      tgt = jnp.maximum(tgt, 0)
    return losses.cross_entropy(logits, tgt, m)
  return apply_grads(state, loss_fn, optimizer)


def distill_step(state: TrainState, target_params, tokens_BT, mask_BT, frozen=None, *,
                 config: ModelConfig, target_config: ModelConfig, optimizer,
                 distill: DistillConfig):
  """One distillation step of the draft (state) towards the target on tokens_BT."""
  target_logits, _ = forward(target_params, target_config, tokens_BT)

  def loss_fn(params):
    params = {**(frozen or {}), **params}
    logits, _ = forward(params, config, tokens_BT, head_logits=True)
    return losses.distill_loss(distill.divergence, target_logits, logits, mask_BT,
                               distill.sampling, distill.beta, params.get("vocab_ids_U"))
  return apply_grads(state, loss_fn, optimizer)


def apply_grads(state: TrainState, loss_fn, optimizer):
  """One optimizer step on `loss_fn(params) -> loss` or `-> (loss, {name: metric})`."""
  def with_aux(params):
    out = loss_fn(params)
    return out if isinstance(out, tuple) else (out, {})
  (loss, aux), grads = jax.value_and_grad(with_aux, has_aux=True)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(loss=loss, grad_norm=optax.tree.norm(grads), **aux)
  return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


lm_step_jit = jax.jit(lm_step, static_argnames=("config", "optimizer"), donate_argnums=0)
distill_step_jit = jax.jit(distill_step,
                           static_argnames=("config", "target_config", "optimizer", "distill"),
                           donate_argnums=0)
