"""Operator kernels by central finite differences of the plain kernel, with error bounds.

An independent route to :func:`ntkpde.operator_kernel`: ``T_x S_x' K(x, x')`` is
approximated by evaluating the plain kernel ``K`` at shifted points,

  sum_{o, o'} w_o(x) w'_{o'}(x') K(x + h o, x' + h o'),

where ``o`` runs over the tensor-product central stencil of every term of ``T``
(weights ``c_k(x) * w``) and likewise for ``S``. Coefficients ``c_k`` are
lambdified with NumPy from the operator's SymPy coefficients; no JAX derivative
is taken. Every 1-D stencil is second-order accurate, so the truncation error is
``C h^2``; :func:`richardson_check` estimates it from two step sizes.

Error model (used by the tests and claims):

* truncation: ``D(h) = A + C h^2 + O(h^4)``, so ``|D(h/2) - A| ~ |D(h) - D(h/2)| / 3``;
* rounding: each kernel value carries an absolute error of at most
  ``c_K eps max|K|`` (``c_K = 16``: a handful of float64 operations in the
  kernel recursion plus the rounding of the shifted point ``x + h o``), which the
  stencil amplifies by ``||w||_1``, the sum of the absolute stencil weights,
  ``~ h^-order``.
"""
import itertools
from typing import Callable, Dict, Tuple

import numpy as np
import sympy

EPS = np.finfo(np.float64).eps
KERNEL_ROUNDING = 16  # c_K above

# Second-order central stencils {offset: weight * h^k} for the k-th derivative.
_STENCILS = {
    0: {0: 1.0},
    1: {-1: -0.5, 1: 0.5},
    2: {-1: 1.0, 0: -2.0, 1: 1.0},
    3: {-2: -0.5, -1: 1.0, 1: -1.0, 2: 0.5},
    4: {-2: 1.0, -1: -4.0, 0: 6.0, 1: -4.0, 2: 1.0},
}


def step_size(order: int) -> float:
  """A step with truncation well above rounding: ``4 eps^(1/(order+2))`` (the
  optimum balancing ``h^2`` against ``eps / h^order`` is ``eps^(1/(order+2))``;
  the factor 4 makes truncation dominate so Richardson can see it)."""
  return 4.0 * EPS ** (1.0 / (order + 2))


def _stencil(op, x: np.ndarray, h: float) -> Dict[Tuple[int, ...], np.ndarray]:
  """``{integer offset: per-row weight}`` of ``op`` at the rows of ``x``."""
  symbols = [sympy.Symbol(c, real=True) for c in op.coords]
  out: Dict[Tuple[int, ...], np.ndarray] = {}
  for term in op.terms:
    coefficient = sympy.lambdify(symbols, term.coefficient, modules="numpy")
    c = np.broadcast_to(np.asarray(coefficient(*x.T), dtype=np.float64), (len(x),))
    scale = h ** -sum(term.multi_index)
    per_axis = [sorted(_STENCILS[k].items()) for k in term.multi_index]
    for combo in itertools.product(*per_axis):
      offset = tuple(o for o, _ in combo)
      w = np.prod([w for _, w in combo]) * scale
      out[offset] = out.get(offset, 0.0) + c * w
  return out


def fd_operator_kernel(kernel: Callable, T, S, x1, x2, h: float):
  """``(value, rounding)``: the finite-difference ``T_x S_x' K(x1, x2)`` and its
  entrywise rounding bound ``c_K eps max|K| ||w||_1`` (module docstring).

  ``kernel(a, b)`` returns the plain ``(len(a), len(b))`` kernel; ``T``, ``S``
  are ``ntkpde.operators.LinearOperator`` (only coefficients and multi-indices
  are read)."""
  x1 = np.asarray(x1, dtype=np.float64)
  x2 = np.asarray(x2, dtype=np.float64)
  st1, st2 = _stencil(T, x1, h), _stencil(S, x2, h)
  value = np.zeros((len(x1), len(x2)))
  weight_l1 = np.zeros_like(value)
  k_max = 0.0
  for o1, w1 in st1.items():
    for o2, w2 in st2.items():
      k = np.asarray(kernel(x1 + h * np.asarray(o1), x2 + h * np.asarray(o2)))
      value += w1[:, None] * w2[None, :] * k
      weight_l1 += np.abs(w1)[:, None] * np.abs(w2)[None, :]
      k_max = max(k_max, float(np.max(np.abs(k))))
  return value, KERNEL_ROUNDING * EPS * k_max * weight_l1


def richardson_check(kernel: Callable, T, S, x1, x2, h: float = None):
  """Finite differences at ``h`` and ``h/2`` with an error bound.

  Returns ``(fd, bound)``: ``fd = D(h/2)`` and the entrywise bound
  ``2 max|D(h) - D(h/2)| / 3 + c_K eps max|K| ||w||_1`` on ``|fd - exact|``:
  the truncation estimate ``|D(h) - D(h/2)| / 3`` of Richardson, taken as the
  maximum over the block (an entry whose ``h^2`` coefficient happens to vanish
  is not under-estimated) and doubled for the neglected ``O(h^4)`` terms, plus the
  rounding bound of the module docstring."""
  h = step_size(T.order + S.order) if h is None else h
  coarse, _ = fd_operator_kernel(kernel, T, S, x1, x2, h)
  fine, rounding = fd_operator_kernel(kernel, T, S, x1, x2, h / 2)
  truncation = 2.0 * np.max(np.abs(coarse - fine)) / 3.0
  return fine, truncation + rounding
