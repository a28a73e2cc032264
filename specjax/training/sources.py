"""Training corpus sources: stdlib code, Debian's Python docs and ACLSum train papers, as `Doc`s.

`limit_bytes` caps a source by the total size of its first documents (in sorted name order).
"""
import dataclasses
import glob
import os
import shutil
import subprocess
import sysconfig
import tempfile
from typing import Iterable, List, Optional

from specjax.evals.datasets import aclsum_split, paper_text

DEBIAN_DOC_PACKAGE = "python3.11-doc"
_MAX_FILE_BYTES = 200_000
_SKIP_DIRS = {"test", "tests", "idle_test", "__pycache__", "site-packages", "dist-packages"}


@dataclasses.dataclass(frozen=True)
class Doc:
  name: str  # unique within its source, e.g. "json/decoder.py"; the held-out split hashes it
  text: str
  source: str  # "code", "prose" or "aclsum"


def default_cache_dir() -> str:
  return os.environ.get("SPECJAX_DATA") or os.path.expanduser("~/.cache/specjax/data")


def _take(docs: Iterable[Doc], limit_bytes: Optional[int]) -> List[Doc]:
  out, total = [], 0
  for d in docs:
    if limit_bytes is not None and total >= limit_bytes:
      break
    out.append(d)
    total += len(d.text.encode())
  return out


def _read(path: str, root: str, source: str) -> Doc:
  with open(path, encoding="utf-8", errors="replace") as f:
    return Doc(os.path.relpath(path, root), f.read(), source)



def stdlib_code(limit_bytes: Optional[int] = None) -> List[Doc]:
  """The .py files of this interpreter's standard library, without its tests."""
  root = sysconfig.get_paths()["stdlib"]
  paths = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
    paths += [os.path.join(dirpath, f) for f in filenames if f.endswith(".py")]
  # Over 200 kB: pydoc_data/topics.py (generated, the docs as one dict) and _pydecimal.py.
  paths = sorted(p for p in paths if os.path.getsize(p) <= _MAX_FILE_BYTES)
  return _take((_read(p, root, "code") for p in paths), limit_bytes)


def _check_call(cmd: List[str], cwd: Optional[str] = None) -> None:
  if shutil.which(cmd[0]) is None:
    raise RuntimeError(f"`{' '.join(cmd)}` needs {cmd[0]}, which is not on PATH")
  r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
  if r.returncode != 0:
    raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {r.stderr.strip()}")


def fetch_debian_docs(cache_dir: Optional[str] = None) -> str:
  """Downloads and unpacks python3.11-doc once; returns the unpacked root (the idempotent
  marker `.complete` is written inside it last, so an interrupted run is redone)."""
  root = os.path.join(cache_dir or default_cache_dir(), DEBIAN_DOC_PACKAGE)
  if os.path.exists(os.path.join(root, ".complete")):
    return root
  os.makedirs(os.path.dirname(root), exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    _check_call(["apt-get", "download", DEBIAN_DOC_PACKAGE], cwd=tmp)  # no root needed
    deb = glob.glob(os.path.join(tmp, "*.deb"))[0]
    shutil.rmtree(root, ignore_errors=True)  # what an interrupted unpack left
    _check_call(["dpkg-deb", "-x", deb, root])
    with open(os.path.join(root, ".complete"), "w") as f:
      f.write(os.path.basename(deb) + "\n")
  return root


def debian_docs(root: Optional[str] = None, limit_bytes: Optional[int] = None) -> List[Doc]:
  """The Python 3.11 docs' reST sources; fetched into the default cache when root is None."""
  root = fetch_debian_docs() if root is None else root
  # python3.11-doc/html is a symlink to python3.11/html: the sorted first match is the real one.
  found = sorted(glob.glob(os.path.join(root, "usr/share/doc/python3*/html/_sources")))
  if not found:
    raise FileNotFoundError(f"no usr/share/doc/python3*/html/_sources under {root}")
  paths = sorted(glob.glob(os.path.join(found[0], "**", "*.rst.txt"), recursive=True))
  return _take((_read(p, found[0], "prose") for p in paths), limit_bytes)


def aclsum_train() -> List[Doc]:
  """ACLSum train papers (full text + their three summaries); val and test are eval data."""
  docs = []
  for row in aclsum_split("train"):
    summary = "\n".join(f"{k.capitalize()}: {v}" for k, v in row["summary"].items())
    docs.append(Doc(row["id"], f"{paper_text(row)}\n\n{summary}\n", "aclsum"))
  return sorted(docs, key=lambda d: d.name)


def source_docs(source: str, cache_dir: Optional[str], limit_bytes: Optional[int]) -> List[Doc]:
  """The documents of one named source: "code", "prose" or "aclsum" (capped at limit_bytes)."""
  if source == "code":
    return stdlib_code(limit_bytes)
  if source == "prose":
    return debian_docs(fetch_debian_docs(cache_dir), limit_bytes)
  if source == "aclsum":
    return _take(aclsum_train(), limit_bytes)
  raise ValueError(f"unknown source {source!r}; expected 'code', 'prose' or 'aclsum'")
