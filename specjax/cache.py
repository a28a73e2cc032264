"""Where specjax keeps what it builds or caches: `$SPECJAX_CACHE`, else `~/.cache/specjax`.

Never inside the installed package, so a read-only install works (the CPU matmul
kernel is built here). A leaf: imports nothing from specjax.
"""
import os


def cache_dir(*parts: str) -> str:
  """The path `<cache root>/<parts...>` (not created)."""
  root = os.environ.get("SPECJAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "specjax")
  return os.path.join(root, *parts)
