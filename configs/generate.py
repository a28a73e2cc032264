"""Generation presets: `--config=configs/generate.py:tiny|smollm2|smollm2_shape`.

`model` is either `random:<preset>` (random weights, a preset of
configs/model.py) or anything `sj.load` takes: a registered name such as
`smollm2-135m`, a .gguf file, an HF safetensors directory, an orbax checkpoint.
"""
import ml_collections

from configs.common import sampling


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.model = "random:tiny"
  cfg.dtype = "float32"      # 'bfloat16' on accelerators; fp32 is much faster on CPU
  cfg.seed = 0
  cfg.prompt = ""            # text (needs a tokenizer) ...
  cfg.prompt_ids = (1, 2, 3)  # ... or token ids, used when prompt is empty
  cfg.chat = False           # wrap the prompt in the model's chat template (instruct models)
  cfg.batch = 1              # the prompt repeated over this many rows
  cfg.max_new_tokens = 16
  cfg.eos = True             # stop rows at the model's EOS
  cfg.sampling = sampling(temperature=0.0)
  cfg.timing_repeats = 2     # timed runs after the compiling one
  # Sharding: () = one device; (data, model) = a mesh over all devices (all processes).
  cfg.mesh_shape = ()
  cfg.rules = "default"      # target rules: 'default' (tensor parallel) or 'replicated'
  # Speculative sampling (used when draft is set): self:N, lookup:N, or a model name/path.
  cfg.draft = ""
  cfg.k = 4
  cfg.draft_rules = "replicated"  # a small draft is usually best replicated on every device

  if arg == "tiny":
    pass
  elif arg == "smollm2":  # the real SmolLM2-135M-Instruct, offline from its pip package
    cfg.model = "smollm2-135m"
    cfg.prompt = "def fibonacci(n):"
    cfg.max_new_tokens = 64
  elif arg == "tiny_mesh":  # a tiny model sharded over 8 (simulated) devices, SpS + ArS
    cfg.model = "random:tiny_shardable"
    cfg.prompt_ids = (1, 2, 3, 4)
    cfg.batch = 8
    cfg.mesh_shape = (-1, 4)  # data axis = devices / 4
    cfg.draft = "self:1"
  elif arg == "smollm2_shape":  # SmolLM2-135M's shapes with random weights
    cfg.model = "random:smollm2_135m"
    cfg.prompt_ids = tuple(range(1, 17))
    cfg.max_new_tokens = 64
  else:
    raise ValueError(f"unknown generate preset {arg!r}; use tiny, tiny_mesh, smollm2 or "
                     "smollm2_shape")
  return cfg
