"""Checksums and finiteness of parameter trees: what every checkpoint specjax writes carries.

Orbax stores no checksum of its arrays (a flipped byte in an OCDBT data file restores as a
wrong value, silently), so specjax records one digest per tensor when it saves and compares
them with the tensors as read back: the check covers whatever storage layer lies between
(OCDBT, zarr, compression), since it hashes the values, not the files.

  digests(tree)                 {"path/to/leaf": "sha256:<hex>"} (dtype, shape and bytes)
  check_digests(tree, expected, where)   ValueError naming the first tensor that differs
  nonfinite(tree)               the paths of floating tensors holding NaN or inf
  check_finite(tree, where)     ValueError naming them

Hashing reads every array to the host (`np.asarray`): about 1 s per GB on one core, which is
small next to writing or reading that GB.
"""
import hashlib
from typing import Any, Dict, List, Mapping

import jax
import numpy as np

ALGORITHM = "sha256"


def leaf_name(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
                  for k in path)


def _leaves(tree) -> Dict[str, Any]:
  return {leaf_name(p): x for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def digest(x) -> str:
  a = np.asarray(x)
  h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
  h.update(np.ascontiguousarray(a).reshape(-1).view(np.uint8).data)
  return f"{ALGORITHM}:{h.hexdigest()}"


def digests(tree) -> Dict[str, str]:
  """One digest per leaf of `tree`, keyed by its path ("layers/0/wq_DHK")."""
  return {name: digest(x) for name, x in _leaves(tree).items()}


def check_digests(tree, expected: Mapping[str, str], where: str) -> None:
  """Raises a ValueError naming `where` and the first tensor whose digest differs, is
  missing or was not recorded."""
  got = _leaves(tree)
  for name in sorted(set(expected) | set(got)):
    if name not in got:
      raise ValueError(f"{where}: tensor {name} has a recorded checksum but was not restored")
    if name not in expected:
      raise ValueError(f"{where}: tensor {name} has no recorded checksum")
    d = digest(got[name])
    if d != expected[name]:
      raise ValueError(f"{where}: tensor {name} fails its checksum (stored {expected[name]}, "
                       f"read {d}): the checkpoint is damaged")


@jax.jit
def _all_finite(leaves):
  return [jax.numpy.isfinite(x).all() for x in leaves]


def nonfinite(tree) -> List[str]:
  """Paths of the floating-point leaves that hold a NaN or an infinity (one compiled reduction
  per tree shape, not one dispatch per leaf: the training loop calls this every step)."""
  named = [(name, x) for name, x in _leaves(tree).items()
           if jax.numpy.issubdtype(getattr(x, "dtype", np.float32), jax.numpy.inexact)]
  flags = jax.device_get(_all_finite([x for _, x in named]))
  return [name for (name, _), ok in zip(named, flags) if not ok]


def check_finite(tree, where: str, what: str = "parameters") -> None:
  bad = nonfinite(tree)
  if bad:
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    raise ValueError(f"{where}: non-finite {what} (NaN or inf) in {', '.join(bad[:3])}{more}")
