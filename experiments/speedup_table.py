"""Chen et al. 2023 Table 1 and Figure 1 on the models specjax has: ArS vs SpS speed and quality.

  python -m experiments.speedup_table --config=configs/table1.py:quick --workdir=runs/table1_quick
  python -m experiments.speedup_table --config=configs/table1.py:full --workdir=runs/table1
  python -m experiments.speedup_table --config=configs/table1.py:full --workdir=runs/table1 \
      --report_only    # the outputs of a run still going on, from its records

Rows: task (summarization, code) x sampling mode (nucleus, greedy) x method
(ArS; SpS with each drafter), every generation timed side by side in this run;
then the K sweep (Figure 1). WORKDIR gets table.md (also printed), table.csv,
results.json, k_sweep.csv, k_sweep.png; records/ keeps every generation, so
re-running resumes, and a config with more examples, samples, drafters or Ks
extends the run. A config that changes finished results (target, K, seed, max
tokens, ...) is refused: use a new workdir. How rows are timed, summarized and
predicted: specjax/evals/table1.py.
"""
from absl import flags

from experiments import common
from specjax.evals import table1

_WORKDIR = common.workdir_flag("output directory (resumed when it holds this run)")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "generate nothing: write the outputs from "
                                 "the records in --workdir (a run may be going on)")


def main(cfg):
  table1.run(cfg, _WORKDIR.value, _REPORT_ONLY.value, build_model=common.build_model)


if __name__ == "__main__":
  common.run(main, "configs/table1.py:quick")
