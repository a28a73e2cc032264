"""Self-distillation data presets: `--config=configs/replies.py:<preset> --workdir=DIR`.

  smollm2        SmolLM2-135M's greedy and nucleus replies to ~10k prompts, 2M reply tokens
  smollm2_100m   the same command at accelerator scale: 100M reply tokens (more samplings)
  smollm2_tiny   2 shards of 4 short replies (tests, a minute on CPU)

Raising `target_tokens` extends a finished run in the same workdir.
"""
import ml_collections

from configs.common import sampling

# Sampling presets by name; a trailing number ("nucleus2") is another draw of the same preset.
SAMPLINGS = dict(greedy=sampling(0.0), nucleus=sampling(0.8, 0, 0.95), t1=sampling(1.0))


def get_config(arg: str = "smollm2") -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.target = "smollm2-135m"
  cfg.dtype = "float32"
  cfg.sources = ("code", "prose", "aclsum")
  cfg.limit_bytes = 0              # per source, 0 = all
  cfg.heldout_fraction = 0.02      # prompts kept out of the shards, for acceptance
  cfg.samplings = ("greedy", "nucleus")
  cfg.shard_prompts = 32
  cfg.max_prompt_tokens = 384
  cfg.max_new_tokens = 256
  cfg.pad_multiple = 64
  cfg.seed = 0
  cfg.target_tokens = 2_000_000
  cfg.max_shards = 0               # 0 = no limit (a smoke run sets a few)
  cfg.mesh_shape = ()              # (data, model): generate sharded over all devices
  cfg.rules = "default"
  if arg == "smollm2":
    pass
  elif arg == "smollm2_100m":
    cfg.samplings = ("greedy",) + tuple(f"nucleus{i}" for i in range(12)) + tuple(
        f"t1{i}" for i in range(12))
    cfg.shard_prompts = 256
    cfg.target_tokens = 100_000_000
    cfg.mesh_shape = (-1, 1)
  elif arg == "smollm2_tiny":
    cfg.sources = ("aclsum",)
    cfg.shard_prompts = 4
    cfg.max_new_tokens = 16
    cfg.max_prompt_tokens = 256
    cfg.target_tokens = 10_000
    cfg.max_shards = 2
  else:
    raise ValueError(f"unknown replies preset {arg!r}; use smollm2, smollm2_100m or smollm2_tiny")
  return cfg
