#!/usr/bin/env bash
# Runs one experiment as N jax.distributed processes on this machine, over loopback:
#   bash launch/multihost_local.sh [--dry_run] [--num_processes=N] [--port=P]
#       [--cpu_devices=D] [--timeout=S] [experiments/NAME.py] [--] [ARGS...]
# Process i runs
#   $PYTHON EXPERIMENT --coordinator_address=127.0.0.1:P --num_processes=N --process_id=i
#       --cpu_devices=D ARGS
# with JAX_PLATFORMS=cpu (unless set) and CPU collectives over gloo; every output line is
# prefixed with "[i] ". Defaults: N=2, P=12355, D=8/N (8 devices in all), S=600,
# EXPERIMENT=experiments/generate.py, ARGS=--config=configs/generate.py:tiny_mesh (a (2, 4)
# mesh: the mesh must multiply to N*D). Exits non-zero if any process fails (and stops the
# others), on Ctrl-C, or after S seconds (exit 124). --dry_run prints the N commands.
# The interpreter is $PYTHON, by default .venv/bin/python (see launch/local.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=launch/lib.sh
source launch/lib.sh
die() { echo "multihost_local.sh: $*" >&2; exit 2; }
positive_int() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }

dry_run=0
n=2
port=12355
cpu_devices=""
timeout_s=600
experiment=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry_run) dry_run=1 ;;
    --num_processes=*) n="${1#*=}" ;;
    --port=*) port="${1#*=}" ;;
    --cpu_devices=*) cpu_devices="${1#*=}" ;;
    --timeout=*) timeout_s="${1#*=}" ;;
    --num_processes|--port|--cpu_devices|--timeout) die "write $1=VALUE" ;;
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

positive_int --num_processes "$n"
positive_int --port "$port"
positive_int --timeout "$timeout_s"
if [ -z "$cpu_devices" ]; then
  cpu_devices=$(( 8 / n ))
  if [ $(( 8 % n )) -ne 0 ] || [ "$cpu_devices" -lt 1 ]; then
    [ "$cpu_devices" -ge 1 ] || cpu_devices=1
    echo "multihost_local.sh: warning: 8 devices do not split over $n processes; using" \
         "--cpu_devices=$cpu_devices ($(( n * cpu_devices )) devices in all): pass" \
         "--cpu_devices and a matching --config.mesh_shape" >&2
  fi
fi
positive_int --cpu_devices "$cpu_devices"

if [ -z "$experiment" ]; then
  experiment=experiments/generate.py
  [ ${#args[@]} -gt 0 ] || args=(--config=configs/generate.py:tiny_mesh)
else
  [[ "$experiment" == */* ]] || experiment="experiments/$experiment"
fi
[ -f "$experiment" ] || die "no such experiment: $experiment (expected a file under experiments/)"

if [ -z "${PYTHON:-}" ]; then
  PYTHON=.venv/bin/python
  if [ ! -x "$PYTHON" ]; then
    if [ "$dry_run" = 1 ]; then
      echo "multihost_local.sh: (.venv is missing: a real run first does:" \
           "bash launch/setup_env.sh)" >&2
    else
      echo "multihost_local.sh: .venv is missing; running launch/setup_env.sh" >&2
      bash launch/setup_env.sh
    fi
  fi
fi
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"

command_for() {  # command_for I: sets cmd to process I's command
  cmd=("$PYTHON" -m "$(module_of "$experiment")" "--coordinator_address=127.0.0.1:$port"
       "--num_processes=$n" "--process_id=$1" "--cpu_devices=$cpu_devices" "${args[@]}")
}

if [ "$dry_run" = 1 ]; then
  for (( i = 0; i < n; i++ )); do
    command_for "$i"
    echo "JAX_PLATFORMS=$(q "$JAX_PLATFORMS") $(q "${cmd[@]}")"
  done
  exit 0
fi

# Every process (with its output filter) runs in a session and process group of its own
# (setsid), so that Ctrl-C reaches only this script, which then stops them all by group.
pids=()
alive=()
stop_all() {
  local i any=0
  for i in "${!pids[@]}"; do
    if [ "${alive[$i]}" = 1 ] && kill -TERM -- "-${pids[$i]}" 2>/dev/null; then any=1; fi
  done
  [ "$any" = 1 ] || return 0
  for _ in $(seq 50); do  # up to 5 s to exit, then SIGKILL
    any=0
    for i in "${!pids[@]}"; do
      if kill -0 -- "-${pids[$i]}" 2>/dev/null; then any=1; fi
    done
    [ "$any" = 1 ] || break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do kill -KILL -- "-${pids[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'echo "multihost_local.sh: interrupted; stopping all processes" >&2; stop_all; exit 130' INT
trap 'echo "multihost_local.sh: terminated; stopping all processes" >&2; stop_all; exit 143' TERM
trap 'stop_all' EXIT

echo "multihost_local.sh: starting $n processes ($cpu_devices CPU devices each," \
     "coordinator 127.0.0.1:$port, timeout ${timeout_s}s)" >&2
for (( i = 0; i < n; i++ )); do
  command_for "$i"
  echo "[$i] \$ $(q "${cmd[@]}")" >&2
  setsid bash -c 'set +e; "${@:2}" < /dev/null 2>&1 | sed -u "s/^/[$1] /"
                 exit "${PIPESTATUS[0]}"' prefix "$i" "${cmd[@]}" &
  pids[i]=$!
  alive[i]=1
done

status=0
remaining=$n
start=$SECONDS
while [ "$remaining" -gt 0 ]; do
  for (( i = 0; i < n; i++ )); do
    [ "${alive[$i]}" = 1 ] || continue
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      rc=0
      wait "${pids[$i]}" 2>/dev/null || rc=$?
      alive[i]=0
      remaining=$(( remaining - 1 ))
      if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
        status=$rc
        echo "multihost_local.sh: process $i failed (exit $rc); stopping the others" >&2
        stop_all
      fi
    fi
  done
  if [ "$remaining" -gt 0 ] && [ $(( SECONDS - start )) -ge "$timeout_s" ]; then
    echo "multihost_local.sh: timed out after ${timeout_s}s; stopping all processes" >&2
    stop_all
    status=124
    break
  fi
  [ "$remaining" -eq 0 ] || sleep 0.2
done
trap - EXIT
if [ "$status" -ne 0 ]; then
  exit "$status"
fi
echo "multihost_local.sh: all $n processes finished" >&2
