"""Drafts for SmolLM2-135M side by side presets: `--config=configs/compare_drafts.py:smollm2|quick`.

  python -m experiments.compare_drafts --config=configs/compare_drafts.py:smollm2 \
      $(printf -- ' --config.drafts=%s' runs/drafts/*) --config.drafts=self:4

`drafts` (a tuple; each `--config.drafts=X` adds one, replacing the preset's):
training workdirs (their best/ checkpoint), `self:N` (the target's first N
layers), `self:N:U` (with an untrained U-id head), `lookup:N`, or anything
`sj.load` takes. The held-out prompts come from the training corpora, so the
target needs a tokenizer (a real model).
"""
import ml_collections

from configs.common import sampling


def get_config(arg: str = "smollm2") -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.target = "smollm2-135m"
  cfg.drafts = ("self:4", "smollm2-135m-draft")
  cfg.dtype = "float32"
  cfg.k = 4                  # draft tokens per iteration for the acceptance measurement
  cfg.max_k = 8              # largest k for the predicted best speedup
  cfg.prompts = 32           # held-out prompts per domain (code, prose)
  cfg.prompt_len = 32        # tokens per prompt (also the context of the cost measurements)
  cfg.new_tokens = 64        # tokens generated per prompt
  cfg.sampling = sampling(temperature=1.0)
  cfg.out = ""               # also write the rows as JSON here

  if arg == "smollm2":
    pass
  elif arg == "quick":  # a first look: a few prompts per domain
    cfg.prompts = 4
    cfg.new_tokens = 32
  else:
    raise ValueError(f"unknown compare_drafts preset {arg!r}; use smollm2 or quick")
  return cfg
