#!/usr/bin/env bash
# Issue 19 end to end for SmolLM2-135M: the target's replies (data/replies_smollm2), then
# the feature-draft ablation on the same replies and budget (runs/eagle/<name>, each resumed
# if interrupted), then the goal measurement on the held-out chat prompts (batch 1, K = 4).
# Usage: bash launch/smollm2_eagle.sh [STEPS] [NAME ...]   (default: 400 steps, all runs)
#   fused3      layers 1, 15, 28 fused, training-time test over 3 runs (the shipped recipe)
#   top         the top layer only (EAGLE-1's feature), training-time test over 3 runs
#   fused3_ttt1 layers 1, 15, 28, no training-time test (one run: teacher-forced only)
#   small       the existing 4-layer small draft (no features) distilled on the same replies
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
STEPS="${1:-400}"
shift || true
"$PY" -m experiments.make_replies --config=configs/replies.py:smollm2 \
  --workdir=data/replies_smollm2
train() {  # NAME PRESET [OVERRIDES...]
  local name=$1 preset=$2
  shift 2
  "$PY" -m experiments.train --config="configs/train.py:$preset" --workdir="runs/eagle/$name" \
    --config.steps="$STEPS" "$@"
}
runs=(
  "fused3 smollm2_eagle"
  "top smollm2_eagle_top"
  "fused3_ttt1 smollm2_eagle --config.ttt.steps=1"
  "small smollm2_small_replies"
)
for r in "${runs[@]}"; do
  read -r -a args <<< "$r"
  if [ $# -eq 0 ] || [[ " $* " == *" ${args[0]} "* ]]; then
    echo "=== ${args[0]}"
    train "${args[@]}"
  fi
done
drafts=()
for d in runs/eagle/*/best; do drafts+=("--config.drafts=$d"); done
for mode in "temperature=0.0" "temperature=0.8 --config.sampling.top_p=0.95"; do
  # shellcheck disable=SC2086
  "$PY" -m experiments.bench_speculative --config=configs/bench_speculative.py:smollm2_chat \
    "${drafts[@]}" --config.drafts=lookup:3 --config.sampling.$mode
done
