"""Reference solutions of nonlinear benchmark problems that have no closed form.

* :func:`burgers_cole_hopf`: viscous Burgers ``u_t + u u_x = nu u_xx`` on ``[-1, 1]``,
  ``u(x, 0) = -sin(pi x)``, ``u(+-1, t) = 0``, by the Cole-Hopf transform (Cole 1951; Hopf
  1950; the form of Basdevant et al. 1986, eq. (3.4)):

      u(x, t) = - int sin(pi (x - eta)) g(x - eta) exp(-eta^2 / (4 nu t)) d eta
                  / int g(x - eta) exp(-eta^2 / (4 nu t)) d eta,
      g(y) = exp(-cos(pi y) / (2 pi nu)),

  evaluated by composite Gauss-Legendre quadrature in ``s = eta / sqrt(4 nu t)`` over
  ``|s| <= 14`` (the Gaussian factor is below ``e^-196``, the log-range of ``g`` is
  ``1 / (pi nu)``, so the neglected tail is below ``e^-196 + 1/(pi nu)`` relative; the test
  bounds it for ``nu >= 0.01/pi``), with the exponents shifted by their maximum (``g``
  spans ``e^{+-50}`` at ``nu = 0.01/pi``).
* :func:`eikonal_regularised`: ``|grad u|^2 + eps Lap u = 1`` on ``[0, 1]^2``, ``u = 0`` on
  the boundary. With ``u = eps log v`` it becomes the linear ``eps^2 Lap v = v``, ``v = 1`` on
  the boundary (Chen et al. 2021, Sec. 3.3), solved by 5-point finite differences on grids
  of spacing ``h`` and ``h / 2`` with Richardson extrapolation (``O(h^4)``) and bicubic
  interpolation.
"""
import functools

import numpy as np
import scipy.interpolate
import scipy.sparse
import scipy.sparse.linalg

_PANELS, _NODES, _SPAN = 400, 16, 14.0


@functools.lru_cache(maxsize=1)
def _rule():
  """Composite Gauss-Legendre nodes and weights on ``[-_SPAN, _SPAN]``."""
  t, w = np.polynomial.legendre.leggauss(_NODES)
  edges = np.linspace(-_SPAN, _SPAN, _PANELS + 1)
  half = np.diff(edges) / 2
  mid = (edges[:-1] + edges[1:]) / 2
  return (mid[:, None] + half[:, None] * t).ravel(), (half[:, None] * w).ravel()


def burgers_cole_hopf(points, params) -> np.ndarray:
  """``u(x, t)`` at ``points`` ``(n, 2)`` (columns ``x, t``) for ``params["nu"]``."""
  nu = float(params["nu"])
  if not nu > 0:
    raise ValueError(f"nu must be positive, got {nu}.")
  points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
  x, t = points[:, 0], points[:, 1]
  if np.any(t < 0):
    raise ValueError("Burgers reference: t must be >= 0.")
  s, w = _rule()
  out = -np.sin(np.pi * x)
  for start in range(0, len(points), 256):
    rows = slice(start, start + 256)
    late = t[rows] > 0
    if not np.any(late):
      continue
    xx, tt = x[rows][late, None], t[rows][late, None]
    y = xx - np.sqrt(4 * nu * tt) * s[None, :]
    exponent = -np.cos(np.pi * y) / (2 * np.pi * nu) - s[None, :] ** 2
    weight = w[None, :] * np.exp(exponent - exponent.max(axis=1, keepdims=True))
    value = -(weight * np.sin(np.pi * y)).sum(axis=1) / weight.sum(axis=1)
    piece = out[rows]
    piece[late] = value
    out[rows] = piece
  return out


def _dirichlet_helmholtz(m: int, eps: float) -> np.ndarray:
  """``v`` on the ``(m + 2)^2`` grid of ``[0, 1]^2`` (boundary included) solving the
  5-point ``eps^2 Lap_h v = v``, ``v = 1`` on the boundary."""
  h = 1.0 / (m + 1)
  main = np.full(m, -2.0)
  second = scipy.sparse.diags([np.ones(m - 1), main, np.ones(m - 1)], [-1, 0, 1]) / h ** 2
  eye = scipy.sparse.identity(m)
  A = eps ** 2 * (scipy.sparse.kron(second, eye) + scipy.sparse.kron(eye, second)) - \
      scipy.sparse.identity(m * m)
  # Boundary values 1 move to the right-hand side: -eps^2 / h^2 per boundary neighbour.
  b = np.zeros((m, m))
  b[0, :] -= 1
  b[-1, :] -= 1
  b[:, 0] -= 1
  b[:, -1] -= 1
  v = scipy.sparse.linalg.spsolve(A.tocsc(), eps ** 2 / h ** 2 * b.ravel()).reshape(m, m)
  full = np.ones((m + 2, m + 2))
  full[1:-1, 1:-1] = v
  return full


@functools.lru_cache(maxsize=4)
def _eikonal_interpolant(eps: float, cells: int):
  coarse = _dirichlet_helmholtz(cells - 1, eps)
  fine = _dirichlet_helmholtz(2 * cells - 1, eps)[::2, ::2]
  v = (4 * fine - coarse) / 3
  axis = np.linspace(0.0, 1.0, cells + 1)
  return scipy.interpolate.RectBivariateSpline(axis, axis, eps * np.log(v), kx=3, ky=3)


def eikonal_regularised(points, params, cells: int = 256) -> np.ndarray:
  """``u(x, y)`` at ``points`` ``(n, 2)`` in ``[0, 1]^2`` for ``params["eps"]`` (module
  docstring); ``cells`` grid cells per axis on the coarse grid."""
  eps = float(params["eps"])
  if not eps > 0:
    raise ValueError(f"eps must be positive, got {eps}.")
  points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
  if np.any(points < 0) or np.any(points > 1):
    raise ValueError("Eikonal reference: points must lie in [0, 1]^2.")
  return _eikonal_interpolant(eps, int(cells))(points[:, 0], points[:, 1], grid=False)
