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
# tests/training/test_ttt.py runs in a process of its own when the whole suite runs: after
# the rest of the suite, XLA's CPU compiler segfaulted compiling its training step (twice on
# 2026-12-01, in backend_compile_and_load); alone it passes. Given test paths, one process.
# (A test path is an argument naming a file or folder that exists, a node id's file included:
# an option's value, as in `-p no:cacheprovider`, is not one.)
for a in "$@"; do
  case "$a" in -*) continue ;; esac
  if [ -e "${a%%::*}" ]; then exec .venv/bin/python -m pytest -q "$@"; fi
done
# The whole suite runs in $SPECJAX_TEST_WORKERS pytest-xdist workers (default 2), each test file
# in one worker (--dist loadfile: a file's module fixtures are built once). One process leaves
# about a third of 2 cores idle while XLA compiles on one thread: on 2 cores, tests/models and
# tests/training took 404 s in one process, 295 s in 2 workers and 322 s in 3 (2026-12-02).
rc=0
.venv/bin/python -m pytest -q -n "${SPECJAX_TEST_WORKERS:-2}" --dist loadfile \
    --ignore=tests/training/test_ttt.py "$@" || rc=$?
.venv/bin/python -m pytest -q "$@" tests/training/test_ttt.py || rc=$?
exit $rc
