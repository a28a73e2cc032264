#!/usr/bin/env bash
# The whole test suite: installs specjax with its test extras into .venv (the eval sets,
# which the data pipeline's decontamination tests read, plus torch and transformers for the
# reference checks against transformers) and runs pytest on 8
# simulated CPU devices (tests/conftest.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup_env.sh dev eval interop
export JAX_PLATFORMS=cpu
# setup_env.sh built the CPU matmul kernel: its tests must run, not skip.
export SPECJAX_REQUIRE_KERNEL="${SPECJAX_REQUIRE_KERNEL:-1}"
.venv/bin/python -m pytest -q "$@"
