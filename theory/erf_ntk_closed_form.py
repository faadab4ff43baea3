"""Closed-form NNGP and NTK of erf networks, and their operator kernels by SymPy.

An independent route to :func:`ntkpde.operator_kernel`: the kernels are written
as SymPy expressions of the two inputs (no neural-tangents, no JAX), the
operators are applied with ``sympy.diff``, and the result is lambdified with
NumPy. Nothing is fitted. See ``theory/operator_kernels.md`` for the statement.

Network (NTK parameterisation, input dimension ``d``, ``depth`` hidden layers)::

  Dense(W_std, b_std) -> Erf -> ... -> Dense(W_std, b_std) -> Erf -> Dense(W_std, b_std)

Recursion over layers, with ``S(x, x')`` the pre-activation covariance:

  S_1(x, x')    = W^2 x.x' / d + b^2,                 Theta_1 = S_1
  E[erf erf]    = (2/pi) arcsin(2 S12 / sqrt((1 + 2 S11)(1 + 2 S22)))
  E[erf' erf']  = (4/pi) / sqrt((1 + 2 S11)(1 + 2 S22) - 4 S12^2)
  S_{l+1}       = W^2 E[erf erf](S_l) + b^2
  Theta_{l+1}   = W^2 Theta_l E[erf' erf'](S_l) + S_{l+1}

(Williams 1997 for the arcsine kernel; Jacot et al. 2018 for the NTK
recursion; S11 = S(x, x), S22 = S(x', x'), S12 = S(x, x')). The returned NNGP
and NTK are ``S_{depth+1}`` and ``Theta_{depth+1}``.
"""
import functools
from typing import Sequence, Tuple

import numpy as np
import sympy


def input_symbols(d: int) -> Tuple[Tuple[sympy.Symbol, ...], Tuple[sympy.Symbol, ...]]:
  """The symbols ``(x_0, .., x_{d-1})`` and ``(y_0, .., y_{d-1})`` of the two inputs
  (underscored, so they never clash with operator coordinate names)."""
  x = tuple(sympy.Symbol(f"x_{i}", real=True) for i in range(d))
  y = tuple(sympy.Symbol(f"y_{i}", real=True) for i in range(d))
  return x, y


def erf_kernels(d: int, depth: int = 1, W_std=1.5, b_std=0.1) -> Tuple[sympy.Expr, sympy.Expr]:
  """``(nngp, ntk)`` of the erf network as SymPy expressions of
  :func:`input_symbols` ``(d)``. ``W_std``, ``b_std`` may be numbers or symbols."""
  x, y = input_symbols(d)
  w2, b2 = sympy.sympify(W_std) ** 2, sympy.sympify(b_std) ** 2

  def dot(a, b):
    return sum(ai * bi for ai, bi in zip(a, b))
  # (S11, S22, S12) and Theta12 of the first Dense layer.
  s11, s22, s12 = (w2 * dot(a, b) / d + b2 for a, b in ((x, x), (y, y), (x, y)))
  theta = s12
  for _ in range(depth):
    denom = (1 + 2 * s11) * (1 + 2 * s22)
    e_erf = 2 / sympy.pi * sympy.asin(2 * s12 / sympy.sqrt(denom))
    e_derf = 4 / sympy.pi / sympy.sqrt(denom - 4 * s12 ** 2)
    # E[erf(u)^2] on the diagonal: S12 -> S11.
    diag = [2 / sympy.pi * sympy.asin(2 * s / (1 + 2 * s)) for s in (s11, s22)]
    theta = w2 * theta * e_derf
    s11, s22, s12 = w2 * diag[0] + b2, w2 * diag[1] + b2, w2 * e_erf + b2
    theta = theta + s12
  return s12, theta


def apply_operator(expr: sympy.Expr, terms: Sequence[Tuple[sympy.Expr, Sequence[int]]],
                   variables: Sequence[sympy.Symbol]) -> sympy.Expr:
  """``sum_k c_k(v) D_v^{alpha_k} expr`` by ``sympy.diff``; ``terms`` are
  ``(c_k, alpha_k)`` with ``c_k`` already written in ``variables``."""
  out = sympy.Integer(0)
  for coefficient, alpha in terms:
    spec = [arg for v, k in zip(variables, alpha) if k for arg in (v, int(k))]
    out += coefficient * (sympy.diff(expr, *spec) if spec else expr)
  return out


def _operator_terms(op, variables):
  """The terms of an :class:`ntkpde.operators.LinearOperator` with its coordinate
  symbols replaced by ``variables``."""
  coord_symbols = [sympy.Symbol(c, real=True) for c in op.coords]
  return [(sympy.sympify(t.coefficient).subs(dict(zip(coord_symbols, variables)),
                                             simultaneous=True), t.multi_index)
          for t in op.terms]


@functools.lru_cache(maxsize=64)
def operator_kernel_closed_form(T, S=None, get: str = "ntk", depth: int = 1, W_std: float = 1.5,
                                b_std: float = 0.1):
  """``(X1, X2) -> T_x S_x' K(X1, X2)`` as an ``(n1, n2)`` NumPy array, for the erf
  network of :func:`erf_kernels`; ``T``, ``S`` are ``ntkpde.operators.LinearOperator``
  (only their coefficients and multi-indices are read). Differentiated with
  ``sympy.diff`` and lambdified with NumPy (common subexpressions eliminated)."""
  S = T if S is None else S
  if get not in ("ntk", "nngp"):
    raise ValueError(f"get must be 'ntk' or 'nngp', got {get!r}.")
  d = len(T.coords)
  x, y = input_symbols(d)
  nngp, ntk = erf_kernels(d, depth, sympy.nsimplify(W_std), sympy.nsimplify(b_std))
  k = ntk if get == "ntk" else nngp
  expr = apply_operator(apply_operator(k, _operator_terms(S, y), y), _operator_terms(T, x), x)
  fn = sympy.lambdify(x + y, expr, modules="numpy", cse=True)

  def evaluate(x1, x2):
    a = np.asarray(x1, dtype=np.float64).reshape(-1, d)
    b = np.asarray(x2, dtype=np.float64).reshape(-1, d)
    cols = [a[:, i, None] for i in range(d)] + [b[None, :, i] for i in range(d)]
    return np.broadcast_to(fn(*cols), (len(a), len(b))).astype(np.float64)
  return evaluate
