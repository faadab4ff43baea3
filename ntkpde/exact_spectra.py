"""Exact kernel spectra that need no Gram matrix: references for ``ntkpde.spectrum``.

* Circulant matrices (a stationary kernel at equispaced points on the circle):
  the eigenvalues of ``C_ij = c_((j - i) mod n)`` are the discrete Fourier
  transform ``lambda_m = sum_j c_j exp(-2 pi i j m / n)`` (Gray, "Toeplitz and
  Circulant Matrices", Thm 3.1), real for a symmetric row ``c_j = c_(n-j)``.
* Dot-product kernels ``K(x, y) = k(x . y)`` on the sphere ``S^(d-1)``: by the
  Funk-Hecke formula every spherical harmonic of degree ``l`` is an eigenfunction
  of ``(L f)(x) = int k(x . y) f(y) d sigma(y)`` with eigenvalue
  ``mu_l = |S^(d-2)| int_(-1)^1 k(t) P_l(t) (1 - t^2)^((d-3)/2) dt``, where
  ``P_l = C_l^((d-2)/2) / C_l^((d-2)/2)(1)`` is the Legendre polynomial of
  dimension ``d`` (Gegenbauer; Chebyshev ``T_l`` for ``d = 2``) and the
  multiplicity is the dimension of the degree-``l`` harmonics (Atkinson & Han,
  "Spherical Harmonics and Approximations on the Unit Sphere", Thm 2.22, (2.10)).
  The NTK and NNGP of an MLP restricted to unit-norm inputs are such kernels.
"""
import math
from typing import Callable, Sequence

import numpy as np
from scipy import special

from ntkpde import _checks


def circulant_eigenvalues(first_row) -> np.ndarray:
  """Eigenvalues of the symmetric circulant matrix with this first row, indexed
  by frequency ``m = 0..n-1`` (not sorted); ``lambda_m = lambda_(n-m)``."""
  c = np.asarray(first_row, dtype=np.float64)
  if c.ndim != 1 or c.size == 0 or not np.all(np.isfinite(c)):
    raise ValueError(f"first_row must be a finite non-empty 1-d array, got shape {c.shape}.")
  mirrored = np.roll(c[::-1], 1)  # c_(n-j)
  scale = float(np.max(np.abs(c))) or 1.0
  if np.max(np.abs(c - mirrored)) > 1e3 * np.finfo(float).eps * scale:
    raise ValueError("first_row is not symmetric (c_j != c_(n-j)): the matrix is not a "
                     "symmetric circulant, so its eigenvalues are not real.")
  return np.fft.fft(c).real


def frequencies(n: int) -> np.ndarray:
  """``|m|`` for the DFT index ``m = 0..n-1`` (``min(m, n - m)``)."""
  m = np.arange(int(n))
  return np.minimum(m, int(n) - m)


def sphere_area(dim: int) -> float:
  """``|S^dim| = 2 pi^((dim+1)/2) / Gamma((dim+1)/2)`` (``|S^0| = 2`` points)."""
  return 2 * math.pi ** ((dim + 1) / 2) / math.gamma((dim + 1) / 2)


def harmonic_multiplicity(d: int, degree: int) -> int:
  """Dimension of the spherical harmonics of ``degree`` on ``S^(d-1)``:
  ``(2l + d - 2)/(l + d - 2) * binom(l + d - 2, l)``, 1 for ``l = 0``."""
  d, l = _dimension(d), int(degree)
  if l < 0:
    raise ValueError(f"degree must be >= 0, got {degree}.")
  if l == 0:
    return 1
  return (2 * l + d - 2) * math.comb(l + d - 2, l) // (l + d - 2)


def _dimension(d) -> int:
  return _checks.integer(d, "d", 2, "the ambient dimension of the sphere S^(d-1)")


def funk_hecke_eigenvalues(profile: Callable, d: int, degrees: Sequence[int],
                           quadrature_points: int = 200) -> np.ndarray:
  """``mu_l`` of ``k(x . y)`` on ``S^(d-1)`` (surface measure) for each degree.

  ``profile`` maps an array ``t`` in ``[-1, 1]`` to ``k(t)``. The integral uses
  Gauss-Gegenbauer quadrature with weight ``(1 - t^2)^((d-3)/2)`` (Gauss-Chebyshev
  for ``d = 2``) and ``quadrature_points`` nodes: exact for ``k`` polynomial of
  degree ``<= 2 quadrature_points - 1 - l``; exponentially accurate for analytic ``k``.
  """
  d = _dimension(d)
  given = np.asarray(degrees)
  degrees = given.astype(int)
  if degrees.ndim != 1 or np.any(degrees < 0) or np.any(degrees != given):
    raise ValueError(f"degrees must be a 1-d sequence of integers >= 0, got {given.tolist()}.")
  q = int(quadrature_points)
  if q <= int(degrees.max(initial=0)):
    raise ValueError(f"quadrature_points ({q}) must exceed the largest degree.")
  if d == 2:
    t, w = special.roots_chebyt(q)
    poly = np.stack([special.eval_chebyt(l, t) for l in degrees])
  else:
    alpha = (d - 2) / 2
    t, w = special.roots_gegenbauer(q, alpha)
    poly = np.stack([special.eval_gegenbauer(l, alpha, t) / special.eval_gegenbauer(l, alpha, 1.0)
                     for l in degrees])
  k = np.asarray(profile(t), dtype=np.float64)
  if k.shape != t.shape or not np.all(np.isfinite(k)):
    raise ValueError(f"profile(t) must return finite values of shape {t.shape}.")
  return sphere_area(d - 2) * (poly @ (w * k))


def dot_product_profile(kernel_fn: Callable, d: int, get: str = "ntk") -> Callable:
  """``t -> k(t)`` for a kernel of unit vectors in ``R^d``: evaluates
  ``kernel_fn(e_1, (t, sqrt(1 - t^2), 0, ...), get)``. For an MLP kernel (which
  depends on ``x . y``, ``|x|``, ``|y|``) this is the profile of the dot-product
  kernel it induces on ``S^(d-1)``."""
  d = _dimension(d)

  def profile(t):
    t = np.clip(np.asarray(t, dtype=np.float64), -1.0, 1.0)
    y = np.zeros((t.size, d))
    y[:, 0], y[:, 1] = t, np.sqrt(1 - t**2)
    e1 = np.zeros((1, d))
    e1[0, 0] = 1.0
    return np.asarray(kernel_fn(e1, y, get))[0].reshape(t.shape)
  return profile


def sphere_spectrum(mu: Sequence[float], d: int) -> np.ndarray:
  """The Funk-Hecke eigenvalues ``mu_l`` (degrees ``0..L``) repeated by their
  multiplicities and sorted descending: the operator's spectrum up to degree L."""
  d = _dimension(d)
  mu = np.asarray(mu, dtype=np.float64)
  return np.sort(np.concatenate([np.full(harmonic_multiplicity(d, l), m)
                                 for l, m in enumerate(mu)]))[::-1]
