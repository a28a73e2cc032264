#!/usr/bin/env bash
# Runs one experiment on this host (one process):
#   bash launch/local.sh [--dry_run] [experiments/NAME.py] [ARGS...]
# ARGS go to the experiment (default experiments/generate.py), e.g.
#   bash launch/local.sh --config=configs/generate.py:tiny
#   bash launch/local.sh --config=configs/generate.py:tiny_mesh --cpu_devices=8
#   bash launch/local.sh experiments/bench_decode.py
# The interpreter is $PYTHON, by default .venv/bin/python (made by launch/setup_env.sh,
# which runs first when .venv is missing and PYTHON is unset).
# --dry_run prints the exact command and runs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=launch/lib.sh
source launch/lib.sh

dry_run=0
experiment=experiments/generate.py
if [ "${1:-}" = "--dry_run" ]; then dry_run=1; shift; fi
if [ $# -gt 0 ] && [[ "$1" == *.py && "$1" != -* ]]; then
  experiment="$1"; shift
  [[ "$experiment" == */* ]] || experiment="experiments/$experiment"
  if [ ! -f "$experiment" ]; then
    echo "local.sh: no such experiment: $experiment (expected a file under experiments/)" >&2
    exit 2
  fi
fi

if [ -z "${PYTHON:-}" ]; then
  PYTHON=.venv/bin/python
  if [ ! -x "$PYTHON" ]; then
    if [ "$dry_run" = 1 ]; then
      echo "local.sh: (.venv is missing: a real run first does: bash launch/setup_env.sh)" >&2
    else
      echo "local.sh: .venv is missing; running launch/setup_env.sh" >&2
      bash launch/setup_env.sh
    fi
  fi
fi

cmd=("$PYTHON" -m "$(module_of "$experiment")" "$@")
if [ "$dry_run" = 1 ]; then
  q "${cmd[@]}"
  exit 0
fi
exec "${cmd[@]}"
