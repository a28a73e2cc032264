"""specjax/checks.py: the one number check of every public argument."""
import jax.numpy as jnp
import numpy as np
import pytest

from specjax.checks import as_float, as_int


def test_number_checkers_take_numpy_and_jax_scalars():
  for v in (3, np.int64(3), np.uint8(3), jnp.int32(3), np.array(3)):
    assert as_int("n", v) == 3 and type(as_int("n", v)) is int
  for v in (0.5, np.float32(0.5), jnp.float32(0.5), np.array(0.5)):
    assert as_float("x", v) == 0.5 and type(as_float("x", v)) is float
  for v in (True, np.bool_(False), jnp.bool_(True), "3", None, np.ones(2), 2.5):
    with pytest.raises(TypeError, match="n must be an integer"):
      as_int("n", v)
  for v in (True, np.bool_(True), "0.5", None):
    with pytest.raises(TypeError, match="x must be a finite number"):
      as_float("x", v)


def test_bounds_and_non_finite_values_are_refused_by_name():
  assert as_int("k", 0, 0, 4) == 0 and as_float("t", 1.0, 0.0, lo_open=True) == 1.0
  for call, text in ((lambda: as_int("k", 5, 0, 4), "k must be an integer in [0, 4]"),
                     (lambda: as_float("t", 0.0, 0.0, lo_open=True), "t must be a finite number > 0"),
                     (lambda: as_float("p", float("nan")), "p must be a finite number"),
                     (lambda: as_float("p", np.inf, hi=1.0), "p must be a finite number <= 1.0")):
    with pytest.raises(ValueError, match=text.replace("[", r"\[").replace(".", r"\.")) as info:
      call()
    assert not isinstance(info.value, TypeError)  # a number of the right type, out of range
