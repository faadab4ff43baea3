"""Top eigenvalues of kernel matrices too large to form: block subspace iteration
over a tiled, matrix-free kernel product.

The ``N x N`` matrix ``K`` (``K_ij = k(x_i, x_j)``, optionally Nystrom-weighted
``w_i^(1/2) K_ij w_j^(1/2)``) is never stored whole: each pass evaluates every
``tile x tile`` tile of the upper triangle once and applies it (and its
transpose) to a block of ``b`` vectors, so memory is ``O(N b + D tile^2)`` (two tiles
in flight on each of ``D`` JAX devices) and the kernel is evaluated ``N^2 / 2`` times per
pass. Tiles are kept between passes while they fit in ``cache_bytes``.

Algorithm: randomized block subspace iteration with Rayleigh-Ritz (Halko,
Martinsson & Tropp 2011, Alg. 4.3 and 5.3; Saad, "Numerical Methods for Large
Eigenvalue Problems", Sec. 5.2): ``Y = K Q``, Ritz pairs of ``Q^T Y``; the
residual ``r_j = ||K v_j - theta_j v_j||`` is available from ``Y`` without an
extra pass and bounds the error: some eigenvalue of ``K`` lies within ``r_j`` of
``theta_j`` (Parlett, "The Symmetric Eigenvalue Problem", Thm 4.5.1). The Ritz
value ``theta_j`` converges like ``(lambda_(b+1) / lambda_j)^(2 p)`` after ``p``
passes, fast for kernels whose spectrum decays.
"""
import dataclasses
import time
from typing import Callable, Optional

import numpy as np

from ntkpde.operator_kernels import default_tile, device_tiles

DEFAULT_CACHE_BYTES = 2 << 30


@dataclasses.dataclass(frozen=True)
class TopEigen:
  """``values`` (descending), their residual bounds ``residuals``, the Ritz
  vectors (``None`` unless requested), passes done, kernel tiles evaluated,
  seconds, and whether every residual met the tolerance."""
  values: np.ndarray
  residuals: np.ndarray
  vectors: Optional[np.ndarray]
  passes: int
  tiles_evaluated: int
  seconds: float
  converged: bool


class TiledKernelMatrix:
  """``K(X, X)`` (optionally ``W^(1/2) K W^(1/2)``) as a matrix-free symmetric
  operator on blocks of vectors, from ``kernel(x1, x2) -> (n1, n2)`` called on
  ``tile x tile`` tiles of one shape (edge tiles are padded: one compilation).

  Tiles are spread over every visible JAX device by
  :func:`ntkpde.operator_kernels.device_tiles` and applied on the host in a fixed
  order, so the result does not depend on the number of devices. A kernel from
  :func:`ntkpde.operator_kernel` is evaluated through its compiled tile function
  (``kernel.tile_fn``); any other callable is called on device-placed blocks (a JAX
  function then runs on that device)."""

  def __init__(self, kernel: Callable, points, tile: Optional[int] = None, weights=None,
               cache_bytes: int = DEFAULT_CACHE_BYTES):
    x = np.asarray(points, dtype=np.float64)
    if x.ndim == 1:
      x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 2 or not np.all(np.isfinite(x)):
      raise ValueError(f"points must be a finite (N, d) array with N >= 2, got shape {x.shape}.")
    coords = getattr(kernel, "coords", None)
    if coords is not None and x.shape[1] != len(coords):
      raise ValueError(f"points must have shape (N, {len(coords)}) for the kernel's coordinates "
                       f"{list(coords)}, got {x.shape}.")
    if tile is None:
      tile = getattr(kernel, "tile", None) or default_tile()
    if int(tile) < 1:
      raise ValueError(f"tile must be >= 1, got {tile}.")
    self.points, self.n, self.tile = x, x.shape[0], min(int(tile), x.shape[0])
    if weights is None:
      self.root_w = None
    else:
      w = np.asarray(weights, dtype=np.float64)
      if w.shape != (self.n,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"weights must be ({self.n},) finite and > 0, got shape {w.shape}.")
      self.root_w = np.sqrt(w)
    self.tile_fn = getattr(kernel, "tile_fn", kernel)
    self.cache_bytes = int(cache_bytes)
    self._cache = {}
    self.tiles_evaluated = 0

  def _padded(self, start: int) -> np.ndarray:
    piece = self.points[start:start + self.tile]
    return np.concatenate([piece, np.repeat(piece[:1], self.tile - len(piece), 0)])

  def _task(self, i: int, j: int):
    return (self._padded(i), self._padded(j), min(self.tile, self.n - i),
            min(self.tile, self.n - j))

  def _finish(self, i: int, j: int, block: np.ndarray, bad: int) -> np.ndarray:
    """A freshly evaluated tile: checked, weighted, cached while it fits."""
    if bad:
      raise FloatingPointError(f"kernel tile ({i}, {j}) has {bad} NaN/inf entries.")
    if self.root_w is not None:
      block = self.root_w[i:i + len(block), None] * block * self.root_w[None, j:j + block.shape[1]]
    self.tiles_evaluated += 1
    if (len(self._cache) + 1) * self.tile**2 * 8 <= self.cache_bytes:
      self._cache[(i, j)] = block
    return block

  def matmat(self, q: np.ndarray, log: Optional[Callable[[str], None]] = None) -> np.ndarray:
    """``K @ q`` for ``q`` of shape ``(N, b)``: one pass over the upper triangle."""
    y = np.zeros_like(q)
    starts = range(0, self.n, self.tile)
    pairs = [(i, j) for i in starts for j in range(i, self.n, self.tile)]
    todo = [(i, j) for i, j in pairs if (i, j) not in self._cache]
    fresh = device_tiles(self.tile_fn, (self._task(i, j) for i, j in todo))
    rows, last = len(starts), starts[-1]
    for i, j in pairs:
      block = self._cache.get((i, j))
      if block is None:
        block = self._finish(i, j, *next(fresh))
      y[i:i + block.shape[0]] += block @ q[j:j + block.shape[1]]
      if j != i:
        y[j:j + block.shape[1]] += block.T @ q[i:i + block.shape[0]]
      r = i // self.tile
      if j == last and log is not None and (r + 1) % max(1, rows // 8) == 0:
        log(f"  tile row {r + 1}/{rows}")
    return y


def top_eigenvalues(kernel: Callable, points, k: int, block: Optional[int] = None,
                    max_passes: int = 6, tol: float = 1e-10, tile: Optional[int] = None,
                    weights=None, seed: int = 0, vectors: bool = False,
                    cache_bytes: int = DEFAULT_CACHE_BYTES,
                    log: Optional[Callable[[str], None]] = None) -> TopEigen:
  """The ``k`` largest eigenvalues of ``K(X, X)`` (``X = points``) without forming it.

  ``kernel(x1, x2)`` returns the ``(n1, n2)`` block, e.g.
  ``ntkpde.operator_kernel(kernel_fn, T)``; ``weights`` makes it the Nystrom
  matrix ``W^(1/2) K W^(1/2)``. ``block`` vectors (default ``k + max(10, k // 4)``)
  are iterated for at most ``max_passes`` passes, stopping when every residual
  ``r_j`` (``j <= k``) is ``<= tol * theta_1``. Each pass costs one evaluation of
  the upper triangle of tiles (fewer when they fit in ``cache_bytes``).
  ``vectors=True`` also returns the Ritz vectors (of the weighted matrix when
  ``weights`` are given). ``tile`` defaults to the kernel's own (``kernel.tile``, chosen
  by :func:`ntkpde.operator_kernel` for its route), else to
  :func:`ntkpde.operator_kernels.default_tile` (from device memory); the tiles are
  spread over every visible JAX device (:class:`TiledKernelMatrix`).
  """
  op = TiledKernelMatrix(kernel, points, tile, weights, cache_bytes)
  k = int(k)
  b = k + max(10, k // 4) if block is None else int(block)
  if not 1 <= k <= b <= op.n:
    raise ValueError(f"need 1 <= k <= block <= N: k={k}, block={b}, N={op.n}.")
  if int(max_passes) < 1 or not tol > 0:
    raise ValueError(f"max_passes must be >= 1 and tol > 0, got {max_passes}, {tol}.")
  start = time.perf_counter()
  q = np.linalg.qr(np.random.default_rng(seed).standard_normal((op.n, b)))[0]
  for p in range(1, int(max_passes) + 1):
    y = op.matmat(q, log)
    h = q.T @ y
    theta, u = np.linalg.eigh((h + h.T) / 2)
    theta, u = theta[::-1], u[:, ::-1]
    residuals = np.linalg.norm(y @ u - (q @ u) * theta, axis=0)
    converged = bool(np.all(residuals[:k] <= tol * abs(theta[0])))
    if log is not None:
      log(f"pass {p}: theta_1 = {theta[0]:.6e}, theta_{k} = {theta[k - 1]:.3e}, max residual "
          f"/ theta_1 = {residuals[:k].max() / abs(theta[0]):.2e}, "
          f"{time.perf_counter() - start:.1f} s")
    if converged or p == int(max_passes):
      break
    q = np.linalg.qr(y)[0]
  return TopEigen(values=theta[:k].copy(), residuals=residuals[:k].copy(),
                  vectors=(q @ u[:, :k]) if vectors else None, passes=p,
                  tiles_evaluated=op.tiles_evaluated, seconds=time.perf_counter() - start,
                  converged=converged)
