#!/usr/bin/env bash
# Helpers sourced by the launch scripts.

# Shell-quotes each argument for display: as is where that is safe, else in single quotes
# (only the value of a --flag=value argument, for readability).
q() {
  local a out=()
  for a in "$@"; do
    if [ -n "$a" ] && [ "$(printf '%q' "$a")" = "$a" ]; then
      out+=("$a")
    elif [[ "$a" =~ ^(--[A-Za-z0-9_.-]+=)(.+)$ ]]; then
      a="${BASH_REMATCH[2]}"
      out+=("${BASH_REMATCH[1]}'${a//\'/\'\\\'\'}'")
    else
      out+=("'${a//\'/\'\\\'\'}'")
    fi
  done
  echo "${out[*]}"
}

# experiments/NAME.py -> experiments.NAME: the mains run as modules (`python -m`) from the
# repository root, which puts configs/ and experiments/ on the path (only specjax is installed).
module_of() {
  local m="${1%.py}"
  echo "${m//\//.}"
}
