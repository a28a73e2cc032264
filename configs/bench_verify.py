"""bench_verify presets: `--config=configs/bench_verify.py:default|tiny`.

  python -m experiments.bench_verify --config=configs/bench_verify.py:default \
      --config.models=random:smollm2_135m --config.dtypes=float32 --config.batches=1

`models` are `random:<preset>` names (random weights in the shapes of
configs/model.py presets: timing needs the shapes, not trained weights) or
anything `sj.load` takes (a real model). Sequence fields are tuples: override
with `--config.tokens=1,3`, or `--config.ops=model --config.ops=head` for strings.
"""
import ml_collections


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.models = ("random:smollm2_135m", "random:llama_1b")
  cfg.dtypes = ("float32", "bfloat16")     # parameter/activation dtypes
  cfg.batches = (1, 4)
  cfg.tokens = (1, 2, 3, 5, 9, 17)         # tokens per call (T); the first must be 1
  cfg.ops = ("model", "attention", "mlp", "head")  # what to time
  cfg.context = 256                        # cached tokens before the call
  cfg.calls = 8                            # calls per timed jit
  cfg.rounds = 3                           # alternating rounds (median of per-round ratios)
  # ModelConfig.matmul modes side by side (auto: specjax's CPU kernel when built).
  cfg.matmuls = ("xla", "auto")
  cfg.out = ""                             # optional JSON output path

  if arg == "default":  # SmolLM2-135M's and a ~1B model's shapes, fp32 and bf16
    pass
  elif arg == "tiny":  # tests: every op on the tiny shape in seconds
    cfg.models = ("random:tiny",)
    cfg.dtypes = ("float32",)
    cfg.batches = (1, 2)
    cfg.tokens = (1, 3)
    cfg.context = 8
    cfg.calls = 2
    cfg.rounds = 1
  else:
    raise ValueError(f"unknown bench_verify preset {arg!r}; use default or tiny")
  return cfg
