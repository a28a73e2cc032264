#!/usr/bin/env bash
# Installs bubblewrap (Debian's bwrap), the sandbox specjax.evals.sandbox runs generated code
# (HumanEval completions) in, and python3 (the interpreter the sandbox's uid 65534 runs where
# the caller's own lies under a directory closed to others, e.g. pyenv's under /root).
# As root with apt-get: apt-get install -y (apt-get update first if that fails). Otherwise,
# or if that fails, it says how to install them and exits 0: the evals then refuse to run
# generated code (specjax.evals.sandbox.SandboxUnavailable) unless explicitly allowed.
set -uo pipefail
have_bwrap() { local p; p=$(command -v bwrap) && [ -x "$p" ]; }
missing=()
have_bwrap || missing+=(bubblewrap)
[ -x /usr/bin/python3 ] || missing+=(python3)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  echo "install_sandbox.sh: apt-get install ${missing[*]}" >&2
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
if ! have_bwrap; then
  echo "install_sandbox.sh: bubblewrap (bwrap) is missing, so generated code will not run." \
       "Install it: sudo apt-get install bubblewrap (Fedora: dnf install bubblewrap)." >&2
fi
exit 0
