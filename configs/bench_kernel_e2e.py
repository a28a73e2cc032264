"""bench_kernel_e2e presets: a Table 1 preset (configs/table1.py) plus what the bench compares.

  `--config=configs/bench_kernel_e2e.py:medium` (any table1 preset name); tuple fields are
  overridden by repeating the flag: `--config.drafters=lookup:3 --config.drafters=self:8`.
"""
import ml_collections

from configs import table1


def get_config(arg: str = "medium") -> ml_collections.ConfigDict:
  cfg = table1.get_config(arg)
  cfg.e2e = ml_collections.ConfigDict(dict(
      task="code",                   # summarization or code
      examples=10,                   # the task's first N examples
      modes=("greedy", "nucleus"),   # sampling modes of the task's config
      matmuls=("xla", "auto"),       # ModelConfig.matmul values (the first: the baseline)
      context=256,                   # context of the r(K+1) measurement
      out=""))                       # optional JSON output path
  return cfg
