"""Small-M fp32 matmuls on CPU through an XLA FFI kernel, with XLA's dot as the fallback.

Why: speculative sampling needs the target to score K + 1 tokens for about the price of one.
XLA:CPU multiplies a [1, K] row by a weight matrix as a memory-bound GEMV, but from 2 rows on
it switches to GEMM kernels that cost up to twice as much (docs/verification_cpu.md). The
kernel in `cpu_matmul.cc` streams each weight once for up to 6 rows at a time, so 5 rows cost
about what 1 does, and takes several weights that share an input (q/k/v, gate/up) in one
call. It is built by `python -m specjax.kernels.build` (run by
`launch/setup_env.sh`) into the specjax cache directory (`specjax.cache`), named by a digest of
its sources and the jax version: a read-only install works, and checkouts or environments
that differ never load each other's library.

`matmuls(x, ws)` takes the kernel when all of these hold, else `jnp.dot`:
- the library is built, loads, and the CPU has AVX2 + FMA (`status()` says why not);
- the model config asks for it (`ModelConfig.matmul == "auto"`, the default);
- fp32 operands, and at most `MAX_ROWS` rows (6: decode and verification up to K = 5;
  batched decode, prefill and training keep XLA's GEMM), except single rows where XLA's
  GEMV measured faster (`uses_kernel`);
- the caller resolved `mode` to "auto" for this placement: the custom call has no sharding
  rule, so the samplers pass "xla" under a multi-device mesh (`sharding.kernel_allowed`);
- the program is lowered for CPU (`lax.platform_dependent`): on GPU/TPU nothing changes.
It is differentiable (its JVP uses XLA dots), and runs inside jit and `lax.while_loop`.
"""
import ctypes
import functools
import hashlib
import os
from typing import Tuple

import jax
import jax.numpy as jnp

from specjax.cache import cache_dir

TARGET = "specjax_cpu_matmul"
SOURCES = [os.path.join(os.path.dirname(os.path.abspath(__file__)), f)
           for f in ("cpu_matmul.cc", "cpu_matmul_kernel.inc")]


def _lib_path() -> str:
  digest = hashlib.sha256(jax.__version__.encode())
  for src in SOURCES:
    with open(src, "rb") as f:
      digest.update(f.read())
  return cache_dir("kernels", f"cpu_matmul-{digest.hexdigest()[:16]}.so")


def _max_rows() -> int:
  value = os.environ.get("SPECJAX_CPU_MATMUL_MAX_ROWS", "6")
  if not value.isdigit() or int(value) < 1:
    raise ValueError(f"SPECJAX_CPU_MATMUL_MAX_ROWS={value!r}: want a positive integer")
  return int(value)


LIB_PATH = _lib_path()
# Rows (batch x tokens) up to which the kernel is used: one pass over each weight (its
# register block is 6 rows). Past that it streams the weights again per 6 rows, and on this
# project's current CPU (2 cores, 105 MiB L3, half its time stolen) that lost to XLA's GEMM:
# SmolLM2-135M verification r9 2.47 vs 1.97, r17 4.03 vs 2.51 (bench_verify), batched greedy
# decode 149 vs 89 ms per step at 8 rows and 449 vs 201 at 32 (docs/verification_cpu.md).
# On the machine it was first tuned on the kernel still won at 17-20 rows (by 10-17%), so
# SPECJAX_CPU_MATMUL_MAX_ROWS sets another cut-over for another CPU.
MAX_ROWS = _max_rows()
# One row is a GEMV, which XLA already runs near memory bandwidth. There the kernel loses
# on the tied vocab head (nt: 1.20x XLA's time for SmolLM2's [49152, 576]) and on the ~1B
# MLP's [2048, 8192] and [8192, 2048] (1.25x for the MLP, 1.32x and 1.10x apart: a column
# block walks one page per row of w), and wins on smaller weights (SmolLM2's MLP: 0.82x).
# So a single row takes the kernel only for weights of at most _GEMV_MAX_DIM rows and columns.
_GEMV_MAX_DIM = 4096
_ISA = {1: "avx2", 2: "avx512"}


@functools.lru_cache(maxsize=None)
def _load() -> Tuple[int, str]:
  """Loads and registers the kernel once: (ISA level, 'avx512'/'avx2'), or (0, why not)."""
  if os.environ.get("SPECJAX_CPU_MATMUL", "") == "xla":
    return 0, "disabled by SPECJAX_CPU_MATMUL=xla"
  if not os.path.exists(LIB_PATH):
    return 0, f"{LIB_PATH} is not built (python -m specjax.kernels.build)"
  try:
    lib = ctypes.cdll.LoadLibrary(LIB_PATH)
    level = lib.specjax_cpu_matmul_isa()
  except (OSError, AttributeError) as e:
    return 0, f"{LIB_PATH} does not load: {e}"
  if level not in _ISA:
    return 0, "this CPU has neither AVX-512 nor AVX2 + FMA"
  jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.SpecjaxCpuMatmul), platform="cpu")
  return level, _ISA[level]


def status() -> str:
  """'avx512' or 'avx2' when the kernel is in use on CPU, else why not."""
  return _load()[1]


def available() -> bool:
  return _load()[0] > 0


def _xla(x_MK, ws, nt: bool, ns, out_dtype=None):
  """The fallback, and the path on GPU/TPU: the dots the model used before the kernel."""
  if nt:
    return tuple(jnp.einsum("mk,nk->mn", x_MK, w[:n], preferred_element_type=out_dtype)
                 for w, n in zip(ws, ns))
  return tuple(jnp.dot(x_MK, w, preferred_element_type=out_dtype) for w in ws)


def _ffi(x_MK, ws, nt: bool, ns):
  outs = tuple(jax.ShapeDtypeStruct((x_MK.shape[0], n), jnp.float32) for n in ns)
  # Under vmap (the kernel is 2-D only) the batch runs as a loop of calls.
  return tuple(jax.ffi.ffi_call(TARGET, outs, vmap_method="sequential")(x_MK, *ws, nt=nt))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _kernel(x_MK, ws, nt: bool, ns):
  return jax.lax.platform_dependent(x_MK, ws, cpu=functools.partial(_ffi, nt=nt, ns=ns),
                                    default=functools.partial(_xla, nt=nt, ns=ns))


@_kernel.defjvp
def _kernel_jvp(nt, ns, primals, tangents):
  (x_MK, ws), (dx_MK, dws) = primals, tangents
  dys = [a + b for a, b in zip(_xla(dx_MK, ws, nt, ns), _xla(x_MK, dws, nt, ns))]
  return _kernel(x_MK, ws, nt, ns), tuple(dys)


def uses_kernel(x_MK, ws, nt: bool = False, mode: str = "auto") -> bool:
  """Whether `matmuls` takes the FFI kernel for these operands (at trace time)."""
  rows = x_MK.shape[0]
  if (mode != "auto" or rows > MAX_ROWS or
      any(a.dtype != jnp.float32 for a in (x_MK, *ws))):
    return False
  if rows == 1 and (nt or any(max(w.shape) > _GEMV_MAX_DIM for w in ws)):
    return False
  return available()


def matmuls(x_MK, ws, nt: bool = False, ns=None, mode: str = "auto", out_dtype=None):
  """([M, K] @ w for w in ws): one kernel call for all of them (they share x).

  Each w is [K, N], or [N', K] with `nt` (its first n rows, n from `ns`; default N').
  `out_dtype` as jnp.dot's `preferred_element_type` (the kernel itself is fp32 only).
  """
  ws = tuple(ws)
  if x_MK.ndim != 2 or any(w.ndim != 2 for w in ws):
    raise ValueError(f"matmuls takes 2-D x and ws, got {x_MK.shape} and "
                     f"{[w.shape for w in ws]}")
  if ns is None:
    ns = tuple(w.shape[0] if nt else w.shape[1] for w in ws)
  ns = tuple(int(n) for n in ns)
  if uses_kernel(x_MK, ws, nt, mode):
    return _kernel(x_MK, ws, nt, ns)
  return _xla(x_MK, ws, nt, ns, out_dtype)


def dense(x_BTK, *ws, nt: bool = False, ns=None, mode: str = "auto", out_dtype=None):
  """`matmuls` over the last axis of a [..., K] activation: one array per w (a tuple for
  several, the array itself for one)."""
  lead = x_BTK.shape[:-1]
  ys = matmuls(x_BTK.reshape(-1, x_BTK.shape[-1]), ws, nt, ns, mode, out_dtype)
  ys = tuple(y.reshape(*lead, y.shape[-1]) for y in ys)
  return ys[0] if len(ys) == 1 else ys
