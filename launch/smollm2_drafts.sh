#!/usr/bin/env bash
# The SmolLM2-135M draft ablation: each run trains one draft variant in runs/drafts/<name>
# (resumed if interrupted) and records its acceptance on held-out code and prose (k=4).
# Usage: bash launch/smollm2_drafts.sh [STEPS] [NAME ...]   (default: 250 steps, all runs)
# Compare the results with: python -m experiments.compare_drafts \
#   --config=configs/compare_drafts.py:smollm2 $(printf -- ' --config.drafts=%s' runs/drafts/*)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
STEPS="${1:-250}"
shift || true
train() {  # NAME PRESET [OVERRIDES...]
  local name=$1 preset=$2
  shift 2
  "$PY" -m experiments.train --config="configs/train.py:$preset" --workdir="runs/drafts/$name" \
    --config.steps="$STEPS" --config.eval.every=50 "$@"
}
runs=(
  "small_tvd smollm2_small"
  "small_lm smollm2_small_lm"
  "adapter_tvd smollm2_adapter"
  "adapter_fkl smollm2_adapter --config.distill.divergence=fkl"
  "adapter_tvd_target smollm2_adapter --config.data.mixture=corpus:1,target:1"
  "adapter_tvd_onpolicy smollm2_adapter --config.data.mixture=corpus:1,draft:1"
  "adapter8_tvd smollm2_adapter --config.draft.layers=8"
  "adapter_jsd smollm2_adapter --config.distill.divergence=jsd"
)
for r in "${runs[@]}"; do
  read -r -a args <<< "$r"
  if [ $# -eq 0 ] || [[ " $* " == *" ${args[0]} "* ]]; then
    echo "=== ${args[0]}"
    train "${args[@]}"
  fi
done
