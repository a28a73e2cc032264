"""The training loop: LM from scratch or draft distillation, resumable, acceptance-tracked.

Everything the loop needs arrives as objects (models, the batch iterator, eval
prompts) plus one frozen `LoopConfig`; `experiments/train.py` builds them from a
config. Each step is a pure function of (state, batch, step): the batch comes
from a saved iterator position and every random key is `fold_in(key, step)`,
so a run killed and resumed from its last checkpoint reaches the same
parameters as one that never stopped. A NaN/inf loss or parameter stops the run before
anything is saved (training/resume.py also verifies every checkpoint's checksums on save and
resume, and resumes from the newest good one).

Mode "feature" trains a feature draft (`sj.feature_draft`) with training-time test
(training/ttt.py) on reply batches ({tokens_BT, mask_BT}: replies.ReplyBatches); its best
draft is saved as a Model derived from the target (only what differs from it is stored).

Distillation data sources (DistillConfig): "corpus" (the fixed corpus),
"target" (sequence-level KD: the target continues a corpus prefix), "draft"
(on-policy: the current draft continues it), mixed by `mixture` weights with
one deterministic choice per step.
"""
import dataclasses
import json
import signal
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from specjax.decoding.autoregressive import generate
from specjax.decoding.feature_drafter import FeatureDrafter
from specjax.checks import as_float, as_int
from specjax.decoding.sampling import Sampling
from specjax.decoding.speculative import speculative_generate
from specjax.models import integrity
from specjax.models.model import Model
from specjax.models.registry import REGISTRY
from specjax.training import metrics, resume, train_step, ttt
from specjax.workdir import Progress, claim_workdir, write_json

SOURCES = ("corpus", "target", "draft")
MODES = ("distill", "lm", "feature")


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  mode: str = "distill"           # "distill", "lm" (cross-entropy, from scratch) or "feature"
  steps: int = 100
  trainable: str = "all"          # see train_step.split_params
  mixture: Tuple[Tuple[str, float], ...] = (("corpus", 1.0),)
  prefix_len: int = 16            # corpus tokens kept before a generated continuation
  gen_sampling: Sampling = Sampling(temperature=1.0)
  ckpt_every: int = 50
  keep: int = 3
  eval_every: int = 50
  eval_k: int = 4
  eval_new_tokens: int = 32
  eval_sampling: Sampling = Sampling(temperature=1.0)
  log_every: int = 10
  seed: int = 0

  def __post_init__(self):
    """Every field checked here, so that a bad one fails before any work (or a crash mid-run)."""
    if self.mode not in MODES:
      raise ValueError(f"LoopConfig.mode must be one of {MODES}, got {self.mode!r}")
    for name in ("steps", "prefix_len", "ckpt_every", "keep", "eval_every", "eval_k",
                 "eval_new_tokens", "log_every"):
      object.__setattr__(self, name, as_int(f"LoopConfig.{name}", getattr(self, name), 1))
    object.__setattr__(self, "seed", as_int("LoopConfig.seed", self.seed, 0))
    for name in ("gen_sampling", "eval_sampling"):
      if not isinstance(getattr(self, name), Sampling):
        raise ValueError(f"LoopConfig.{name} must be a specjax.Sampling, got "
                         f"{getattr(self, name)!r}")
    check_mixture(self.mixture, self.mode)


def check_mixture(mixture, mode: str) -> None:
  """(source, weight) pairs: known sources, finite weights >= 0, a positive total."""
  ok = isinstance(mixture, (list, tuple)) and mixture and all(
      isinstance(p, (list, tuple)) and len(p) == 2 and p[0] in SOURCES for p in mixture)
  if ok:
    try:
      weights = [as_float("mixture weight", w, 0) for _, w in mixture]
    except ValueError:
      ok = False
  if not ok or sum(weights) <= 0:
    raise ValueError(f"data mixture must be 'source:weight' pairs with sources from {SOURCES}, "
                     f"finite weights >= 0 and a positive total weight, got {mixture!r}")
  if mode == "lm" and any(s != "corpus" and w > 0 for s, w in mixture):
    raise ValueError("mode 'lm' trains on the corpus only; generated sources need a target "
                     "(mode 'distill')")


def _source_at(cfg: LoopConfig, step: int) -> str:
  names = [s for s, _ in cfg.mixture]
  w = np.array([w for _, w in cfg.mixture], np.float64)
  return names[np.random.default_rng([cfg.seed, step, 7]).choice(len(names), p=w / w.sum())]


def acceptance(target: Model, draft: Model, prompts: Dict[str, Sequence[Sequence[int]]],
               cfg: LoopConfig, key) -> Dict[str, float]:
  """The speculative loop's measured acceptance per prompt set, plus their mean."""
  out = {}
  for name, ps in prompts.items():
    res = speculative_generate(target, draft, list(ps), k=cfg.eval_k,
                               max_new_tokens=cfg.eval_new_tokens, sampling=cfg.eval_sampling,
                               key=key, eos_id=None)
    out[f"alpha_{name}"] = res.stats.alpha
    out[f"accepted_len_{name}"] = res.stats.mean_accepted_length
  out["acceptance"] = float(np.mean([out[f"alpha_{n}"] for n in prompts]))
  return out


def train(workdir: str, run_config: dict, cfg: LoopConfig, draft: Model, batches,
          target: Optional[Model] = None, distill: Optional[train_step.DistillConfig] = None,
          optim: train_step.OptimConfig = train_step.OptimConfig(),
          eval_prompts: Optional[Dict[str, Sequence[Sequence[int]]]] = None,
          ttt_config: Optional[ttt.TTTConfig] = None,
          on_step: Optional[Callable[[int], None]] = None, verbose: bool = True) -> dict:
  """Trains `draft` (the model being trained) in `workdir`; resumes a run found there.

  Returns the summary (also written to WORKDIR/summary.json). On SIGTERM the
  loop saves a checkpoint after the current step and returns with
  summary["preempted"] = True.
  """
  check_mixture(cfg.mixture, cfg.mode)
  if cfg.mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {cfg.mode!r}")
  if cfg.mode == "distill" and (target is None or distill is None):
    raise ValueError("mode 'distill' needs a target model and a DistillConfig")
  if cfg.mode == "feature" and (target is None or ttt_config is None):
    raise ValueError("mode 'feature' needs a target model and a TTTConfig")
  resumed = claim_workdir(workdir, run_config)
  optimizer = train_step.make_optimizer(optim)
  trainable, frozen = train_step.split_params(draft.params, cfg.trainable)
  if cfg.mode == "feature" and "embedding_VD" in trainable:
    raise ValueError(f"trainable={cfg.trainable!r} trains embedding_VD: a feature draft shares "
                     "the target's embedding, which stays frozen (name the other groups: "
                     f"{sorted(n for n in draft.params if n != 'embedding_VD')})")
  state = train_step.init_train_state(trainable, optimizer)
  key = jax.random.key(cfg.seed)
  ckpts = resume.RunCheckpoints(workdir, cfg.keep)
  best = None
  if resumed and ckpts.latest_step() is not None:
    state, key, meta = ckpts.restore(state, key)
    batches.restore(meta["data"])
    best = meta.get("best")
  start = int(state.step)
  schedule = train_step.make_schedule(optim)
  writer = metrics.SummaryWriter(f"{workdir}/tensorboard")
  progress = Progress(cfg.steps, initial=start) if verbose else None
  stop = {"flag": False}
  old_handler = signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
  model_of = lambda s: draft.replace(params={**frozen, **s.params})  # noqa: E731
  t0, tokens, last, evals = time.perf_counter(), 0, {}, {}
  step = start
  try:
    while step < cfg.steps and not stop["flag"]:
      tokens_BT, mask_BT = _batch(cfg, step, next(batches), target, model_of(state), key)
      if cfg.mode == "lm":
        state, m = train_step.lm_step_jit(state, tokens_BT, mask_BT, frozen,
                                          config=draft.config, optimizer=optimizer)
      elif cfg.mode == "feature":
        state, m = ttt.ttt_step_jit(state, target.params, tokens_BT, mask_BT, frozen,
                                    config=draft.config, target_config=target.config,
                                    optimizer=optimizer, ttt=ttt_config)
      else:
        state, m = train_step.distill_step_jit(
            state, target.params, tokens_BT, mask_BT, frozen, config=draft.config,
            target_config=target.config, optimizer=optimizer, distill=distill)
      step += 1
      tokens += int(np.prod(tokens_BT.shape))
      last = dict({k: float(v) for k, v in m.items()}, lr=float(schedule(step - 1)),
                  tokens_per_s=tokens / (time.perf_counter() - t0),
                  tokens_seen=step * int(np.prod(tokens_BT.shape)))
      _check_finite(workdir, step, last["loss"], state, ckpts.latest_step())
      if step % cfg.log_every == 0 or step == cfg.steps:
        writer.scalars({f"train/{k}": v for k, v in last.items()}, step)
      if eval_prompts and target is not None and (step % cfg.eval_every == 0 or
                                                  step == cfg.steps):
        evals = acceptance(target, model_of(state), eval_prompts, cfg,
                           jax.random.fold_in(key, 1 << 30))
        writer.scalars({f"eval/{k}": v for k, v in evals.items()}, step)
        with open(f"{workdir}/evals.jsonl", "a") as f:  # acceptance against training tokens
          f.write(json.dumps(dict(step=step, tokens_seen=last["tokens_seen"], **evals)) + "\n")
        if best is None or evals["acceptance"] > best:
          best = evals["acceptance"]
          trained = model_of(state)
          resume.save_best(workdir, _saved(trained, target), dict(step=step, **evals),
                           base=_base(trained, target))
      if step % cfg.ckpt_every == 0 or step == cfg.steps or stop["flag"]:
        ckpts.save(step, state, key, {"data": batches.state(), "best": best})
      if progress:
        progress.update(step, loss=last["loss"], **({"acc": evals["acceptance"]}
                                                     if evals else {}))
      if on_step:
        on_step(step)
    if stop["flag"] and ckpts.latest_step() != step:
      ckpts.save(step, state, key, {"data": batches.state(), "best": best})
  finally:
    signal.signal(signal.SIGTERM, old_handler)
    ckpts.close()
    writer.close()
    if progress:
      progress.close()
  summary = dict(step=step, steps=cfg.steps, preempted=bool(stop["flag"] and step < cfg.steps),
                 resumed_from=start if resumed else None,
                 damaged_checkpoints=[dict(step=s, why=why) for s, why in ckpts.damaged],
                 seconds=time.perf_counter() - t0, **last, **evals, best_acceptance=best,
                 trainable_params=sum(int(x.size) for x in jax.tree.leaves(state.params)))
  write_json(f"{workdir}/summary.json", summary)
  summary["params"] = model_of(state).params
  return summary


def _check_finite(workdir: str, step: int, loss: float, state, last_saved) -> None:
  """Stops the run before a NaN/inf loss or state reaches a checkpoint or best/."""
  bad = [] if np.isfinite(loss) else [f"loss {loss}"]
  bad += [f"parameter {n}" for n in integrity.nonfinite(state.params)[:3]]
  if bad:
    raise FloatingPointError(
        f"{workdir}: step {step}: non-finite {', '.join(bad)}; training stopped and nothing "
        f"of this step was saved (the newest checkpoint is step {last_saved}, best/ is "
        "untouched). Lower optim.lr or check the data, then resume.")


def _saved(draft, target: Optional[Model]) -> Model:
  """What WORKDIR/best holds: the draft as a Model (a feature draft with the target's
  tokenizer)."""
  return draft.as_model(target) if isinstance(draft, FeatureDrafter) else draft


def _base(draft, target: Optional[Model]):
  """A feature draft shares the target's embedding: saved derived from the target when it
  loads by name, so the copy is not stored."""
  if isinstance(draft, FeatureDrafter) and target is not None and target.name in REGISTRY:
    return (target.name, target)
  return None


def _batch(cfg: LoopConfig, step: int, rows_BT, target, draft, key):
  """(tokens_BT, mask_BT) for this step: reply batches as they are; corpus rows, or a prefix
  continued by a model."""
  if isinstance(rows_BT, dict):  # replies.ReplyBatches: mask_BT marks the reply tokens
    mask_BT = jnp.asarray(rows_BT["mask_BT"])
    if cfg.mode != "feature":  # distillation counts the logits that predict a reply token
      mask_BT = jnp.pad(mask_BT[:, 1:], ((0, 0), (0, 1)))
    return jnp.asarray(rows_BT["tokens_BT"]), mask_BT
  rows_BT = np.asarray(rows_BT)
  source = _source_at(cfg, step) if cfg.mode == "distill" else "corpus"
  if source == "corpus":
    return jnp.asarray(rows_BT), jnp.ones(rows_BT.shape, bool)
  B, T = rows_BT.shape
  P = cfg.prefix_len
  model = target if source == "target" else draft
  out = generate(model, rows_BT[:, :P].tolist(), max_new_tokens=T - P,
                 sampling=cfg.gen_sampling, key=jax.random.fold_in(key, step), eos_id=None)
  tokens_BT = jnp.concatenate([jnp.asarray(rows_BT[:, :P]), out.tokens], axis=1)
  # Logits at t predict token t + 1: the generated tokens are predicted from P - 1 on.
  mask_BT = jnp.broadcast_to(jnp.arange(T) >= P - 1, (B, T))
  return tokens_BT, mask_BT
