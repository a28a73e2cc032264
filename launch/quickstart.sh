#!/usr/bin/env bash
# The main job on its embedded default: installs specjax into .venv and generates with the
# real SmolLM2-135M-Instruct on CPU, autoregressively and speculatively with the draft that
# ships in the package (sj.load("smollm2-135m-draft")), printing the text and ms/token.
# Extra arguments go to the experiment, e.g. --config.max_new_tokens=128.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup_env.sh
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
.venv/bin/python experiments/generate.py --config=configs/generate.py:smollm2 \
    --config.draft=smollm2-135m-draft "$@"
