"""experiments/train.py's config: every check of it before any work (`check`, naming the key
and the value), and its translation into the library's settings (`loop_config`,
`ttt_config`)."""
from experiments import common
from specjax import training
from specjax.training import loop
from specjax.training.ttt import TTTConfig


def parse_mixture(text: str):
  pairs = []
  for item in text.split(","):
    name, _, weight = item.partition(":")
    try:
      pairs.append((name.strip(), float(weight or 1)))
    except ValueError:
      raise ValueError(f"data.mixture item {item!r} is not 'source:weight'") from None
  return tuple(pairs)


def check_mode(cfg):
  if cfg.mode == "distill":
    training.losses.check_divergence(cfg.distill.divergence, common.sampling(cfg.distill.sampling),
                                     cfg.distill.beta)
  elif cfg.mode not in loop.MODES:
    raise ValueError(f"mode must be one of {loop.MODES}, got {cfg.mode!r}")
  if cfg.mode == "feature" and cfg.draft.kind != "feature":
    raise ValueError(f"mode 'feature' trains draft.kind 'feature', got {cfg.draft.kind!r}")
  if cfg.draft.kind == "feature" and cfg.mode != "feature":
    raise ValueError(f"draft.kind 'feature' is trained by mode 'feature', not {cfg.mode!r}")
  if cfg.mode in ("distill", "feature") and not cfg.target:
    raise ValueError(f"mode {cfg.mode!r} needs config.target")


def check(cfg):
  """Every config error (but the models' lengths: `check_len`) before any work, naming its
  field; returns the data mixture."""
  common.check_ints(cfg, seed=0, target_seed=0, steps=1, ckpt_every=1, keep=1, log_every=1)
  common.check_ints(cfg, "data", seq_len=2, batch_size=1, limit_bytes=0, prefix_len=1,
                    max_shards=0, join=1)
  if cfg.data.prefix_len >= cfg.data.seq_len:
    raise ValueError(f"config.data.prefix_len ({cfg.data.prefix_len}) must be < config.data."
                     f"seq_len ({cfg.data.seq_len}): a generated continuation follows it")
  common.check_floats(cfg, "data", heldout_fraction=(0, 1))
  common.check_ints(cfg, "optim", warmup_steps=0)
  common.check_floats(cfg, "optim", positive=("learning_rate", "clip_norm"),
                      weight_decay=(0, None))
  common.check_ints(cfg, "eval", every=0, k=1, prompts=1, prompt_len=1, new_tokens=1)
  common.check_ints(cfg, "draft", layers=1, d_model=1, num_heads=1, num_kv_heads=1, head_dim=1,
                    d_ff=0, adapter_dim=0, sub_vocab=0)
  common.check_sampling(cfg, "distill.sampling")
  common.check_sampling(cfg, "eval.sampling")
  try:
    mixture = parse_mixture(cfg.data.mixture)
    loop.check_mixture(mixture, cfg.mode)
  except ValueError as e:
    raise ValueError(f"config.data.mixture = {cfg.data.mixture!r}: {e}") from None
  check_mode(cfg)
  if cfg.mode == "feature":
    try:
      ttt_config(cfg)
    except ValueError as e:
      raise ValueError(f"config.ttt: {e}") from None
  if cfg.target:
    common.check_model(cfg, "target")
  loop_config(cfg, mixture)  # and the library's own checks
  training.OptimConfig(total_steps=cfg.steps, **cfg.optim.to_dict())
  return mixture


def check_len(cfg, model_cfg, what: str) -> None:
  """The training rows, and the eval's prompt + new tokens + k drafts, fit `model_cfg.max_len`
  (None: no model, or a feature draft, whose length the target's bounds)."""
  if model_cfg is None or model_cfg.feature_layers:
    return
  e = cfg.eval
  lengths = [("data.seq_len", cfg.data.seq_len)]
  if e.every and cfg.target:
    lengths.append(("eval.prompt_len + eval.new_tokens + eval.k",
                    e.prompt_len + e.new_tokens + e.k))
  for field, n in lengths:
    if n > model_cfg.max_len:
      raise ValueError(f"config.{field} = {n} exceeds the {what}'s max_len {model_cfg.max_len}")


def ttt_config(cfg) -> TTTConfig:
  return TTTConfig(cfg.ttt.steps, cfg.ttt.decay, common.sampling(cfg.distill.sampling))


def loop_config(cfg, mixture) -> loop.LoopConfig:
  """The training loop's settings; the target generates (mixture `target:`) under the
  distillation's whole sampling config, the one its divergence warps with."""
  return loop.LoopConfig(
      mode=cfg.mode, steps=cfg.steps, trainable=cfg.trainable, mixture=mixture,
      prefix_len=cfg.data.prefix_len, gen_sampling=common.sampling(cfg.distill.sampling),
      ckpt_every=cfg.ckpt_every, keep=cfg.keep, eval_every=cfg.eval.every or cfg.steps + 1,
      eval_k=cfg.eval.k, eval_new_tokens=cfg.eval.new_tokens,
      eval_sampling=common.sampling(cfg.eval.sampling), log_every=cfg.log_every, seed=cfg.seed)
