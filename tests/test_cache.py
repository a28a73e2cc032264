"""The cache directory and JAX's persistent compilation cache under it."""
import os
import subprocess
import sys

from specjax import cache

_PROGRAM = """
import jax, jax.numpy as jnp
from specjax.cache import enable_compilation_cache
hits = []
jax.monitoring.register_event_listener(
    lambda name, **kw: hits.append(name) if name == "/jax/compilation_cache/cache_hits" else None)
enable_compilation_cache({path!r})
print(float(jax.jit(lambda x: jnp.sin(x) * 3 + 1)(jnp.float32(0.5))), len(hits))
"""


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.setenv("SPECJAX_CACHE", str(tmp_path))
  assert cache.cache_dir("kernels", "x.so") == os.path.join(str(tmp_path), "kernels", "x.so")


def test_a_second_process_reads_the_program_back(tmp_path):
  path = str(tmp_path / "jax")
  run = lambda: subprocess.run([sys.executable, "-c", _PROGRAM.format(path=path)], check=True,
                               capture_output=True, text=True).stdout.split()
  value, hits = run()
  assert hits == "0" and os.listdir(path), "the first process compiles and writes the cache"
  value2, hits2 = run()
  assert value2 == value and int(hits2) >= 1, "the second reads the compiled programs back"
