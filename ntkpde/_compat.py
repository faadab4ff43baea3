"""The one place that touches JAX internals: makes neural-tangents 0.6.5 import.

neural-tangents 0.6.5 (2023-12, its last release) was written against JAX 0.4.x.
On newer JAX it fails to import because (see ``../shared/FACTS.md``):

* ``Jaxpr``, ``JaxprEqn``, ``Literal``, ``Var``, ``Primitive`` moved from
  ``jax.core`` to ``jax.extend.core``;
* ``jax.random.KeyArray`` is gone (keys are ``jax.Array``);
* the module ``jax.util`` (``safe_map``, ``safe_zip``) is gone;
* ``jax.interpreters.ad.zeros_like_p`` is gone (only a dictionary key in
  neural-tangents' structured-derivative rules);
* ``neural_tangents.experimental`` imports TensorFlow on package import.

:func:`import_neural_tangents` provides those names *only where they are
missing* and stubs ``neural_tangents.experimental``, then imports the package.
On JAX 0.4.23 nothing is patched. Supported: stax ``kernel_fn``,
``init_fn``/``apply_fn``, ``predict``, ``empirical_ntk_fn`` implementations 1
and 2 (implementation 3, structured derivatives, needs JAX internals that no
longer exist and is not supported).
"""
import importlib
import sys
import types

import jax

NEURAL_TANGENTS_VERSION = "0.6.5"
# Tested: 0.4.23 (by FACTS.md), 0.10.2 (CPU, pinned), 0.11.2 (CUDA, device machine).
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
    return importlib.import_module("neural_tangents")
  except ImportError as err:
    raise ImportError(
        f"neural-tangents {NEURAL_TANGENTS_VERSION} could not be imported ({err}). "
        f"Install it without its dependencies (they pull TensorFlow): "
        f"`pip install --no-deps neural-tangents=={NEURAL_TANGENTS_VERSION} frozendict`."
    ) from err
