"""Throughput against batch size presets: `--config=configs/bench_batch.py:tiny|smollm2_chat`.

  python -m experiments.bench_batch --config=configs/bench_batch.py:smollm2_chat

`target`: `random:<preset>` or anything `sj.load` takes; `drafts`: drafter names
(`sj.build_drafter`), a tuple overridden as `--config.drafts=lookup:3 --config.drafts=...`.
"""
import ml_collections

from configs.common import sampling


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.target = "random:tiny"
  cfg.drafts = ("lookup:3",)
  cfg.dtype = "float32"      # 'bfloat16' on accelerators; fp32 is much faster on CPU
  cfg.batches = (1, 4)       # rows per generate call
  cfg.k = 4
  cfg.adaptive_k = True      # also each draft with adaptive K (sj.AdaptiveK from c and r at B)
  cfg.new_tokens = 16        # per row (no EOS: every method emits the same count)
  cfg.modes = ml_collections.ConfigDict(dict(greedy=sampling(0.0),
                                             nucleus=sampling(1.0, top_p=0.8)))
  cfg.rounds = 1             # alternating rounds (medians of per-round ratios)
  # Held-out chat prompts of a replies workdir (experiments/make_replies.py), code and text
  # alternating; without one, random ids (`prompt_len` each).
  cfg.heldout_from = ""
  cfg.max_prompt_tokens = 256
  cfg.prompt_len = 24
  cfg.pad_multiple = 256     # one prompt width: one compilation per method and batch size
  cfg.out = ""               # optional JSON output path

  if arg == "tiny":  # seconds on CPU: checks that it runs, measures nothing of note
    pass
  elif arg == "smollm2_chat":  # the real SmolLM2-135M on held-out chat prompts
    cfg.target = "smollm2-135m"
    cfg.drafts = ("smollm2-135m-eagle", "lookup:3")
    cfg.batches = (1, 4, 16, 32)
    cfg.new_tokens = 64
    cfg.heldout_from = "data/replies_smollm2"
  else:
    raise ValueError(f"unknown bench_batch preset {arg!r}; use tiny or smollm2_chat")
  return cfg
