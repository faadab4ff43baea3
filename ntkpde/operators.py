"""Linear differential operators written as SymPy text, applied to functions and kernels.

An operator is ``T u(x) = sum_k c_k(x) D^{alpha_k} u(x)`` with coefficient
functions ``c_k`` of the coordinates and multi-indices ``alpha_k``. Operators are
immutable and hashable, so compiled kernels can be cached per operator.

A nonlinear operator ``N[u](x) = F(x, (D^alpha u(x))_alpha)`` (:func:`parse_nonlinear`)
is applied to functions by :meth:`NonlinearOperator.residual`; its Frechet derivative at
a reference function ``u_ref`` (:meth:`NonlinearOperator.linearize`) is a
``LinearOperator`` whose coefficients ``dF/dp_alpha`` depend on ``x`` through *fields*:
symbols bound to JAX functions of ``x`` (the derivatives ``D^beta u_ref``).

Derivatives are nested forward-mode directional derivatives. The same helper
serves a single point ``x`` of shape ``(d,)`` and a batch ``X`` of shape
``(n, d)`` whose rows are independent points ("row-local" functions such as a
network applied to a batch, or a kernel ``K(X1, X2)`` seen as a function of
``X1``): the tangent ``e_i`` on every row gives every row's partial at once.
"""
import dataclasses
import functools
import numbers
import re
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import sympy
from sympy.core.function import AppliedUndef

from ntkpde.expressions import MAX_DERIVATIVE_ORDER, is_zero, parse_expression

UNKNOWN = "u"
Coords = Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Term:
  """One term ``coefficient(x) * D^multi_index u(x)``."""
  coefficient: sympy.Expr
  multi_index: Tuple[int, ...]

  @property
  def order(self) -> int:
    return sum(self.multi_index)


def _coord_symbols(coords: Coords):
  return tuple(sympy.Symbol(c, real=True) for c in coords)


def _check_coords(coords) -> Coords:
  if isinstance(coords, str):
    coords = (coords,)
  coords = tuple(coords)
  if not coords or len(set(coords)) != len(coords):
    raise ValueError(f"coords must be distinct non-empty names, got {coords!r}.")
  for c in coords:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", c) or c == UNKNOWN:
      raise ValueError(f"coordinate name {c!r} must be alphanumeric and not {UNKNOWN!r}.")
  return coords


def _coefficient(value, coords: Coords) -> sympy.Expr:
  """A coefficient as a SymPy expression of the coordinates only: a real number, a
  SymPy expression, or text (parsed safely by :mod:`ntkpde.expressions`)."""
  if isinstance(value, str):
    expr = parse_expression(value, dict(zip(coords, _coord_symbols(coords))),
                            what="coefficient")
  elif isinstance(value, sympy.Expr):
    expr = value
  elif isinstance(value, numbers.Real) and not isinstance(value, bool):
    if not np.isfinite(float(value)):
      raise ValueError(f"coefficient {value!r} is not finite.")
    expr = sympy.Integer(int(value)) if float(value).is_integer() else sympy.Float(float(value))
  else:
    raise ValueError(f"coefficient {value!r} must be a real number, a SymPy expression or text "
                     f"such as '1 + x'; got {type(value).__name__}.")
  allowed = set(_coord_symbols(coords))
  unknown = {str(s) for s in expr.free_symbols if s not in allowed}
  if unknown or expr.atoms(AppliedUndef) or expr.atoms(sympy.Derivative):
    raise ValueError(f"coefficient {value!r} uses {sorted(unknown) or 'a function of u'}; "
                     f"coefficients may use only the coordinates {list(coords)}.")
  if expr.has(sympy.I, sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
    raise ValueError(f"coefficient {value!r} is not a finite real expression.")
  return expr


def differentiate(f: Callable, multi_index: Sequence[int]) -> Callable:
  """``D^alpha f`` by nested forward-mode directional derivatives.

  ``f`` maps ``x`` of shape ``(..., d)`` to an array; every leading index of ``x``
  must be an independent point (row-local), so the tangent ``e_i`` placed on
  every row gives all rows' partials ``d f / d x_i`` in one ``jvp``.
  """
  g = f
  for axis, count in enumerate(multi_index):
    for _ in range(count):
      g = _directional_derivative(g, axis)
  return g


def _directional_derivative(g: Callable, axis: int) -> Callable:
  def dg(x):
    tangent = jnp.zeros_like(x).at[..., axis].set(1.0)
    return jax.jvp(g, (x,), (tangent,))[1]
  return dg


@dataclasses.dataclass(frozen=True)
class LinearOperator:
  """``T u = sum_k c_k(x) D^{alpha_k} u`` over named coordinates.

  Build one with :func:`parse`, :func:`identity`, :func:`normal_derivative`,
  :func:`directional_derivative` or :meth:`NonlinearOperator.linearize`; combine with
  ``+``, ``-`` and scalar ``*``. ``T(f)`` applies it to ``f: R^d -> R`` (or a row-local
  batched ``f``). ``fields`` binds symbols that coefficients may use besides the
  coordinates to row-local JAX functions of ``x`` (empty for parsed operators); the
  functions are hashed by identity, so operators stay usable as cache keys.
  """
  coords: Coords
  terms: Tuple[Term, ...]
  fields: Tuple[Tuple[sympy.Symbol, Callable], ...] = ()

  @property
  def order(self) -> int:
    return max((t.order for t in self.terms), default=0)

  @property
  def dim(self) -> int:
    return len(self.coords)

  def __str__(self):
    parts = []
    for t in self.terms:
      parts.append(f"({t.coefficient})*{_derivative_name(self.coords, t.multi_index)}")
    return " + ".join(parts) or "0"

  def _combine(self, other: "LinearOperator", sign: int) -> "LinearOperator":
    if not isinstance(other, LinearOperator):
      return NotImplemented
    if other.coords != self.coords:
      raise ValueError(f"cannot combine operators over coordinates {self.coords} and {other.coords}.")
    return _merge(self.coords, list(self.terms) +
                  [Term(sign * t.coefficient, t.multi_index) for t in other.terms],
                  self.fields + tuple(f for f in other.fields if f not in self.fields))

  def __add__(self, other):
    return self._combine(other, 1)

  def __sub__(self, other):
    return self._combine(other, -1)

  def __neg__(self):
    return _merge(self.coords, [Term(-t.coefficient, t.multi_index) for t in self.terms],
                  self.fields)

  def __mul__(self, scalar):
    if isinstance(scalar, LinearOperator):
      raise TypeError("operators compose only linearly here: multiply by a scalar or a "
                      "coefficient expression of the coordinates.")
    c = _coefficient(scalar, self.coords)
    return _merge(self.coords, [Term(c * t.coefficient, t.multi_index) for t in self.terms],
                  self.fields)

  __rmul__ = __mul__

  @functools.cached_property
  def _coefficient_fns(self):
    symbols = _coord_symbols(self.coords) + tuple(s for s, _ in self.fields)
    return tuple(sympy.lambdify(symbols, t.coefficient, modules=jnp) for t in self.terms)

  def coefficients(self, x) -> Tuple[jax.Array, ...]:
    """Each term's coefficient at the points ``x`` of shape ``(..., d)``."""
    cols = [x[..., i] for i in range(self.dim)] + [fn(x) for _, fn in self.fields]
    return tuple(jnp.broadcast_to(fn(*cols), x.shape[:-1]).astype(x.dtype)
                 for fn in self._coefficient_fns)

  def __call__(self, f: Callable) -> Callable:
    """``x -> (T f)(x)`` for a scalar ``f`` of one point or a row-local batched ``f``."""
    def tf(x):
      return sum(c * differentiate(f, t.multi_index)(x)
                 for c, t in zip(self.coefficients(x), self.terms))
    return tf


def _merge(coords: Coords, terms, fields=()) -> LinearOperator:
  """Collects terms by multi-index, drops zero coefficients, orders canonically; keeps
  the fields that the remaining coefficients use."""
  by_index: Dict[Tuple[int, ...], sympy.Expr] = {}
  for t in terms:
    by_index[t.multi_index] = by_index.get(t.multi_index, sympy.Integer(0)) + t.coefficient
  merged = tuple(Term(c, a) for a, c in sorted(by_index.items()) if not is_zero(c))
  used = set().union(*(t.coefficient.free_symbols for t in merged))
  return LinearOperator(coords, merged, tuple(f for f in fields if f[0] in used))


def _check_params(params, coords: Coords) -> Dict[str, float]:
  """Parameter names are plain identifiers distinct from the coordinates and ``u``;
  values are finite real numbers."""
  params = dict(params or {})
  for name, value in params.items():
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name):
      raise ValueError(f"parameter name {name!r} must be alphanumeric, starting with a letter.")
    if name in coords or name == UNKNOWN:
      raise ValueError(f"parameter name {name!r} clashes with the coordinates or {UNKNOWN!r}.")
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
        or not np.isfinite(float(value))):
      raise ValueError(f"parameter {name}={value!r} must be a finite real number.")
  return {name: float(value) for name, value in params.items()}


def _split_suffix(suffix: str, coords: Coords, token: str) -> Tuple[int, ...]:
  """``"xxy"`` -> multi-index over ``coords``; longest coordinate names first."""
  if not suffix or len(suffix) > MAX_DERIVATIVE_ORDER * max(map(len, coords)):
    raise ValueError(f"cannot read {token!r}: a derivative subscript names 1 to "
                     f"{MAX_DERIVATIVE_ORDER} coordinates.")
  counts = [0] * len(coords)
  order = sorted(range(len(coords)), key=lambda i: -len(coords[i]))
  rest = suffix
  while rest:
    for i in order:
      if rest.startswith(coords[i]):
        counts[i] += 1
        rest = rest[len(coords[i]):]
        break
    else:
      raise ValueError(f"cannot read {token!r}: {rest!r} is not one of the coordinates "
                       f"{list(coords)}.")
  return tuple(counts)


def _placeholder_form(expr: str, coords, params):
  """Parses ``expr`` in the unknown ``u`` and replaces ``u`` and each derivative
  ``D^alpha u`` by a placeholder symbol ``p_alpha``. Returns ``(coords, F, placeholders,
  param_values)``: ``F`` a SymPy expression of the coordinates, the placeholders and the
  parameter symbols; ``placeholders`` maps multi-indices to their symbols (the
  zero multi-index always present); ``param_values`` maps parameter symbols to numbers."""
  coords = _check_coords(coords)
  params = _check_params(params, coords)
  symbols = _coord_symbols(coords)
  u = sympy.Function(UNKNOWN)(*symbols)
  local = {c: s for c, s in zip(coords, symbols)}
  local.update({p: sympy.Symbol(p) for p in params})
  local[UNKNOWN] = u

  def subscript(name: str):
    if not name.startswith(UNKNOWN + "_"):
      raise ValueError(f"in {expr!r}: unknown symbol(s) {[name]}; coordinates are "
                       f"{list(coords)}, parameters are {sorted(params) or 'none'} "
                       f"(pass params={{name: value}}).")
    index = _split_suffix(name[len(UNKNOWN) + 1:], coords, name)
    return sympy.diff(u, *[(s, k) for s, k in zip(symbols, index) if k])

  parsed = parse_expression(expr, local, resolve=subscript, derivatives=True, what="operator")

  # One structural replacement (xreplace) of every derivative and of u: SymPy's subs would
  # treat Derivative(u, x, y) as d/dy of Derivative(u, x) and replace it by d/dy p_x = 0.
  placeholders: Dict[Tuple[int, ...], sympy.Symbol] = {}
  replacements = {}
  for d in sorted(parsed.atoms(sympy.Derivative), key=str):
    if d.expr != u:
      raise ValueError(f"in {expr!r}: {d} is not a derivative of {UNKNOWN}; only "
                       f"{UNKNOWN} and its derivatives may be differentiated.")
    counts = [0] * len(coords)
    for var, k in d.variable_count:
      if var not in symbols:
        raise ValueError(f"in {expr!r}: derivative with respect to {var}, which is not one "
                         f"of the coordinates {list(coords)}.")
      counts[symbols.index(var)] += int(k)
    if sum(counts) > MAX_DERIVATIVE_ORDER:
      raise ValueError(f"in {expr!r}: {d} has order {sum(counts)}; the limit is "
                       f"{MAX_DERIVATIVE_ORDER} per term.")
    placeholders.setdefault(tuple(counts), sympy.Dummy(_derivative_name(coords, counts)))
    replacements[d] = placeholders[tuple(counts)]
  zero = (0,) * len(coords)
  placeholders.setdefault(zero, sympy.Dummy(UNKNOWN))
  replacements[u] = placeholders[zero]
  parsed = parsed.xreplace(replacements)

  leftover = parsed.atoms(AppliedUndef)
  if leftover:
    raise ValueError(f"in {expr!r}: unknown function(s) {sorted(map(str, leftover))}; the "
                     f"unknown is {UNKNOWN}({', '.join(coords)}).")
  allowed = set(symbols) | {local[p] for p in params} | set(placeholders.values())
  unknown = sorted(str(s) for s in parsed.free_symbols - allowed)
  if unknown:
    raise ValueError(f"in {expr!r}: unknown symbol(s) {unknown}; coordinates are "
                     f"{list(coords)}, parameters are {sorted(params) or 'none'} "
                     f"(pass params={{name: value}}).")
  values = {local[p]: sympy.Integer(int(v)) if float(v).is_integer() else sympy.Float(float(v))
            for p, v in params.items()}
  return coords, parsed, placeholders, values


def _affine(expr: sympy.Expr, placeholders) -> bool:
  """Whether ``expr`` is affine in the placeholders (every second derivative is zero)."""
  return all(is_zero(sympy.diff(expr, p, q)) for p in placeholders for q in placeholders)


def _derivative_name(coords: Coords, multi_index: Sequence[int]) -> str:
  """``u``, ``u_x``, ``u_xxy``: the subscript name of ``D^multi_index u``."""
  suffix = "".join(c * k for c, k in zip(coords, multi_index))
  return UNKNOWN + ("_" + suffix if suffix else "")


def parse(expr: str, coords: Union[str, Sequence[str]],
          params: Optional[Mapping[str, float]] = None) -> LinearOperator:
  """Parses a linear differential operator in the unknown ``u``.

  Accepts subscript notation (``"u_xx + u_yy"``, ``"u_tt - 4*u_xx"``), SymPy
  derivatives (``"Derivative(u, x, 2)"``, ``"diff(u, x)"``), parameters
  (``"-u_xx + a*u"`` with ``params={"a": 2.0}``) and coefficients that are
  functions of the coordinates (``"x*u_x + u"``).

  Raises ``ValueError`` for nonlinear input (``u**2``, ``u*u_x``; use
  :func:`parse_nonlinear`), terms free of ``u`` (forcing belongs in the targets), and
  unknown symbols or functions.
  """
  coords, parsed, placeholders, values = _placeholder_form(expr, coords, params)
  # T is linear iff it is affine-free and linear in the placeholders.
  ps = list(placeholders.values())
  if not is_zero(parsed.subs({p: 0 for p in ps})):
    raise ValueError(f"in {expr!r}: a term does not contain {UNKNOWN}; only linear "
                     f"operators are supported (put forcing terms into the targets).")
  if not _affine(parsed, ps):
    raise ValueError(f"{expr!r} is nonlinear in {UNKNOWN}; only linear differential "
                     f"operators are supported (parse_nonlinear reads nonlinear ones).")
  terms = [Term(sympy.diff(parsed, p).subs(values), index) for index, p in placeholders.items()]
  op = _merge(coords, terms)
  if not op.terms:
    raise ValueError(f"{expr!r} is the zero operator.")
  return op


@dataclasses.dataclass(frozen=True)
class NonlinearOperator:
  """``N[u](x) = F(x, (D^alpha u(x))_alpha)`` over named coordinates; build it with
  :func:`parse_nonlinear`.

  ``expression`` is ``F`` in the coordinate symbols and one placeholder symbol per
  derivative (``placeholders``: ``(multi_index, symbol)`` pairs, the zero multi-index
  first). Its Frechet derivative at ``u_ref`` is the linear operator
  ``N'[u_ref] v = sum_alpha dF/dp_alpha(x, D u_ref(x)) D^alpha v``
  (:meth:`linearize`), so ``N[u_ref + v] = N[u_ref] + N'[u_ref] v + O(|v|^2)``.
  """
  coords: Coords
  expression: sympy.Expr
  placeholders: Tuple[Tuple[Tuple[int, ...], sympy.Symbol], ...]

  @property
  def multi_indices(self) -> Tuple[Tuple[int, ...], ...]:
    return tuple(a for a, _ in self.placeholders)

  @property
  def order(self) -> int:
    return max(sum(a) for a in self.multi_indices)

  @property
  def dim(self) -> int:
    return len(self.coords)

  @property
  def is_linear(self) -> bool:
    """Whether ``F`` is affine in ``u`` and its derivatives (then ``N'`` is constant)."""
    return _affine(self.expression, [p for _, p in self.placeholders])

  def __str__(self):
    return str(self.expression)

  @functools.cached_property
  def _functions(self):
    """``F``, each ``dF/dp_alpha`` and each ``d^2F/dp_alpha dp_beta`` (row-major, ``m^2``)
    as JAX functions of ``(x columns..., p...)``."""
    args = _coord_symbols(self.coords) + tuple(p for _, p in self.placeholders)
    symbols = [p for _, p in self.placeholders]
    first = [sympy.diff(self.expression, p) for p in symbols]
    second = [sympy.diff(g, p) for g in first for p in symbols]
    return tuple(sympy.lambdify(args, e, modules=jnp) for e in [self.expression] + first + second)

  def evaluate(self, x, derivatives) -> jax.Array:
    """``F(x, p)`` at points ``x`` ``(..., d)`` with ``derivatives[..., k]`` the value of
    ``D^alpha_k u`` (``alpha_k = multi_indices[k]``)."""
    return self._at(0, x, derivatives)

  def gradient(self, x, derivatives) -> jax.Array:
    """``dF/dp_alpha_k(x, p)`` as an array ``(..., m)`` (``m`` multi-indices)."""
    return jnp.stack([self._at(k + 1, x, derivatives)
                      for k in range(len(self.placeholders))], axis=-1)

  def hessian(self, x, derivatives) -> jax.Array:
    """``d^2F/dp_alpha_j dp_alpha_k(x, p)`` as an array ``(..., m, m)``."""
    m = len(self.placeholders)
    return jnp.stack([self._at(1 + m + k, x, derivatives) for k in range(m * m)],
                     axis=-1).reshape(jnp.shape(x)[:-1] + (m, m))

  def _at(self, k: int, x, derivatives):
    x = jnp.asarray(x)
    cols = [x[..., i] for i in range(self.dim)]
    vals = [derivatives[..., j] for j in range(len(self.placeholders))]
    return jnp.broadcast_to(self._functions[k](*cols, *vals), x.shape[:-1]).astype(x.dtype)

  def derivatives(self, u_fn: Callable) -> Callable:
    """``x -> [D^alpha_k u_fn(x)]_k``, shape ``(..., m)``, for a row-local ``u_fn``."""
    fns = [differentiate(u_fn, a) for a in self.multi_indices]
    return lambda x: jnp.stack([f(x) for f in fns], axis=-1)

  def residual(self, u_fn: Callable) -> Callable:
    """``x -> N[u_fn](x)`` for a scalar ``u_fn`` of one point or a row-local batched one."""
    derivatives = self.derivatives(u_fn)
    return lambda x: self.evaluate(x, derivatives(x))

  def linearize(self, u_ref: Callable) -> LinearOperator:
    """The Frechet derivative ``N'[u_ref]`` as a :class:`LinearOperator`; its coefficients
    ``dF/dp_alpha`` use fields bound to ``D^beta u_ref`` (fresh symbols per call, so
    linearisations at different references combine correctly)."""
    fresh = {p: sympy.Dummy(f"{p.name}_ref") for _, p in self.placeholders}
    fields = tuple((fresh[p], differentiate(u_ref, a)) for a, p in self.placeholders)
    terms = [Term(sympy.diff(self.expression, p).subs(fresh), a)
             for a, p in self.placeholders]
    return _merge(self.coords, terms, fields)


def parse_nonlinear(expr: str, coords: Union[str, Sequence[str]],
                    params: Optional[Mapping[str, float]] = None) -> NonlinearOperator:
  """Parses a (possibly) nonlinear differential operator ``N[u] = F(x, u, D u, ...)``.

  Same text as :func:`parse` (subscripts, ``Derivative``/``diff``, parameters,
  coefficients of the coordinates, parsed by the ``ast`` whitelist of
  :mod:`ntkpde.expressions`), and any smooth function of ``u`` and its derivatives
  built from ``+ - * / **`` and the allowed functions: ``"u_xx + u_yy - u**3"``,
  ``"u_t + u*u_x - nu*u_xx"``, ``"-u_xx + sin(u)"``,
  ``"u_x**2 + u_y**2 - 1 + eps*(u_xx + u_yy)"``. Terms free of ``u`` are kept in ``F``.
  Raises ``ValueError`` when ``u`` does not occur.
  """
  coords, parsed, placeholders, values = _placeholder_form(expr, coords, params)
  parsed = parsed.subs(values)
  if not any(parsed.has(p) for p in placeholders.values()):
    raise ValueError(f"{expr!r} does not contain {UNKNOWN}.")
  ordered = sorted(placeholders.items(), key=lambda item: (sum(item[0]), [-k for k in item[0]]))
  return NonlinearOperator(coords, parsed, tuple(ordered))


def identity(coords) -> LinearOperator:
  """``u -> u``: Dirichlet boundary values and initial values."""
  coords = _check_coords(coords)
  return LinearOperator(coords, (Term(sympy.Integer(1), (0,) * len(coords)),))


def directional_derivative(coords, direction: Sequence) -> LinearOperator:
  """``u -> h . grad u`` for a direction ``h`` whose components may depend on x."""
  coords = _check_coords(coords)
  if len(direction) != len(coords):
    raise ValueError(f"direction has {len(direction)} components, coordinates {list(coords)} "
                     f"need {len(coords)}.")
  terms = [Term(_coefficient(h, coords), tuple(int(i == j) for j in range(len(coords))))
           for i, h in enumerate(direction)]
  op = _merge(coords, terms)
  if not op.terms:
    raise ValueError("direction is zero.")
  return op


def normal_derivative(coords, normals: Sequence) -> LinearOperator:
  """``u -> n . grad u`` (Neumann data); ``normals`` are numbers or expressions of x,
  e.g. ``("x", "y")`` on the unit circle or ``(1, 0)`` on the face ``x = 1``."""
  return directional_derivative(coords, normals)
