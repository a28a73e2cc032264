#!/usr/bin/env bash
# The whole test suite: installs specjax with its test extras into .venv (the eval sets,
# which the data pipeline's decontamination tests read, plus torch and transformers for the
# reference checks against transformers) and runs pytest on 8
# simulated CPU devices (tests/conftest.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup_env.sh dev eval interop
# bubblewrap, the sandbox for generated code (apt-get install as root where it is missing).
bash launch/install_sandbox.sh
export JAX_PLATFORMS=cpu
# setup_env.sh built the CPU matmul kernel: its tests must run, not skip.
export SPECJAX_REQUIRE_KERNEL="${SPECJAX_REQUIRE_KERNEL:-1}"
# The sandbox's tests (tests/evals/test_humaneval_exec.py) must run too: no bwrap fails them.
export SPECJAX_REQUIRE_SANDBOX="${SPECJAX_REQUIRE_SANDBOX:-1}"
.venv/bin/python -m pytest -q "$@"
