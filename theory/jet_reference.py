"""Operator kernels from univariate Taylor mode on a ``kernel_fn``: an independent route
to :func:`ntkpde.operator_kernel` at orders where finite differences are too loose.

For a direction ``u`` of ``x`` and ``v`` of ``x'`` the mixed Taylor coefficients

  a_kl(u, v) = [s^k t^l] K(x + s u, x' + t v)

are recovered from univariate series along the joint directions ``(cos th u, sin th v)``:

  [r^n] K(x + r cos(th) u, x' + r sin(th) v) = sum_{k + l = n} cos(th)^k sin(th)^l a_kl,

taken at ``n + 1`` angles ``th_m = m pi / (n + 1)``: a linear system whose matrix
``M[m, k] = cos(th_m)^k sin(th_m)^(n - k)`` has condition number 51 at ``n = 8``. The
series come from ``jax.experimental.jet``'s rules applied to neural-tangents' own
``kernel_fn`` (through :func:`ntkpde._compat.jet`); no code is shared with
``ntkpde.taylor_engine`` or ``ntkpde.jets``.

An operator written as a weighted sum of pure directional powers,
``T = sum_i w_i (u_i . grad)^k`` and ``S = sum_j w'_j (v_j . grad)^l``, then has

  T_x S_x' K(x, x') = sum_{i, j} w_i w'_j k! l! a_kl(u_i, v_j).

Error model: each series coefficient carries a rounding error of a few hundred ``eps``
times the largest coefficient magnitude the recursion meets; the solve adds
``|M^-1|`` weights, so :func:`directional_operator_kernel` returns, beside the value,
``magnitude = sum_{i,j} |w_i w'_j| k! l! sum_m |M^-1[k, m]| |[r^n]_m|``, the scale that
rounding errors are measured against.
"""
import math
from typing import Sequence, Tuple

import jax
import numpy as np

from ntkpde import _compat

Directions = Sequence[Tuple[Sequence[float], float]]  # (direction, weight) pairs


def polarization_row(k: int, l: int) -> Tuple[np.ndarray, np.ndarray]:
  """Angles ``th_m`` and the row ``M^-1[k, :]`` that recovers ``a_kl`` from the
  ``[r^(k + l)]`` coefficients at those angles (module docstring)."""
  n = k + l
  angles = np.arange(n + 1) * np.pi / (n + 1)
  m = np.array([[np.cos(t) ** i * np.sin(t) ** (n - i) for i in range(n + 1)] for t in angles])
  return angles, np.linalg.inv(m)[k]


def directional_operator_kernel(kernel_fn, x1, x2, k: int, terms1: Directions,
                                l: int, terms2: Directions, get: str = "ntk"):
  """``(sum_i w_i (u_i . grad_x)^k) (sum_j w'_j (v_j . grad_x')^l) K(x1, x2)`` and its
  rounding ``magnitude`` (module docstring), from ``(k + l + 1)`` univariate jets per
  direction pair, all in one compiled, vmapped program."""
  x1, x2 = np.asarray(x1, np.float64), np.asarray(x2, np.float64)
  n = k + l
  angles, row = polarization_row(k, l)
  a = np.array([np.cos(t) * np.asarray(u, np.float64) for u, _ in terms1 for _ in terms2 for t in angles])
  b = np.array([np.sin(t) * np.asarray(v, np.float64) for _ in terms1 for v, _ in terms2 for t in angles])

  def top_coefficient(du, dv):
    def along(r):
      return kernel_fn(x1 + r * du, x2 + r * dv, get)
    _, series = _compat.jet(along, (0.0,), ([1.0] + [0.0] * (n - 1),))
    return series[-1] / math.factorial(n)

  fn = jax.jit(jax.vmap(top_coefficient))
  coefficients = np.asarray(fn.lower(a, b).compile(_compat.cpu_compiler_options(older_emitters=True))(a, b))
  coefficients = coefficients.reshape(len(terms1), len(terms2), n + 1, len(x1), len(x2))
  weights = np.array([[w1 * w2 for _, w2 in terms2] for _, w1 in terms1])
  weights = weights * math.factorial(k) * math.factorial(l)
  value = np.einsum("ij,ijmab,m->ab", weights, coefficients, row)
  magnitude = np.einsum("ij,ijmab,m->ab", np.abs(weights), np.abs(coefficients), np.abs(row))
  return value, magnitude
