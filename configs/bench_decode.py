"""ArS decode vs the bandwidth bound presets: `--config=configs/bench_decode.py:tiny|smollm2_shape`.

  python -m experiments.bench_decode --config=configs/bench_decode.py:smollm2_shape

`model`: `random:<preset>` (configs/model.py, random weights) or anything `sj.load`
takes (e.g. `smollm2-135m`, the real weights).
"""
import ml_collections


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.model = "random:smollm2_135m"
  cfg.dtype = "float32"
  cfg.batch = 1
  cfg.prompt_len = 16        # prompt tokens per row
  cfg.new_tokens = 128       # per timed generation; a quarter of it is the short run
  cfg.repeats = 3            # timed repeats per round (median)
  cfg.rounds = 5             # alternating rounds of bandwidth and decode timing
  cfg.read_bytes = 1 << 30   # buffer of the STREAM-like read
  cfg.gemv_n = 8192          # side of the fp32 matrix of the GEMV read

  if arg == "smollm2_shape":  # SmolLM2-135M's shapes, random weights
    pass
  elif arg == "tiny":  # seconds on CPU: checks that it runs, measures nothing of note
    cfg.model = "random:tiny"
    cfg.new_tokens = 16
    cfg.repeats = 1
    cfg.rounds = 1
    cfg.read_bytes = 1 << 24
    cfg.gemv_n = 512
  else:
    raise ValueError(f"unknown bench_decode preset {arg!r}; use tiny or smollm2_shape")
  return cfg
