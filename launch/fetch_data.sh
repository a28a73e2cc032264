#!/usr/bin/env bash
# Pre-fetches the training prose (Debian's python3.11-doc, unpacked) so that training needs
# no network, e.g. on a TPU VM before launching:
#   bash launch/fetch_data.sh [--dry_run] [DIR]
# DIR defaults to $SPECJAX_DATA, else ~/.cache/specjax/data; build_corpus(cache_dir=DIR) reads
# it there. Idempotent: a completed fetch is left alone. The interpreter is $PYTHON, by default
# .venv/bin/python (bash launch/setup_env.sh makes it). --dry_run prints the command only.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=launch/lib.sh
source launch/lib.sh

dry_run=0
if [ "${1:-}" = "--dry_run" ]; then dry_run=1; shift; fi
PYTHON="${PYTHON:-.venv/bin/python}"
if [ "$dry_run" = 0 ] && ! command -v "$PYTHON" >/dev/null; then
  echo "fetch_data.sh: no $PYTHON; run bash launch/setup_env.sh or set PYTHON" >&2
  exit 2
fi
code='import sys; from specjax.training import sources
print(sources.fetch_debian_docs(sys.argv[1] or None))'
cmd=("$PYTHON" -c "$code" "${1:-}")
if [ "$dry_run" = 1 ]; then
  q "${cmd[@]}"
  exit 0
fi
exec "${cmd[@]}"
