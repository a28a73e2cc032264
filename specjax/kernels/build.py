"""Builds the CPU matmul kernel: `python -m specjax.kernels.build [--force]`.

Compiles `cpu_matmul.cc` (AVX-512 and AVX2 variants, picked at run time) against jaxlib's
XLA FFI headers with the system's g++ into `cpu_matmul.LIB_PATH`, in the specjax cache
directory (`$SPECJAX_CACHE` or `~/.cache/specjax`), named by a digest of the sources and
the jax version. Without a compiler, or on a CPU without AVX2 + FMA, specjax keeps to XLA's
dot (`cpu_matmul.status()`).
"""
import os
import shutil
import subprocess
import sys

import jax

from specjax.kernels import cpu_matmul

SOURCE = cpu_matmul.SOURCES[0]  # includes the .inc


def command(out: str):
  cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
  if cxx is None:
    raise RuntimeError("no C++ compiler (g++) found; install one or set CXX")
  return [cxx, "-O3", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno",
          "-isystem", jax.ffi.include_dir(), SOURCE, "-o", out]


def build(force: bool = False) -> str:
  """Builds the library unless it exists (its name is its sources' digest); returns its path."""
  out = cpu_matmul.LIB_PATH
  if not force and os.path.exists(out):
    return out
  os.makedirs(os.path.dirname(out), exist_ok=True)
  tmp = out + f".tmp{os.getpid()}"
  subprocess.run(command(tmp), check=True)
  os.replace(tmp, out)  # atomic: a process loading the old library never sees half a file
  return out


def main(argv):
  try:
    path = build(force="--force" in argv)
  except (RuntimeError, subprocess.CalledProcessError) as e:
    print(f"specjax: CPU matmul kernel not built ({e}); XLA's dot will be used", file=sys.stderr)
    return 0 if "--check" not in argv else 1
  print(f"specjax: CPU matmul kernel: {path} ({cpu_matmul.status()})")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
