#!/usr/bin/env bash
# Runs one experiment on every worker (host) of a Cloud TPU VM or pod slice:
#   bash launch/tpu_vm.sh [--dry_run] --tpu=NAME --zone=ZONE [--project=P]
#       [--create [--accelerator_type=v4-32] [--version=tpu-ubuntu2204-base]]
#       [--repo_dir=~/specjax] [--skip_copy] [--skip_install]
#       [experiments/NAME.py] [--] [ARGS...]
# Steps (each a gcloud command; all workers at once with --worker=all):
#   1. with --create: gcloud compute tpus tpu-vm create NAME (accelerator type, runtime version)
#   2. tar this tree (without .git, .venv*, caches) and scp it to every worker's home
#   3. on every worker: unpack into REPO_DIR, bash launch/setup_env.sh, pip install jax[tpu]
#      (same jax version as setup_env.sh installed; python3-venv first where it is missing)
#   4. on every worker: cd REPO_DIR && .venv/bin/python EXPERIMENT --distributed ARGS
#      (jax.distributed.initialize() finds the other workers itself; process 0 prints)
# --skip_copy / --skip_install leave out steps 2 / 3 (re-runs). ARGS go to the experiment,
# shell-quoted for the remote shell, so they may hold spaces and quotes. --dry_run prints
# every command, one per line, and runs nothing. gcloud must be installed and logged in.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=launch/lib.sh
source launch/lib.sh
# A remote path: a leading ~/ stays unquoted (the remote shell expands it), the rest quoted.
qpath() {
  if [ "$1" = "~" ]; then echo "~"
  elif [[ "$1" == "~/"* ]]; then echo "~/$(q "${1#\~/}")"
  else q "$1"; fi
}
die() { echo "tpu_vm.sh: $*" >&2; exit 2; }

dry_run=0
tpu=""
zone=""
project=""
create=0
accelerator_type=v4-32
version=tpu-ubuntu2204-base
repo_dir="~/specjax"
skip_copy=0
skip_install=0
experiment=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry_run) dry_run=1 ;;
    --tpu=*) tpu="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --project=*) project="${1#*=}" ;;
    --create) create=1 ;;
    --accelerator_type=*) accelerator_type="${1#*=}" ;;
    --version=*) version="${1#*=}" ;;
    --repo_dir=*) repo_dir="${1#*=}" ;;
    --skip_copy) skip_copy=1 ;;
    --skip_install) skip_install=1 ;;
    --tpu|--zone|--project|--accelerator_type|--version|--repo_dir) die "write $1=VALUE" ;;
    --) shift; args+=("$@"); break ;;
    *)
      if [ -z "$experiment" ] && [ ${#args[@]} -eq 0 ] && [[ "$1" == *.py && "$1" != -* ]]; then
        experiment="$1"
      else
        args+=("$1")
      fi ;;
  esac
  shift
done

[ -n "$tpu" ] || die "--tpu=NAME is required (the TPU VM or pod slice to run on)"
[ -n "$zone" ] || die "--zone=ZONE is required (e.g. --zone=us-central2-b)"
[ -n "$repo_dir" ] || die "--repo_dir must not be empty"
if [ -z "$experiment" ]; then
  experiment=experiments/generate.py
else
  [[ "$experiment" == */* ]] || experiment="experiments/$experiment"
fi
[ -f "$experiment" ] || die "no such experiment: $experiment (expected a file under experiments/)"

common=(--zone="$zone")
[ -z "$project" ] || common+=(--project="$project")
tpu_cmd=(gcloud compute tpus tpu-vm)
repo=$(qpath "$repo_dir")
tarball="${TMPDIR:-/tmp}/specjax-launch-$$.tar.gz"
remote_tarball=specjax-launch.tar.gz  # in each worker's home directory

steps=()  # each step: one command line (bash-quoted), printed or run in order
add_step() { steps+=("$(q "$@")"); }

if [ "$create" = 1 ]; then
  add_step "${tpu_cmd[@]}" create "$tpu" "${common[@]}" \
    --accelerator-type="$accelerator_type" --version="$version"
fi
if [ "$skip_copy" = 0 ]; then
  add_step tar -czf "$tarball" --exclude=./.git --exclude='./.venv*' --exclude=__pycache__ \
    --exclude=.pytest_cache --exclude='*.egg-info' --exclude=./build --exclude='./workdir*' \
    --exclude=./runs .
  add_step "${tpu_cmd[@]}" scp --recurse "$tarball" "$tpu:$remote_tarball" "${common[@]}" \
    --worker=all
fi
if [ "$skip_install" = 0 ] || [ "$skip_copy" = 0 ]; then
  remote="mkdir -p $repo && cd $repo"
  [ "$skip_copy" = 1 ] || remote+=" && tar -xzf ~/$remote_tarball && rm -f ~/$remote_tarball"
  if [ "$skip_install" = 0 ]; then
    # Ubuntu images may lack python3-venv (ensurepip), which launch/setup_env.sh needs.
    remote+=" && { python3 -c \"import ensurepip\" 2>/dev/null || { sudo apt-get update -q"
    remote+=" && sudo apt-get install -y -q python3-venv; }; }"
    remote+=" && bash launch/setup_env.sh"
    # jax[tpu] of the version setup_env.sh chose: brings the matching libtpu from PyPI.
    remote+=" && .venv/bin/pip install -q --disable-pip-version-check"
    remote+=" \"jax[tpu]==\$(.venv/bin/python -c \"import jax; print(jax.__version__)\")\""
  fi
  add_step "${tpu_cmd[@]}" ssh "$tpu" "${common[@]}" --worker=all --command="$remote"
fi
# printf %q: each argument reaches the experiment exactly as given here (the remote login
# shell of TPU VMs is bash).
run_remote="cd $repo && .venv/bin/python -m $(printf '%q ' "$(module_of "$experiment")" --distributed \
  ${args[@]+"${args[@]}"})"
run_remote="${run_remote% }"
add_step "${tpu_cmd[@]}" ssh "$tpu" "${common[@]}" --worker=all --command="$run_remote"

if [ "$dry_run" = 1 ]; then
  printf '%s\n' "${steps[@]}"
  exit 0
fi
command -v gcloud >/dev/null || die "gcloud is not installed (see https://cloud.google.com/sdk)"
trap 'rm -f "$tarball"' EXIT
for step in "${steps[@]}"; do
  echo "tpu_vm.sh: \$ $step" >&2
  eval "$step"
done
