"""Where specjax keeps what it builds or caches: `$SPECJAX_CACHE`, else `~/.cache/specjax`.

Never inside the installed package, so a read-only install works: the CPU matmul
kernel is built here, and JAX's persistent compilation cache lives under `jax/`
(`enable_compilation_cache`). A leaf: imports nothing from specjax.
"""
import os


def cache_dir(*parts: str) -> str:
  """The path `<cache root>/<parts...>` (not created)."""
  root = os.environ.get("SPECJAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "specjax")
  return os.path.join(root, *parts)


def enable_compilation_cache(path: str = "") -> str:
  """Turns on JAX's persistent compilation cache at `path` (default `<cache root>/jax`).

  A program compiled once is then read back from disk by every later process
  (the experiments' mains call this at start): XLA's compilation, most of a
  short run's time on CPU, is paid once per machine. Tracing still runs each
  time. Every program is cached, however fast it compiled. Returns the path.
  """
  import jax  # here, not at the top: importing this leaf stays free of side effects
  path = path or cache_dir("jax")
  os.makedirs(path, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return path
