"""Number arguments checked on the host, before anything compiles: one check for every public
argument of the library and the experiments (Python, NumPy and JAX scalars; booleans refused)."""
from typing import Optional

import numpy as np


class NumberTypeError(TypeError, ValueError):
  """A number argument of the wrong type (a bool, a string, None...): a TypeError and, as
  every other bad argument here, a ValueError."""


def _number(v, kinds: str):
  """v as a 0-d NumPy value if it is a Python/NumPy/JAX scalar of a dtype kind in `kinds`."""
  if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.generic)) and \
      getattr(v, "shape", None) != ():
    return None
  try:
    a = np.asarray(v)
  except Exception:  # a traced or deleted array: not a host number
    return None
  return a if a.shape == () and a.dtype.kind in kinds else None


def _bounds(lo, hi, lo_open=False) -> str:
  if lo is not None and hi is not None:
    return f" in {'(' if lo_open else '['}{lo}, {hi}]"
  if lo is not None:
    return f" {'>' if lo_open else '>='} {lo}"
  return f" <= {hi}" if hi is not None else ""


def as_int(name: str, v, lo: Optional[int] = None, hi: Optional[int] = None,
           note: str = "") -> int:
  """`v` as a Python int: an int, NumPy integer or 0-d integer array (JAX's too), not a bool.

  Raises `NumberTypeError` for another type, ValueError outside [lo, hi]; both name `name`.
  """
  a = _number(v, "iu")
  msg = f"{name} must be an integer{_bounds(lo, hi)}{note}, got {v!r}"
  if a is None:
    raise NumberTypeError(msg)
  n = int(a)
  if lo is not None and n < lo or hi is not None and n > hi:
    raise ValueError(msg)
  return n


def as_float(name: str, v, lo: Optional[float] = None, hi: Optional[float] = None,
             lo_open: bool = False, note: str = "") -> float:
  """`v` as a finite Python float: an int, float, NumPy number or 0-d integer/float array,
  not a bool; in [lo, hi] ((lo, hi] when `lo_open`). Errors as `as_int`."""
  a = _number(v, "iuf")
  msg = f"{name} must be a finite number{_bounds(lo, hi, lo_open)}{note}, got {v!r}"
  if a is None:
    raise NumberTypeError(msg)
  x = float(a)
  if not np.isfinite(x) or lo is not None and (x <= lo if lo_open else x < lo) or \
      hi is not None and x > hi:
    raise ValueError(msg)
  return x
