"""bench_vs_transformers presets: `--config=configs/bench_vs_transformers.py:smollm2|quick`.

  python -m experiments.bench_vs_transformers --config=configs/bench_vs_transformers.py:smollm2 \
      --config.torch_threads=2

`model` is anything `sj.load` takes (real weights with a tokenizer: the prompt is text).
"""
import ml_collections


def get_config(arg: str = "smollm2") -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.model = "smollm2-135m"
  cfg.prompt = "def fibonacci(n):"
  cfg.new_tokens = 128           # new tokens per generation (EOS ignored)
  cfg.repeats = 3                # timed repeats (median)
  cfg.torch_threads = 0          # torch intra-op threads (0: torch's default)
  cfg.prefill_tokens = (128, 512, 2048)  # prefill lengths compared (empty: none)

  if arg == "smollm2":  # SmolLM2-135M, 128 greedy tokens
    pass
  elif arg == "quick":  # a check that both sides run and agree: seconds, not a benchmark
    cfg.new_tokens = 8
    cfg.repeats = 1
    cfg.prefill_tokens = (64,)
  else:
    raise ValueError(f"unknown bench_vs_transformers preset {arg!r}; use smollm2 or quick")
  return cfg
