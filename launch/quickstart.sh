#!/usr/bin/env bash
# The main job on its embedded default: installs specjax (with the eval sets) into .venv and
# reproduces Chen et al.'s Table 1 / Figure 1 in miniature with the real SmolLM2-135M-Instruct
# on CPU: ArS vs SpS (the shipped feature draft and prompt lookup) on 1 ACLSum paper and 1
# HumanEval problem, greedy and nucleus, plus a K sweep (configs/table1.py:quick).
# Outputs go to $WORKDIR (default runs/table1_quick); extra arguments go to the experiment,
# e.g. --config.k=3. Re-running resumes (finished generations are kept).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup_env.sh eval
bash launch/install_sandbox.sh  # HumanEval completions run in bubblewrap (specjax.evals.sandbox)
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
.venv/bin/python -m experiments.speedup_table --config=configs/table1.py:quick \
    --workdir="${WORKDIR:-runs/table1_quick}" "$@"
