"""Quadrature rules (points and weights) for Nystrom discretisations of kernel
integral operators ``(L f)(x) = int K(x, y) f(y) d mu(y)``.

With a rule ``sum_j w_j f(x_j) ~ int f d mu``, the eigenvalues of
``W^(1/2) K(X, X) W^(1/2)`` (``ntkpde.spectrum.eigenvalues(G, weights=w)``)
approximate those of ``L`` (Nystrom 1930; Atkinson, "The Numerical Solution of
Integral Equations of the Second Kind", Sec. 4.1); for an analytic kernel they
converge as fast as the rule does on the kernel's rows. Weights sum to the
measure of the domain (Lebesgue on a box, arc length on the circle, surface area
on the sphere).
"""
from typing import Sequence, Tuple

import numpy as np

from ntkpde import _checks


def _count(n, name: str) -> int:
  return _checks.integer(n, name)


def gauss_legendre_box(lower: Sequence[float], upper: Sequence[float], n_per_axis: int
                       ) -> Tuple[np.ndarray, np.ndarray]:
  """Tensor Gauss-Legendre rule on the box ``[lower, upper]``: ``n_per_axis^d``
  points ``(N, d)`` and weights ``(N,)``; exact for polynomials of degree
  ``<= 2 n_per_axis - 1`` in each coordinate."""
  n = _count(n_per_axis, "n_per_axis")
  lo, hi = np.atleast_1d(np.asarray(lower, float)), np.atleast_1d(np.asarray(upper, float))
  if lo.shape != hi.shape or lo.ndim != 1 or not np.all(np.isfinite(lo) & np.isfinite(hi)) \
     or np.any(hi <= lo):
    raise ValueError(f"need finite 1-d bounds with upper > lower, got {lower}, {upper}.")
  t, w = np.polynomial.legendre.leggauss(n)
  axes = [(lo[i] + hi[i]) / 2 + (hi[i] - lo[i]) / 2 * t for i in range(lo.size)]
  weights = [(hi[i] - lo[i]) / 2 * w for i in range(lo.size)]
  points = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
  weight = np.ones(1)
  for wi in weights:
    weight = np.multiply.outer(weight, wi).ravel()
  return points, weight


def circle(n: int) -> Tuple[np.ndarray, np.ndarray]:
  """``n`` equispaced angles ``theta_j = 2 pi j / n`` as ``(n, 1)`` points, weights
  ``2 pi / n`` (the trapezoidal rule: spectrally accurate for periodic functions)."""
  n = _count(n, "n")
  return (2 * np.pi * np.arange(n) / n)[:, None], np.full(n, 2 * np.pi / n)


def sphere2(n_polar: int) -> Tuple[np.ndarray, np.ndarray]:
  """Product rule on the unit sphere ``S^2``: Gauss-Legendre in ``z = cos(polar)``
  (``n_polar`` nodes) times ``2 n_polar`` equispaced azimuths. ``2 n_polar^2``
  unit vectors ``(N, 3)`` and weights summing to ``4 pi``; exact for spherical
  harmonics of degree ``<= 2 n_polar - 1``."""
  n = _count(n_polar, "n_polar")
  z, wz = np.polynomial.legendre.leggauss(n)
  phi = 2 * np.pi * np.arange(2 * n) / (2 * n)
  zz, pp = np.meshgrid(z, phi, indexing="ij")
  r = np.sqrt(1 - zz**2)
  points = np.stack([r * np.cos(pp), r * np.sin(pp), zz], axis=-1).reshape(-1, 3)
  weights = np.multiply.outer(wz, np.full(2 * n, 2 * np.pi / (2 * n))).ravel()
  return points, weights
