"""The one place that touches JAX internals: makes neural-tangents 0.6.5 import.

neural-tangents 0.6.5 (2023-12, its last release) was written against JAX 0.4.x.
On newer JAX it fails to import because:

* ``Jaxpr``, ``JaxprEqn``, ``Literal``, ``Var``, ``Primitive`` moved from
  ``jax.core`` to ``jax.extend.core``;
* ``jax.random.KeyArray`` is gone (keys are ``jax.Array``);
* the module ``jax.util`` (``safe_map``, ``safe_zip``) is gone;
* ``jax.interpreters.ad.zeros_like_p`` is gone (only a dictionary key in
  neural-tangents' structured-derivative rules);
* ``neural_tangents.experimental`` imports TensorFlow on package import;
* ``empirical._std_basis`` / ``_unravel_array_into_pytree`` call ``jnp.size`` on
  ``jax.ShapeDtypeStruct`` leaves, deprecated since JAX 0.10 ("will be an error");
  they are replaced by copies that read ``leaf.shape``.

:func:`import_neural_tangents` provides those names *only where they are
missing* and stubs ``neural_tangents.experimental``, then imports the package.
On JAX 0.4.23 nothing is patched. Supported: stax ``kernel_fn``,
``init_fn``/``apply_fn``, ``predict``, ``empirical_ntk_fn`` implementations 1
and 2 (implementation 3, structured derivatives, needs JAX internals that no
longer exist and is not supported).
"""
import importlib
import math
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np

NEURAL_TANGENTS_VERSION = "0.6.5"
# Tested here: 0.10.2 (CPU, pinned). FACTS.md reports neural-tangents working with the same
# patches on 0.4.23 and 0.11.2 (CUDA); ntkpde has not yet had a GPU session to run its tests there.
JAX_MIN = (0, 4, 23)
JAX_MAX_EXCLUSIVE = (0, 12, 0)


def _version_tuple(version: str) -> tuple:
  parts = []
  for piece in version.split(".")[:3]:
    digits = "".join(ch for ch in piece if ch.isdigit())
    parts.append(int(digits) if digits else 0)
  return tuple(parts + [0] * (3 - len(parts)))


def check_jax_version(version: str = None) -> None:
  """Raises ``RuntimeError`` unless ``version`` (default: installed JAX) is tested."""
  version = jax.__version__ if version is None else version
  v = _version_tuple(version)
  if not JAX_MIN <= v < JAX_MAX_EXCLUSIVE:
    lo = ".".join(map(str, JAX_MIN))
    hi = ".".join(map(str, JAX_MAX_EXCLUSIVE))
    raise RuntimeError(
        f"ntkpde's compatibility layer for neural-tangents {NEURAL_TANGENTS_VERSION} "
        f"is tested with JAX >= {lo}, < {hi}; found JAX {version}. Install a JAX "
        f"in that range (the pinned one is in requirements.lock), or extend and "
        f"re-test ntkpde/_compat.py for JAX {version}.")


def _safe_map(f, *args):
  n = len(args[0])
  if any(len(a) != n for a in args[1:]):
    raise ValueError(f"safe_map: lengths differ: {[len(a) for a in args]}")
  return list(map(f, *args))


def _safe_zip(*args):
  n = len(args[0])
  if any(len(a) != n for a in args[1:]):
    raise ValueError(f"safe_zip: lengths differ: {[len(a) for a in args]}")
  return list(zip(*args))


def _patch_jax() -> None:
  import jax.extend.core as extend_core
  from jax.interpreters import ad
  for name in ("Jaxpr", "JaxprEqn", "Literal", "Var", "Primitive"):
    if not hasattr(jax.core, name):
      setattr(jax.core, name, getattr(extend_core, name))
  if not hasattr(jax.random, "KeyArray"):
    jax.random.KeyArray = jax.Array
  try:
    importlib.import_module("jax.util")
  except ImportError:
    util = types.ModuleType("jax.util")
    util.safe_map, util.safe_zip = _safe_map, _safe_zip
    sys.modules["jax.util"] = util
    jax.util = util
  if not hasattr(ad, "zeros_like_p"):
    ad.zeros_like_p = extend_core.Primitive("zeros_like")


def _shape(leaf) -> tuple:
  """Shape of an array, scalar or ``ShapeDtypeStruct`` (``np.shape`` rejects the last)."""
  return tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)


def _std_basis(pytree):
  """neural-tangents' ``_std_basis`` (identity basis over a pytree's entries),
  with sizes read from shapes so that ``ShapeDtypeStruct`` leaves are allowed."""
  leaves = jax.tree_util.tree_leaves(pytree)
  basis = jnp.eye(sum(math.prod(_shape(l)) for l in leaves), dtype=jax.dtypes.result_type(*leaves))
  return _unravel_array_into_pytree(pytree, 1, basis)


def _unravel_array_into_pytree(pytree, axis: int, arr):
  """neural-tangents' ``_unravel_array_into_pytree``: splits ``arr`` along ``axis``
  into the leaves of ``pytree`` (sizes from shapes, as in :func:`_std_basis`)."""
  leaves, treedef = jax.tree_util.tree_flatten(pytree)
  if arr.ndim > 0:
    axis %= arr.ndim
  shapes = [arr.shape[:axis] + _shape(l) + arr.shape[axis + 1:] for l in leaves]
  parts = jnp.split(arr, np.cumsum([math.prod(_shape(l)) for l in leaves[:-1]]).astype(int), axis)
  return jax.tree_util.tree_unflatten(
      treedef, [jnp.reshape(x, shape) for x, shape in zip(parts, shapes)])


def _patch_neural_tangents() -> None:
  empirical = importlib.import_module("neural_tangents._src.empirical")
  empirical._std_basis = _std_basis
  empirical._unravel_array_into_pytree = _unravel_array_into_pytree


def import_neural_tangents():
  """Returns the ``neural_tangents`` module, importable on the tested JAX range."""
  if "neural_tangents" in sys.modules:
    return sys.modules["neural_tangents"]
  check_jax_version()
  _patch_jax()
  # neural_tangents/__init__.py does `from . import experimental`, which imports
  # TensorFlow; we never use it, so a stub takes its place.
  stub = types.ModuleType("neural_tangents.experimental")
  stub.__doc__ = "Stub: neural_tangents.experimental needs TensorFlow, which ntkpde never installs."
  sys.modules.setdefault("neural_tangents.experimental", stub)
  try:
    nt = importlib.import_module("neural_tangents")
  except ImportError as err:
    raise ImportError(
        f"neural-tangents {NEURAL_TANGENTS_VERSION} could not be imported ({err}). "
        f"Install it without its dependencies (they pull TensorFlow): "
        f"`pip install --no-deps neural-tangents=={NEURAL_TANGENTS_VERSION} frozendict`."
    ) from err
  _patch_neural_tangents()
  return nt
