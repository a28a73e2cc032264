"""Chen et al. 2023 Table 1 / Figure 1 presets: `--config=configs/table1.py:quick|medium|full|test`.

  python -m experiments.speedup_table --config=configs/table1.py:quick --workdir=runs/table1_quick

Rows: for each task x sampling mode, ArS and SpS with each drafter in `drafters`
(the first is the table's main SpS row). Drafters: a model name/path (the
shipped feature draft smollm2-135m-eagle, the distilled smollm2-135m-draft),
`self:N` (the target's first N layers), `lookup:N`
(prompt lookup). The K sweep (Figure 1) runs ArS (K = 0) and SpS with the
first drafter for each K in `sweep.ks`.
"""
import ml_collections

from configs.common import sampling as _sampling


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.target = "smollm2-135m"
  # A tuple (overridable by flags); the first is the main SpS row and the K sweep's drafter.
  cfg.drafters = ("smollm2-135m-eagle", "smollm2-135m-draft", "self:8", "lookup:3")
  cfg.dtype = "float32"      # 'bfloat16' on accelerators; fp32 is much faster on CPU
  cfg.k = 4
  # True: each drafter also gets an "SpS[<drafter>] adaptive" row (per-row draft lengths up
  # to k from the running acceptance and the measured c and r: sj.AdaptiveK), and the K sweep
  # an adaptive line up to its largest K.
  cfg.adaptive_k = False
  cfg.batch = 1              # rows per generate call (the paper: 1)
  cfg.seed = 0
  cfg.pad_multiple = 128     # prompt widths are bucketed: one compilation per bucket and row
  # Sampling modes per task (the paper's): nucleus and greedy.
  cfg.summarization = ml_collections.ConfigDict(dict(
      num_examples=100, shots=1, max_new_tokens=128,
      modes=ml_collections.ConfigDict(dict(nucleus=_sampling(1.0, top_p=0.8),
                                           greedy=_sampling(0.0, top_p=1.0))),
      samples=ml_collections.ConfigDict(dict(nucleus=1, greedy=1))))
  cfg.code = ml_collections.ConfigDict(dict(
      num_examples=164, max_new_tokens=512, pass_at=(1, 10), timeout=5.0,
      modes=ml_collections.ConfigDict(dict(nucleus=_sampling(0.8, top_p=0.95),
                                           greedy=_sampling(0.0, top_p=1.0))),
      samples=ml_collections.ConfigDict(dict(nucleus=10, greedy=1))))
  cfg.tasks = ("summarization", "code")
  # Figure 1: time to sample `new_tokens` (no EOS), acceptance, time per loop, against K.
  cfg.sweep = ml_collections.ConfigDict(dict(
      ks=tuple(range(9)), task="summarization", prompts=8, new_tokens=128,
      sampling=_sampling(1.0, top_p=0.8)))
  cfg.cost_repeats = 3       # repeats of the per-call cost measurements (c, r)
  cfg.cost_context = 0       # context (tokens) of those measurements; 0: each task's median prompt

  if arg == "full":  # the whole table (hours on 2 CPU cores; resumable, extendable)
    cfg.code.pass_at = (1, 5)
    cfg.code.samples.nucleus = 5
  elif arg == "medium":  # a subset of every row: about 40 minutes on 2 CPU cores
    cfg.summarization.num_examples = 30
    cfg.code.num_examples = 30
    cfg.code.pass_at = (1, 2)
    cfg.code.samples.nucleus = 2
    cfg.sweep.prompts = 4
  elif arg == "quick":  # the README main command: a miniature (14 timed generations)
    # One paper and one problem; every generation of one sampling form shares its programs
    # (one prompt width, one max_new_tokens: compilation is most of a short run on CPU).
    cfg.drafters = ("smollm2-135m-eagle", "lookup:3")
    cfg.summarization.num_examples = 1
    cfg.summarization.max_new_tokens = 96
    cfg.code.num_examples = 1
    cfg.code.max_new_tokens = 96
    cfg.code.pass_at = (1,)
    cfg.code.samples.nucleus = 1
    cfg.sweep.ks = (0, 4)
    cfg.sweep.prompts = 1
    cfg.sweep.new_tokens = 96
    cfg.cost_repeats = 1
    cfg.cost_context = 256
    cfg.pad_multiple = 640   # one prompt width for both tasks
  elif arg == "test":  # CI: every output file on a 2-example subset
    # As in quick, one max_new_tokens and one prompt width, and the sweep's K is cfg.k: every
    # generation of one sampling form shares its programs.
    cfg.drafters = ("smollm2-135m-eagle", "lookup:3")
    cfg.summarization.num_examples = 2
    cfg.summarization.max_new_tokens = 32
    cfg.code.num_examples = 2
    cfg.code.max_new_tokens = 32
    cfg.code.pass_at = (1, 2)
    cfg.code.samples.nucleus = 2
    cfg.sweep.ks = (0, 4)
    cfg.sweep.prompts = 2
    cfg.sweep.new_tokens = 32
    cfg.cost_repeats = 1
    cfg.cost_context = 256
    cfg.pad_multiple = 640
  else:
    raise ValueError(f"unknown table1 preset {arg!r}; use quick, medium, full or test")
  return cfg
