"""SpS vs ArS at batch 1 presets: `--config=configs/bench_speculative.py:tiny|smollm2`.

  python -m experiments.bench_speculative --config=configs/bench_speculative.py:smollm2

`target`: `random:<preset>` (configs/model.py, random weights) or anything `sj.load`
takes. `drafts`: `self:N`, `lookup:N` or a model name/path (`sj.build_drafter`); a
tuple, overridden as `--config.drafts=self:1 --config.drafts=lookup:3` or
`--config.drafts="('self:1', 'lookup:3')"`.
"""
import ml_collections

from configs.common import sampling


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.target = "random:tiny"
  cfg.drafts = ("self:1", "lookup:3")
  cfg.dtype = "float32"      # 'bfloat16' on accelerators; fp32 is much faster on CPU
  cfg.k = 4                  # draft tokens per iteration
  cfg.adaptive_k = False     # True: also each draft with adaptive K up to k (sj.AdaptiveK)
  cfg.new_tokens = 128       # per generation (no EOS: ArS and SpS emit the same count)
  # Text needs a tokenizer; a target without one gets 24 random ids.
  cfg.prompt = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'
  cfg.sampling = sampling(temperature=0.0)  # greedy: SpS must give ArS's tokens
  cfg.repeats = 3            # timed repeats per round (median)
  cfg.rounds = 3             # alternating rounds of all timings (medians reported)
  cfg.out = ""               # optional JSON output path
  # Held-out chat prompts of a replies workdir (experiments/make_replies.py) instead of `prompt`:
  # up to heldout_prompts per group (code, text) of at most max_prompt_tokens, each at batch 1.
  cfg.heldout_from = ""
  cfg.heldout_prompts = 4
  cfg.max_prompt_tokens = 384
  # > 0: each held-out prompt after that many whole exchanges (prompt + reply) of the workdir's
  # first shard, as one conversation: long contexts, as Table 1's 1-shot prompts.
  cfg.context_exchanges = 0
  cfg.pad_multiple = 128     # prompt widths compiled

  if arg == "tiny":
    pass
  elif arg == "smollm2":  # the real SmolLM2-135M-Instruct, offline from its pip package
    cfg.target = "smollm2-135m"
    cfg.drafts = ("self:8", "lookup:3")
  elif arg == "smollm2_chat":  # the issue-19 goal measurement: held-out chat prompts, K = 4
    cfg.target = "smollm2-135m"
    cfg.drafts = ("smollm2-135m-eagle", "smollm2-135m-draft", "lookup:3")
    cfg.heldout_from = "data/replies_smollm2"
    cfg.repeats = 1
  else:
    raise ValueError(f"unknown bench_speculative preset {arg!r}; use tiny, smollm2 or "
                     "smollm2_chat")
  return cfg
