"""bench_sample presets: `--config=configs/bench_sample.py:smollm2|tiny`.

  python -m experiments.bench_sample --config=configs/bench_sample.py:smollm2 \
      --config.zero_draws=0

`target` is `random:<preset>` (random weights, a configs/model.py preset) or
anything `sj.load` takes; `vocab` is the sampler micro-benchmark's, independent of it.
"""
import ml_collections

from configs.common import sampling


def get_config(arg: str = "smollm2") -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.target = "smollm2-135m"
  cfg.vocab = 49_152             # ids in the sampler micro-benchmark (SmolLM2's)
  cfg.k = 4                      # draft tokens per SpS iteration
  cfg.new_tokens = 64            # new tokens per generation
  cfg.sampling = sampling(temperature=0.8, top_p=0.95)  # nucleus, for every figure
  cfg.zero_draws = 200_000       # draws per setting for the zero-probability count (0: skip)
  cfg.rounds = 3                 # alternating rounds
  cfg.repeats = 3                # timed repeats per round (median)

  if arg == "smollm2":  # the real SmolLM2-135M at its 49,152 ids
    pass
  elif arg == "tiny":  # tests: every figure of the tiny random model in seconds
    cfg.target = "random:tiny"
    cfg.vocab = 512
    cfg.new_tokens = 8
    cfg.rounds = 1
    cfg.repeats = 1
    cfg.zero_draws = 4_000
  else:
    raise ValueError(f"unknown bench_sample preset {arg!r}; use smollm2 or tiny")
  return cfg
