"""SpS/ArS on one device vs meshes presets: `--config=configs/bench_mesh.py:tiny|smollm2`.

  python -m experiments.bench_mesh --config=configs/bench_mesh.py:tiny --cpu_devices=8

`meshes`: "DATAxMODEL" shapes, each using all devices ("1x1": no mesh, one
device); a tuple, overridden as `--config.meshes="('1x1', '2x4', '8x1')"`.
"""
import ml_collections


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.target = "random:tiny_shardable"
  cfg.draft = "self:1"       # self:N, lookup:N or a model name/path
  cfg.meshes = ("1x1", "8x1")
  cfg.rules = "default"      # target rules: 'default' (tensor parallel) or 'replicated'
  cfg.batch = 8              # rows (prompts of 8 + 3 b ids)
  cfg.k = 4
  cfg.new_tokens = 32        # per row
  cfg.repeats = 2            # timed repeats (best)

  if arg == "tiny":
    pass
  elif arg == "smollm2":  # the real SmolLM2-135M-Instruct and prompt lookup
    cfg.target = "smollm2-135m"
    cfg.draft = "lookup:3"
  else:
    raise ValueError(f"unknown bench_mesh preset {arg!r}; use tiny or smollm2")
  return cfg
