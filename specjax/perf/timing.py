"""Wall-clock timing that leaves compilation out, and a description of the machine timed on."""
import os
import platform
import sys
import time
from typing import Callable, Tuple, TypeVar

import jax
import numpy as np

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


def timed(fn: Callable[[], T]) -> Tuple[T, float]:
  """(fn(), seconds), blocking on the result; a call that compiled runs again, the rerun timed."""
  for _ in range(2):
    before = compile_count()
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    dt = time.perf_counter() - t0
    if compile_count() == before:
      break
  return out, dt


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
