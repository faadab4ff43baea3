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
  they are replaced by copies that read ``leaf.shape``;
* ``Primitive.map_primitive`` is gone with the pmap-style primitives (it reads ``False``).

:func:`import_neural_tangents` provides those names *only where they are
missing* and stubs ``neural_tangents.experimental``, then imports the package.
Four uses that import but then fail on current JAX / SciPy are adapted inside
neural-tangents' own module namespaces (JAX itself is left unchanged):

* ``empirical_ntk_fn(implementation=3)`` (structured derivatives): ``ad.linearize``
  now takes ``(traceable, primals_ft: FlatTree, has_aux, is_vjp)`` and returns which
  outputs have zero tangents instead of partial values. neural-tangents' ``ad`` becomes a
  view of JAX's private ``ad`` module (the public one no longer re-exports
  ``backward_pass``, ``source_info_util``, ...) with :func:`_linearize_flat`, the old
  signature on top of the new one, and ``config = jax.config``; its ``jax.core`` view
  has an empty ``DShapedArray`` type (dynamic shapes are gone); its ``lu.wrap_init``
  passes a ``DebugInfo`` and its ``jnp.dtype`` accepts arrays (both deprecated forms
  "will be an error" in JAX);
* ``implementation=0`` (AUTO): ``compile().cost_analysis()`` returns a dict, not a
  one-element list; :func:`_get_flops` reads both;
* ``predict.max_learning_rate``: SciPy renamed ``eigvalsh(eigvals=)`` to
  ``subset_by_index``; :func:`_eigvalsh` accepts the old keyword;
* ``predict`` under ``jax.vmap``/``jax.grad``: ``jax.core.eval_context()`` now makes every
  operation eager, so the tracers of an enclosing transformation raise
  ``UnexpectedTracerError``; :func:`_eval_context` restores the JAX 0.4 meaning (values
  that depend on no tracer are computed eagerly, the rest by their transformation).

JAX's own ``jax.experimental.jet`` fails on every ``custom_jvp`` function (neural-tangents'
``_sqrt``): :func:`jet` runs it with the fix scoped to the call (theory/jet_reference.py
uses it as an independent route to order-8 operator kernels).

On JAX 0.4.23 with an old SciPy nothing was patched but :func:`_get_flops` (which reads
both forms); the accepted range now starts at 0.4.31, whose ``lax.map`` takes the
``batch_size`` that :mod:`ntkpde.sketch` uses. Supported: stax ``kernel_fn``, ``init_fn``/``apply_fn``, ``predict``,
``empirical_ntk_fn`` implementations 0 (AUTO), 1, 2 and 3; ``neural_tangents.experimental``
(TensorFlow) is not.
"""
import contextlib
import functools
import importlib
import inspect
import math
import sys
import threading
import types
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

NEURAL_TANGENTS_VERSION = "0.6.5"
# Tested here: 0.10.2 (CPU, pinned). FACTS.md reports neural-tangents working with the same
# patches on 0.4.23 and 0.11.2 (CUDA); ntkpde has not yet had a GPU session to run its tests there.
# The floor is 0.4.31: ntkpde.sketch passes batch_size to lax.map (added in 0.4.31).
JAX_MIN = (0, 4, 31)
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
  if not hasattr(extend_core.Primitive, "map_primitive"):
    # pmap-style map primitives are gone; neural-tangents' structured derivatives still ask
    extend_core.Primitive.map_primitive = False


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


def _module_view(module, name: str, **overrides) -> types.ModuleType:
  """A module object that is ``module`` except for ``overrides``: replaces a name that one
  neural-tangents module imported, without changing it for anybody else."""
  view = types.ModuleType(name)
  view.__dict__.update(overrides)
  view.__getattr__ = lambda attr: getattr(module, attr)
  return view


class _Known:
  """The part of JAX 0.4's ``PartialVal`` that neural-tangents reads: whether an output's
  tangent is known (identically zero) and so has no cotangent."""
  __slots__ = ("zero",)

  def __init__(self, zero: bool):
    self.zero = bool(zero)

  def is_known(self) -> bool:
    return self.zero


def _linearize_flat(fn_flat, *primals, has_aux=False):
  """JAX 0.4's ``ad.linearize(fn_flat, *primals)`` on the ``(traceable, FlatTree)`` API:
  returns ``(primals_out, pvals, tangent jaxpr, consts)`` with the jaxpr's inputs the
  primals' tangents and its outputs the nonzero output tangents, as before."""
  from jax._src.tree_util import FlatTree
  from jax.interpreters import ad
  if has_aux:
    raise NotImplementedError("neural-tangents never linearizes with has_aux=True.")
  out, out_zeros, jaxpr, consts = ad.linearize(fn_flat.call_wrapped,
                                               FlatTree.flatten(tuple(primals)))
  return list(out.vals), [_Known(z) for z in out_zeros], jaxpr, consts


def in_place_loop_options() -> Optional[dict]:
  """``compiler_options`` for a compiled loop that updates its donated carry in place, or
  ``None`` off the CPU.

  On CPU, XLA's default copy insertion copies every large loop-carried buffer once per
  iteration; its region-based analysis (``xla_cpu_copy_insertion_use_region_analysis``)
  drops those copies (about 10% of DLAB-5's training step at width 4096,
  docs/benchmarks.md)."""
  if jax.default_backend() != "cpu":
    return None
  return {"xla_cpu_copy_insertion_use_region_analysis": True}


@functools.lru_cache(maxsize=None)
def _cpu_option_known(name: str, value) -> bool:
  """Whether this XLA's CPU compiler takes ``{name: value}`` (probed once on a one-operation
  program)."""
  try:
    jax.jit(lambda x: x + 1.0).lower(np.zeros(2)).compile({name: value})
  except Exception:  # noqa: BLE001 - XLA raises its own error types for unknown options
    return False
  return True


def cpu_compiler_options(older_emitters: bool = False,
                         hoist_loop_invariants: bool = True) -> Optional[dict]:
  """``compiler_options`` for ``Lowered.compile`` on the CPU (``None`` off the CPU, or when
  nothing differs from XLA's defaults); an option this XLA does not know is left out.

  - ``older_emitters``: XLA's older CPU fusion emitters (``xla_cpu_use_fusion_emitters=False``).
    The default emitters compile one elementwise fusion of a few thousand operations
    super-linearly (the Taylor engine's high-order cores, ntkpde.taylor_engine), and at total
    order 6 under nested ``jvp`` their code runs about 3x slower than the older emitters'; on
    smaller programs they are faster (docs/benchmarks.md, "XLA's fusion emitters").
  - ``hoist_loop_invariants=False`` turns off XLA's while-loop-invariant code motion
    (``xla_disable_hlo_passes``). On a loop body of thousands of elementwise operations that
    pass and the simplification it triggers take about half of the HLO passes' time
    (taylor_engine.LOOP_INVARIANT_MOTION_MAX_PRODUCTS)."""
  if jax.default_backend() != "cpu":
    return None
  options = {}
  if older_emitters and _cpu_option_known("xla_cpu_use_fusion_emitters", False):
    options["xla_cpu_use_fusion_emitters"] = False
  if not hoist_loop_invariants and _cpu_option_known("xla_disable_hlo_passes",
                                                     "while-loop-invariant-code-motion"):
    options["xla_disable_hlo_passes"] = "while-loop-invariant-code-motion"
  return options or None


def is_tracer(x) -> bool:
  """Whether ``x`` is an abstract value of a transformation being traced (``jax.core.Tracer``)."""
  return isinstance(x, jax.core.Tracer)


def jit(fn, compiler_options: Optional[dict] = None, **jit_kwargs):
  """``jax.jit(fn, **jit_kwargs)`` compiled with ``compiler_options`` where ``jax.jit``
  takes them (this module's ``*_options`` helpers give them for the backend)."""
  if compiler_options and "compiler_options" in inspect.signature(jax.jit).parameters:
    return jax.jit(fn, compiler_options=compiler_options, **jit_kwargs)
  return jax.jit(fn, **jit_kwargs)


_JET_LOCK = threading.RLock()


@contextlib.contextmanager
def _jet_traces_custom_derivatives():
  """``jax.experimental.jet`` evaluates the primal body of a ``custom_jvp``/``custom_vjp``
  function after JAX's dispatch has left the ``JetTrace`` (JAX >= 0.4.36,
  jax-ml/jax#30352), so its tracers "escape" (``UnexpectedTracerError``): every
  neural-tangents kernel with ``_sqrt`` (erf, gelu, gaussian, ...) fails under ``jet``.
  Inside this context both handlers run with their ``JetTrace`` current; JAX's rule itself
  (which ignores the custom derivative) is unchanged, and so is JAX outside the context."""
  from jax._src import core as jax_core
  from jax.experimental import jet as jet_module
  if not hasattr(jax_core, "set_current_trace"):  # JAX before the stackless core
    yield
    return
  trace = jet_module.JetTrace
  originals = {name: getattr(trace, name)
               for name in ("process_custom_jvp_call", "process_custom_vjp_call")}

  def with_current_trace(method):
    def process(self, *args, **kwargs):
      with jax_core.set_current_trace(self):
        return method(self, *args, **kwargs)
    return process
  with _JET_LOCK:
    for name, method in originals.items():
      setattr(trace, name, with_current_trace(method))
    try:
      yield
    finally:
      for name, method in originals.items():
        setattr(trace, name, method)


def jet(fun, primals, series):
  """``jax.experimental.jet.jet(fun, primals, series)`` (univariate Taylor mode), also
  through ``custom_jvp``/``custom_vjp`` functions (:func:`_jet_traces_custom_derivatives`).
  Calls are serialised; under ``jax.jit`` the context covers the tracing."""
  from jax.experimental.jet import jet as jax_jet
  with _jet_traces_custom_derivatives():
    return jax_jet(fun, primals, series)


def _get_flops(f, optimize: bool, *args, **kwargs) -> float:
  """FLOPs of ``jax.jit(f)`` at these arguments (neural-tangents' AUTO implementation
  choice); ``cost_analysis()`` is a one-element list on old JAX and a dict on new JAX."""
  lowered = jax.jit(f).lower(*args, **kwargs)
  analysis = lowered.compile().cost_analysis() if optimize else lowered.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return analysis["flops"]


def _eigvalsh(a, b=None, *, eigvals=None, **kwargs):
  """``scipy.linalg.eigvalsh`` accepting the pre-1.14 keyword ``eigvals=(lo, hi)``."""
  if eigvals is not None:
    kwargs["subset_by_index"] = eigvals
  return scipy.linalg.eigvalsh(a, b, **kwargs)


@contextlib.contextmanager
def _eval_context():
  """JAX 0.4's ``jax.core.eval_context()`` on stackless JAX: an operation on concrete values
  runs eagerly (so results that neural-tangents caches are never ``jit`` tracers), an
  operation on tracers is handed to the transformation that was current on entry (``vmap``,
  ``grad``, ``jit`` over the inputs), as the 0.4 trace stack did."""
  from jax._src import core

  class EagerUnlessTraced(core.Trace):
    def __init__(self, enclosing):
      super().__init__()
      self.enclosing = enclosing

    def _route(self, method, values, *args, **kwargs):
      traced = any(isinstance(v, core.Tracer) for v in values)
      trace = self.enclosing if traced else core.eval_trace
      with core.set_current_trace(trace):
        return getattr(trace, method)(*args, **kwargs)

    def process_primitive(self, primitive, args, params):
      return self._route("process_primitive", args, primitive, args, params)

    def process_call(self, primitive, f, args, params):
      return self._route("process_call", args, primitive, f, args, params)

    def process_custom_jvp_call(self, primitive, fun, jvp, args, **kwargs):
      return self._route("process_custom_jvp_call", args, primitive, fun, jvp, args, **kwargs)

    def process_custom_vjp_call(self, primitive, fun, fwd, bwd, args, **kwargs):
      return self._route("process_custom_vjp_call", args, primitive, fun, fwd, bwd, args,
                         **kwargs)

  with core.take_current_trace() as enclosing:
    with core.set_current_trace(EagerUnlessTraced(enclosing)):
      yield


def _dtype(x, *args, **kwargs):
  """``jnp.dtype`` that also takes an array (its dtype), as it did before JAX 0.10."""
  return jnp.dtype(getattr(x, "dtype", x), *args, **kwargs)


def _patch_neural_tangents() -> None:
  from jax.interpreters import ad
  empirical = importlib.import_module("neural_tangents._src.empirical")
  predict = importlib.import_module("neural_tangents._src.predict")
  empirical._std_basis = _std_basis
  empirical._unravel_array_into_pytree = _unravel_array_into_pytree
  empirical._get_flops = _get_flops
  if "primals_ft" in inspect.signature(ad.linearize).parameters:
    # the private module: neural-tangents also reads names (``source_info_util``,
    # ``backward_pass``, ``reducing_transposes``) that the public one no longer re-exports;
    # its ``config`` was the flag object that is now ``jax.config``
    private_ad = importlib.import_module("jax._src.interpreters.ad")
    empirical.ad = _module_view(private_ad, ad.__name__, linearize=_linearize_flat,
                                config=jax.config)
  lu = empirical.lu
  if hasattr(lu, "_missing_debug_info"):
    # JAX 0.10 deprecates ``wrap_init`` without a DebugInfo ("will be an error")
    from jax._src import api_util

    def wrap_init(f, params=None):
      return lu.wrap_init(f, params, debug_info=api_util.debug_info("neural_tangents", f, (), {}))
    empirical.lu = _module_view(lu, lu.__name__, wrap_init=wrap_init)
  # ``jnp.dtype(array)`` is deprecated ("will be an error"); neural-tangents maps it over params
  empirical.jnp = _module_view(jnp, "jax.numpy", dtype=_dtype)
  if not hasattr(jax.core, "DShapedArray"):
    # dynamic shapes are gone from JAX: no abstract value is of this type any more
    empirical.core = _module_view(jax.core, "jax.core",
                                  DShapedArray=type("DShapedArray", (), {}))
  if "eigvals" not in inspect.signature(scipy.linalg.eigvalsh).parameters:
    predict.sp = _module_view(predict.sp, "scipy",
                              linalg=_module_view(scipy.linalg, "scipy.linalg", eigvalsh=_eigvalsh))
  if hasattr(importlib.import_module("jax._src.core"), "set_current_trace"):
    predict.jax = _module_view(jax, "jax", core=_module_view(jax.core, "jax.core",
                                                               eval_context=_eval_context))


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
