"""Is a kernel or a network smooth enough for a derivative operator?

An operator of total order ``p`` on a kernel (``T_x S_x' K``) or on a network
(``T u``) needs ``p`` derivatives. ReLU-family networks have none (``T u = 0`` almost
everywhere for ``p >= 2``) and their kernels have a ``|x - x'|`` (NTK) or
``|x - x'|^3`` (NNGP) term on the diagonal, where autodiff returns huge or
meaningless values (``Lap x Lap'`` of a ReLU NTK: 1e24). ntkpde's own networks declare
their order (:func:`ntkpde.network`'s ``max_operator_order``); for anything else:

* :func:`check_kernel_fn` probes the kernel along ``h -> K(x, x + h e_i)``. Its even
  part ``E(h) = (K(x, x+h) + K(x, x-h))/2 - K(x, x)`` is ``a h^2 + b h^4 + ...`` for a
  smooth kernel and ``c |h|^q + a h^2 + ...`` with a non-smooth term, so
  ``R(h) = E(h) - 4 E(h/2)`` (the ``h^2`` term removed) scales as ``h^4`` (smooth) or
  ``h^q``; ``q = log2(R(h) / R(h/2))``, read at the smallest ``h = 0.1 / 2^j`` where ``R``
  is still far above rounding (``1e6 eps K(x, x)``), so that the kernel's own length scale
  (input maps, Fourier features) does not matter: at larger ``h`` the ``h^4`` and ``h^6``
  terms of a smooth kernel can cancel (erf depth 2 with a box map: ratio 5 at ``h = 0.05``,
  15.6 at ``h = 0.01``). Measured on every activation of :data:`ntkpde.ACTIVATIONS` at
  depths 1 and 3, with no input map, a box map, the periodic embedding and Fourier features
  (scale 5): ``q = 4.0 +- 0.1`` for the smooth ones, ``1.0`` (ReLU-family NTK) and
  ``3.0`` (their NNGP). Inspecting the traced kernel cannot tell them apart: smooth and ReLU
  kernels of neural-tangents both clamp a square root with ``max``; only the value of
  its argument on the diagonal (zero for ReLU) differs.
* :func:`check_apply_fn` inspects the traced network (``jax.make_jaxpr``, sub-programs
  included) for primitives that are not differentiable everywhere (``max``, ``min``,
  ``abs``, ``sign``, ``select_n``, ``clamp``, rounding). Smooth networks' programs hold
  none (checked for every smooth activation); calls of functions that use ``max`` only
  for numerical stability (:data:`SMOOTH_CALLS`, e.g. ``logaddexp`` of softplus) are
  not entered.
"""
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

NON_SMOOTH_PRIMITIVES = frozenset({
    "max", "min", "abs", "sign", "select_n", "clamp", "floor", "ceil", "round", "rem",
    "argmax", "argmin", "sort", "reduce_max", "reduce_min", "cumMax", "cummax", "cummin"})
SMOOTH_CALLS = frozenset({"logaddexp", "logsumexp", "softplus", "log_softmax", "softmax"})
# R(h)/R(h/2) is 16 for a smooth kernel, 2^q for a |h|^q term; below this ratio (q < 3.6)
# the kernel is not smooth enough for any derivative on both sides.
SMOOTH_RATIO = 12.0
PROBE_STEPS = 0.1 * 2.0 ** -np.arange(16)
# |R| above RESOLVED * eps * K(x, x) is far above rounding (float64: 2e-10 K(x, x); in float32
# almost nothing is resolved and the probe passes the kernel).
RESOLVED = 1e6
DECLARE = ("declare its smoothness with ntkpde.network(init_fn, apply_fn, kernel_fn, "
           "max_operator_order=...) (0 for ReLU-family networks), or use a smooth activation "
           "(erf, sin, cos, gelu, gaussian, sigmoid_like)")


def _sub_jaxprs(value):
  for item in value if isinstance(value, (list, tuple)) else (value,):
    if hasattr(item, "jaxpr") and hasattr(item, "consts"):   # ClosedJaxpr
      yield item.jaxpr
    elif hasattr(item, "eqns"):                              # Jaxpr
      yield item


def non_smooth_primitives(jaxpr) -> set:
  """Names of the non-smooth primitives in ``jaxpr`` and every program nested in it
  (``pjit``, ``custom_jvp_call``, ``cond``, ``scan``, ``while``), except inside the calls
  named in :data:`SMOOTH_CALLS`."""
  found = set()
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in NON_SMOOTH_PRIMITIVES:
      found.add(eqn.primitive.name)
    if eqn.params.get("name") in SMOOTH_CALLS:
      continue
    for value in eqn.params.values():
      for sub in _sub_jaxprs(value):
        found |= non_smooth_primitives(sub)
  return found


def check_apply_fn(apply_fn: Callable, params, dim: int, order: int, what: str) -> None:
  """``ValueError`` if ``order >= 1`` and ``x -> apply_fn(params, x)`` (inputs ``(n, dim)``)
  contains a non-smooth primitive (see the module docstring). ``what`` names the operator."""
  if order < 1:
    return
  x = jax.ShapeDtypeStruct((2, dim), jnp.float64)
  found = non_smooth_primitives(jax.make_jaxpr(lambda z: apply_fn(params, z))(x).jaxpr)
  if found:
    raise ValueError(f"{what} differentiates the network {order} time(s), but its program uses "
                     f"the non-smooth operation(s) {sorted(found)} (a ReLU-family activation?): "
                     f"its derivatives are zero or undefined almost everywhere, so the result "
                     f"would be wrong. Use a smooth activation (erf, sin, cos, gelu, gaussian, "
                     f"sigmoid_like).")


@functools.lru_cache(maxsize=64)
def diagonal_exponent(kernel_fn: Callable, get: str, dim: int) -> float:
  """The smallest exponent ``q`` of ``|h|`` in ``K(x, x + h e_i)`` over the axes ``i``,
  measured as in the module docstring (``4`` or more: smooth to the probe's resolution;
  ``inf`` when ``R`` is at rounding level, e.g. a polynomial kernel)."""
  x = np.full((1, dim), 0.37) + 0.11 * np.arange(dim)
  m = len(PROBE_STEPS)
  exponent = np.inf
  for i in range(dim):
    shifts = np.zeros((m, dim))
    shifts[:, i] = PROBE_STEPS
    probes = np.concatenate([x, x + shifts, x - shifts])
    k = np.asarray(kernel_fn(jnp.asarray(x), jnp.asarray(probes), get))[0]
    eps = float(np.finfo(k.dtype).eps) if np.issubdtype(k.dtype, np.floating) else 1e-16
    k = k.astype(np.float64)
    if not np.all(np.isfinite(k)):
      continue  # NaN/inf kernels are reported by the evaluation itself
    even = (k[1:m + 1] + k[m + 1:]) / 2 - k[0]
    R = even[:-1] - 4 * even[1:]                      # R at PROBE_STEPS[:-1]
    resolved = np.abs(R) > RESOLVED * eps * max(abs(k[0]), 1e-300)
    # the smallest step j with R resolved at j and j - 1: ratio R[j-1] / R[j]
    pairs = np.flatnonzero(resolved[:-1] & resolved[1:])
    if pairs.size == 0:
      continue  # R at rounding level: a polynomial-like kernel, smooth to the probe
    j = pairs[-1] + 1
    exponent = min(exponent, float(np.log2(max(abs(R[j - 1] / R[j]), 1.0))))
  return exponent


def check_kernel_fn(kernel_fn: Callable, get: str, dim: int, order: int, what: str) -> None:
  """``ValueError`` if ``order >= 1`` and ``kernel_fn``, whose smoothness is not declared
  (``max_operator_order`` is ``None``), has a non-smooth term on its diagonal."""
  if order < 1 or getattr(kernel_fn, "max_operator_order", None) is not None:
    return
  q = diagonal_exponent(kernel_fn, get, dim)
  if q < np.log2(SMOOTH_RATIO):
    raise ValueError(f"{what} differentiates the kernel to total order {order}, but the kernel "
                     f"is not smooth on its diagonal: K(x, x + h) has a |h|^{q:.1f} term "
                     f"(ReLU-family kernels: |h| for the NTK, |h|^3 for the NNGP), so its "
                     f"derivatives there are huge or undefined. If the kernel is smooth, "
                     f"{DECLARE}.")
