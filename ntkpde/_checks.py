"""Argument checks shared by the public functions: one clear ``ValueError`` before any work."""
import numbers

import numpy as np


def integer(value, name: str, minimum: int = 1, why: str = "") -> int:
  """``value`` as an ``int`` if it is an integer ``>= minimum`` (``bool`` is not one; NumPy
  integers are); else ``ValueError`` naming ``name`` (``why``: a reason appended in
  parentheses)."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
    reason = f" ({why})" if why else ""
    raise ValueError(f"{name} must be an integer >= {minimum}{reason}, got {value!r}.")
  return int(value)


def step_counts(values, name: str, allow_scalar: bool = False) -> np.ndarray:
  """``values`` as an integer array of step counts ``>= 0``: 1-D and non-empty (or a scalar
  with ``allow_scalar``); integer-valued floats are accepted, fractions are not."""
  array = np.asarray(values)
  shape_ok = array.ndim == 1 and array.size > 0 or (allow_scalar and array.ndim == 0)
  if (not shape_ok or array.dtype == bool or not np.issubdtype(array.dtype, np.number)
      or not np.all(np.isfinite(array)) or np.any(array < 0) or np.any(array != np.round(array))):
    shape = "a scalar or 1-D array" if allow_scalar else "a 1-D array"
    raise ValueError(f"{name} must be {shape} of non-negative integers, got "
                     f"{np.asarray(values).tolist()!r}.")
  return array.astype(int)
