"""Truncated bivariate Taylor series ("jets") and the few elementary functions on them.

A jet is ``f(s, t) = sum_{k <= A, l <= B} c_kl s^k t^l`` truncated at ``(A, B)``;
``c_kl`` are arrays that broadcast against each other (``(n1, 1)`` for a function of
``x`` alone, ``(1, n2)`` for ``x'`` alone, ``(n1, n2)`` for both). Zero coefficients
are absent from the dictionary, so products skip them at trace time and the program
has only the multiply-adds a coefficient actually needs.

Arithmetic (exact for truncated series): ``(a b)_mn = sum_{k <= m, l <= n} a_kl b_{m-k, n-l}``;
a smooth univariate ``g`` of a jet ``a = a_00 + a~`` is
``g(a) = sum_{j <= A + B} g^(j)(a_00) / j! a~^j`` (``a~`` has no constant term, so
``a~^j`` has only degrees ``k + l >= j`` and the sum is finite). The derivatives
``g^(j)(a_00)`` come from closed forms (powers, ``exp``) or a three-term recurrence
(``arcsin`` and powers of ``1 - a^2``); see theory/taylor_engine.md.

:func:`power`, :func:`powers`, :func:`exp`, :func:`exp_and_reciprocal` and
:func:`arcsin_and_roots` act on jets and on plain arrays alike, so one kernel recursion
written with them serves both the plain kernel and its Taylor expansion.

:func:`counting` counts, while a program is traced, the coefficient products of full
``(n1, n2)`` size per straight-line region (:func:`loop_body` opens a new one): the size
of the elementwise fusions XLA will have to compile.
"""
import contextlib
import math
from typing import Dict, List, Optional, Sequence, Tuple

import jax.numpy as jnp
from jax import lax

Key = Tuple[int, int]


class ProductCount:
  """Full-size coefficient products traced, per straight-line region (``regions[0]``: the
  program outside loop bodies)."""

  def __init__(self):
    self.regions: List[int] = [0]
    self.current = 0

  @property
  def largest(self) -> int:
    return max(self.regions)


_COUNTS: List[ProductCount] = []


@contextlib.contextmanager
def counting():
  """Count the full-size products of the jets traced inside (:class:`ProductCount`)."""
  count = ProductCount()
  _COUNTS.append(count)
  try:
    yield count
  finally:
    _COUNTS.pop()


@contextlib.contextmanager
def loop_body():
  """Products traced inside belong to a region of their own (a loop body that XLA keeps)."""
  if not _COUNTS:
    yield
    return
  count = _COUNTS[-1]
  outer = count.current
  count.regions.append(0)
  count.current = len(count.regions) - 1
  try:
    yield
  finally:
    count.current = outer


def _count(products) -> None:
  """Adds the full-size ``(n1, n2)`` coefficients among ``products`` to the current region."""
  count = _COUNTS[-1]
  count.regions[count.current] += sum(1 for c in products if jnp.ndim(c) == 2 and 1 not in jnp.shape(c))


class Jet:
  """A truncated bivariate Taylor series; ``coeffs[(k, l)]`` is the coefficient of
  ``s^k t^l`` (absent = 0), ``order = (A, B)``."""
  __slots__ = ("coeffs", "order")

  def __init__(self, coeffs: Dict[Key, jnp.ndarray], order: Tuple[int, int]):
    self.order = order
    self.coeffs = {k: v for k, v in coeffs.items() if k[0] <= order[0] and k[1] <= order[1]}

  def __getitem__(self, key: Key):
    return self.coeffs.get(key, 0.0)

  @property
  def constant(self):
    return self.coeffs.get((0, 0), 0.0)

  def _lift(self, other) -> "Jet":
    return other if isinstance(other, Jet) else Jet({(0, 0): other}, self.order)

  def __add__(self, other):
    other = self._lift(other)
    out = dict(self.coeffs)
    for k, v in other.coeffs.items():
      out[k] = out[k] + v if k in out else v
    return Jet(out, self.order)

  __radd__ = __add__

  def __neg__(self):
    return Jet({k: -v for k, v in self.coeffs.items()}, self.order)

  def __sub__(self, other):
    return self + (-self._lift(other))

  def __rsub__(self, other):
    return (-self) + other

  def __mul__(self, other):
    if not isinstance(other, Jet):
      return Jet({k: v * other for k, v in self.coeffs.items()}, self.order)
    return Jet(self._accumulate((x, y) for x in self.coeffs.items()
                                for y in other.coeffs.items()), self.order)

  __rmul__ = __mul__

  def square(self) -> "Jet":
    """``self * self`` with each pair of distinct coefficients multiplied once:
    ``(a^2)_m = sum_k a_k^2 [2k = m] + 2 sum_{k < k'} a_k a_k' [k + k' = m]``."""
    items = sorted(self.coeffs.items())
    out = self._accumulate((x, x) for x in items)
    cross = self._accumulate((items[i], items[j]) for i in range(len(items))
                             for j in range(i + 1, len(items)))
    for key, value in cross.items():
      out[key] = out[key] + 2.0 * value if key in out else 2.0 * value
    return Jet(out, self.order)

  def _accumulate(self, pairs) -> Dict[Key, jnp.ndarray]:
    """``{k + k': sum a b}`` over ``pairs`` of coefficient items ``((k, a), (k', b))`` within
    the order, counting the full-size products (:func:`counting`)."""
    a_max, b_max = self.order
    out: Dict[Key, jnp.ndarray] = {}
    products = []
    for ((k1, l1), a), ((k2, l2), b) in pairs:
      key = (k1 + k2, l1 + l2)
      if key[0] <= a_max and key[1] <= b_max:
        product = a * b
        out[key] = out[key] + product if key in out else product
        if _COUNTS:
          products.append(product)
    if _COUNTS:
      _count(products)
    return out

  def __truediv__(self, other):
    if isinstance(other, Jet):
      return self * power(other, -1.0)
    return self * (1.0 / other)

  def __rtruediv__(self, other):
    return power(self, -1.0) * other

  def __pow__(self, exponent):
    if exponent == 2:
      return self.square()
    return power(self, float(exponent))


def _powers(a: Jet, n: int):
  """``[a~, a~^2, .., a~^n]`` with ``a~ = a - a_00``, stopping where the powers vanish
  (``a~^j`` has no terms of total degree below ``j``); even powers are squares."""
  rest = Jet({k: v for k, v in a.coeffs.items() if k != (0, 0)}, a.order)
  out = [rest] if rest.coeffs and n else []
  while len(out) < n and out[-1].coeffs:
    j = len(out) + 1  # a~^j: the square of a~^(j/2) (half the products), else a~^(j-1) a~
    out.append(out[j // 2 - 1].square() if j % 2 == 0 else out[-1] * rest)
  return [term for term in out if term.coeffs]


def _compose(a: Jet, derivatives: Sequence, powers=None) -> Jet:
  """``g(a)`` from ``derivatives[j] = g^(j)(a_00)``, ``j = 0 .. A + B`` (``powers``: the
  :func:`_powers` of ``a`` when the caller shares them between several functions)."""
  if powers is None:
    powers = _powers(a, len(derivatives) - 1)
  out = Jet({(0, 0): derivatives[0]}, a.order)
  for j, term in enumerate(powers[:len(derivatives) - 1], 1):
    out = out + term * (derivatives[j] / math.factorial(j))
  return out


def _degree(a: Jet) -> int:
  """Highest total degree that ``g(a)`` can have: ``A + B``, or less for a jet of one
  variable (``A`` for a function of ``x`` alone)."""
  ks = [k for (k, l) in a.coeffs]
  ls = [l for (k, l) in a.coeffs]
  return (a.order[0] if any(ks) else 0) + (a.order[1] if any(ls) else 0)


def real_power(x, exponent: float):
  """``x ** exponent`` for an array. A half-integer ``exponent`` is an integer power of
  ``sqrt(x)`` (``x^(-1/2) = 1 / sqrt(x)``, correctly rounded divisions and roots): XLA's
  CPU backend vectorises those, where a general power is a scalar ``pow`` call per
  element (gaussian depth-4 ``u_xxx x u_xxx``: 10.8 -> 4.0 ms at N = 256)."""
  twice = 2 * exponent
  if twice != int(twice):
    return x ** exponent
  n = int(twice)
  if n % 2 == 0:
    return lax.integer_pow(x, n // 2)
  root = jnp.sqrt(x)
  return root * lax.integer_pow(x, n // 2) if n > 0 else lax.integer_pow(x, (n + 1) // 2) / root


def power(a, exponent: float):
  """``a ** exponent``; ``g^(j)(a0) = exponent (exponent - 1) .. (exponent - j + 1) a0^(exponent - j)``."""
  return powers(a, (exponent,))[0]


def powers(a, exponents: Sequence[float]) -> Tuple:
  """``(a ** e for e in exponents)``, sharing the powers ``a~^j`` (:func:`power`)."""
  if not isinstance(a, Jet):
    return tuple(real_power(a, e) for e in exponents)
  a0 = a.constant
  inv = 1.0 / a0
  n = _degree(a)
  shared = _powers(a, n)
  out = []
  for exponent in exponents:
    d = [real_power(a0, exponent)]
    for j in range(1, n + 1):
      d.append(d[-1] * ((exponent - j + 1) * inv))
    out.append(_compose(a, d, shared))
  return tuple(out)


def exp(a):
  """``exp(a)``; every derivative is ``exp(a0)``."""
  if not isinstance(a, Jet):
    return jnp.exp(a)
  e = jnp.exp(a.constant)
  return _compose(a, [e] * (_degree(a) + 1))


def exp_and_reciprocal(a) -> Tuple:
  """``(exp(a), exp(-a))``, sharing the powers ``a~^j``: the ``j``-th derivatives at ``a0``
  are ``exp(a0)`` and ``(-1)^j exp(-a0)``."""
  if not isinstance(a, Jet):
    return jnp.exp(a), jnp.exp(-a)
  n = _degree(a)
  e, inv = jnp.exp(a.constant), jnp.exp(-a.constant)
  powers = _powers(a, n)
  return (_compose(a, [e] * (n + 1), powers),
          _compose(a, [inv if j % 2 == 0 else -inv for j in range(n + 1)], powers))


def arcsin_and_roots(a, exponents: Sequence[float] = ()) -> Tuple:
  """``(arcsin(a), ((1 - a^2)^e for e in exponents))``, sharing the powers of ``a~``.

  ``h = (1 - u^2)^(-m/2)`` satisfies ``(1 - u^2) h' = m u h``; differentiating ``j`` times,
  ``(1 - u^2) h^(j+1) = (2j + m) u h^(j) + j (j - 1 + m) h^(j-1)``. ``arcsin' = h`` with
  ``m = 1``."""
  if not isinstance(a, Jet):
    return jnp.arcsin(a), tuple(real_power(1.0 - a * a, e) for e in exponents)
  u = a.constant
  inv = 1.0 / (1.0 - u * u)
  n = _degree(a)

  def derivatives(m, count):
    h = [real_power(inv, m / 2)]
    if count > 1:
      h.append(m * u * h[0] * inv)
    for j in range(1, count - 1):
      h.append(((2 * j + m) * u * h[j] + j * (j - 1 + m) * h[j - 1]) * inv)
    return h
  powers = _powers(a, n)
  asin = _compose(a, [jnp.arcsin(u)] + derivatives(1, n), powers)
  return asin, tuple(_compose(a, derivatives(-2 * e, n + 1), powers) for e in exponents)


def row(coefficients: Sequence[Optional[jnp.ndarray]], order: Tuple[int, int]) -> Jet:
  """A jet in ``s`` alone from ``coefficients[k]`` (``None`` = 0)."""
  return Jet({(k, 0): c for k, c in enumerate(coefficients) if c is not None}, order)


def col(coefficients: Sequence[Optional[jnp.ndarray]], order: Tuple[int, int]) -> Jet:
  """A jet in ``t`` alone from ``coefficients[l]`` (``None`` = 0)."""
  return Jet({(0, l): c for l, c in enumerate(coefficients) if c is not None}, order)
