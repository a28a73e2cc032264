"""Wall-clock timing that leaves compilation out, and a description of the machine timed on."""
import dataclasses
import os
import platform
import sys
import time
from typing import Callable, Optional, Tuple, TypeVar

import jax
import numpy as np

from specjax.decoding import engine

T = TypeVar("T")
_COMPILES = [0]
_LISTENING = [False]


def _on_event(name: str, *args, **kwargs) -> None:
  if name.startswith(("/jax/core/compile", "/jax/compilation_cache")):
    _COMPILES[0] += 1


def compile_count() -> int:
  """How many compilation events JAX has reported since timing was first asked for."""
  if not _LISTENING[0]:  # registered on first use, not at import: importing has no effects
    jax.monitoring.register_event_duration_secs_listener(_on_event)
    jax.monitoring.register_event_listener(lambda name, **kw: _on_event(name))
    _LISTENING[0] = True
  return _COMPILES[0]


def _calls_until_compiled(fn: Callable[[], T]) -> Tuple[T, float, Optional[float]]:
  """fn() (blocked on), run again if it compiled: (out, seconds of the last call, seconds of
  the first when it compiled, else None)."""
  first = None
  for _ in range(2):
    before = compile_count()
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    dt = time.perf_counter() - t0
    if compile_count() == before:
      break
    first = dt
  return out, dt, first


def timed(fn: Callable[[], T]) -> Tuple[T, float]:
  """(fn(), seconds), blocking on the result; a call that compiled runs again, the rerun timed."""
  out, dt, _ = _calls_until_compiled(fn)
  return out, dt


@dataclasses.dataclass(frozen=True)
class GenerationTime:
  """One generation's wall time, compilation excluded, in its two programs' parts."""
  seconds: float          # the whole call (host checks, both programs, the output's transfer)
  prefill_seconds: float  # the prefill program (the target's and the drafter's caches)
  loop_seconds: float     # the loop program (every token after the prefill's)
  prefill_tokens: int     # new tokens the prefill emitted over all rows (ArS: one per row)
  compile_seconds: float  # the compile-only call's seconds (0 if nothing compiled), plus any
                          # compiling call's time over its rerun's


def timed_generation(fn: Callable[[], T]) -> Tuple[T, GenerationTime]:
  """(fn(), its GenerationTime): `timed` for a call of `sj.generate` or `sj.speculative_generate`.

  The two programs are waited for one after the other (`engine.record_phases`),
  so the parts are measured, not inferred; waiting costs one host round trip.
  They are compiled first without running (`engine.compile_only`), so a call that
  compiles costs its compilation, not a second generation. `fn` must make exactly
  one generation and may not use its output's values (a compile-only call returns zeros).
  """
  logs = []

  def call():
    with engine.record_phases() as log:
      out = fn()
    if len(log) != 1:
      raise ValueError(f"timed_generation times one generation per call, this one ran {len(log)}")
    logs.append(log[0])
    return out

  # Compile both programs ahead of time (no generation runs), then time the call itself.
  before = compile_count()
  t0 = time.perf_counter()
  with engine.compile_only():
    fn()
  compile_s = time.perf_counter() - t0 if compile_count() != before else 0.0
  out, dt, first = _calls_until_compiled(call)  # runs again only if it compiled after all
  p = logs[-1]
  compile_s += max(0.0, first - dt) if first is not None else 0.0
  return out, GenerationTime(seconds=dt, prefill_seconds=p["prefill_s"], loop_seconds=p["loop_s"],
                             prefill_tokens=p["prefill_tokens"], compile_seconds=compile_s)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
  """Median wall time of fn() after one warm-up (compiling) call; fn must block."""
  fn()
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    ts.append(time.perf_counter() - t0)
  return float(np.median(ts))


def machine() -> dict:
  """CPU, core count, platform and library versions, the backend and its devices."""
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    pass
  import flax
  import jaxlib
  return dict(cpu=cpu, cpu_count=os.cpu_count(), platform=platform.platform(),
              python=sys.version.split()[0], jax=jax.__version__, jaxlib=jaxlib.__version__,
              flax=flax.__version__, backend=jax.default_backend(),
              devices=[d.device_kind for d in jax.devices()])
