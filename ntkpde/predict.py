"""Closed-form infinite-width training dynamics of physics-informed networks.

Linearised gradient flow (Jacot et al. 2018; Lee et al. 2019) on the weighted
physics loss ``L = 1/(2n) r^T A r`` (``A = diag(w)`` for per-channel weights;
neural-tangents' ``1/n`` normalisation, n = number of residuals) moves the
residuals ``r = T u(X) - f`` of all channels as

    dr/dt = -(eta / n) K A r,        K = [T_a,x T_b,x' Theta(X_a, X_b)]_{a,b},     (1)

with ``K`` the block operator NTK (:func:`ntkpde.gram`). :func:`residual_flow`
solves (1) and its gradient-descent recursion ``r_{k+1} = (I - eta' K A) r_k``
from one factorisation; :func:`gradient_descent_mse_ensemble` gives the mean and
covariance of ``T_test u_t(x_test)`` over the infinite ensemble, as
``neural_tangents.predict.gradient_descent_mse_ensemble`` does for plain regression.

Factorisations. If ``A`` is symmetric positive semi-definite, ``A = B^2`` with
``B = A^{1/2}`` and ``K A = B^{-1} S B`` with the symmetric ``S = c B K B = U diag(l) U^T``
(``c`` the learning rate), so ``exp(-c K A t) = B^{-1} U e^{-l t} U^T B`` from one
``eigh``. When ``B`` is singular (a zero weight) the same series gives
``exp(-c K A t) = I - c K B U diag(phi(l, t)) U^T B`` with ``phi(l, t) = (1 - e^{-l t}) / l``
(``= t`` at ``l = 0``), because ``A (K A)^k = B S^k B / c^k``. Otherwise (non-symmetric
or indefinite ``A``) ``K A = V diag(l) V^{-1}`` by ``eig`` when ``V`` is well
conditioned, else ``scipy.linalg.expm`` per time.

Linear algebra runs in NumPy/SciPy float64 (LAPACK ``eigh``, ``eig``, ``pocon``, ``expm``);
kernels come from JAX.
"""
import dataclasses
import warnings
from typing import Callable, Optional, Sequence

import numpy as np
import scipy.linalg

from ntkpde import _checks, operators, output_maps
from ntkpde.operator_kernels import (BlockGram, as_channels, check_gram_memory, compile_blocks,
                                     cross_kernel, gram, operator_kernel)
from ntkpde.spectrum import as_matrix
from ntkpde.weights import RULES, Weights, per_residual

EPS = np.finfo(np.float64).eps
# eig route: the error of V f(l) V^{-1} r is about eps * cond(V) relative; above this
# condition number (error > ~1e-8) the flow falls back to expm.
MAX_EIGVEC_COND = 1e7
# Symmetric route with an invertible square root B: the error of B^{-1}(...)B r is about
# eps * cond(B); above this we use the phi form instead, whose error is eps * ||r0||.
MAX_SQRT_COND = 1e6
GETS = ("ntk", "nngp")


def _as_times(t, what: str = "t") -> np.ndarray:
  arr = np.asarray(t, dtype=np.float64)
  if arr.ndim > 1:
    raise ValueError(f"{what} must be a scalar or a 1-D array, got shape {arr.shape}.")
  if np.any(np.isnan(arr)) or np.any(arr < 0):
    raise ValueError(f"{what} must be >= 0 (inf allowed), got {t!r}.")
  return arr


def _check_kernel(K, what: str = "K") -> np.ndarray:
  """``K`` as a finite square float64 matrix that is not all zero."""
  K = as_matrix(K, what)
  if not np.any(K):
    raise ValueError(f"the kernel Gram matrix {what} is zero (e.g. W_std = 0): the network does "
                     f"not move, so there are no dynamics to compute. Use W_std > 0.")
  return K


def _tolerance(lam: np.ndarray) -> float:
  """Eigenvalues of ``c K A`` below this (``n eps lambda_max``) are zero to working precision:
  they are rounding on exact zero modes, which the flow never moves, so every spectral
  function below treats them as exactly zero at every time."""
  return len(lam) * EPS * float(np.abs(lam).max(initial=0.0))


def _stable_rate(lam: np.ndarray) -> float:
  """Supremum of ``c`` with ``|1 - c l| < 1`` for the eigenvalues ``l`` of ``K A``
  (``2 / lambda_max`` for real positive ``l``; ``min 2 Re(l) / |l|^2`` in general; 0 if one has
  a negative real part; inf if all are zero)."""
  lam = lam[np.abs(lam) > _tolerance(lam)]
  if lam.size == 0:
    return np.inf
  if np.any(np.real(lam) < 0):
    return 0.0
  return float(np.min(2 * np.real(lam) / np.abs(lam) ** 2))


def max_stable_learning_rate(K, weights: Weights = None) -> float:
  """The largest stable step ``eta`` of gradient descent on ``L = 1/(2n) r^T A r``.

  The residuals move as ``r_{k+1} = (I - (eta/n) K A) r_k``, which converges iff
  ``|1 - (eta/n) l| < 1`` on every non-zero eigenvalue ``l`` of ``K A``: for symmetric PSD
  ``A``, ``eta < 2 n / lambda_max(K A)``. This is the ``learning_rate`` of
  :func:`gradient_descent_mse_ensemble`, :func:`ntkpde.training.train` and ``ntkpde solve``;
  for :func:`residual_flow` (no ``1/n``) divide by ``n``
  (``ResidualFlow.max_stable_learning_rate``). ``weights`` as in
  :func:`ntkpde.weights.per_residual` over the residuals of ``K``."""
  K = _check_kernel(K)
  n = len(K)
  A = per_residual(weights, {"residuals": n})
  return n * _stable_rate(_decompose(K, A, 1.0).lam)


def _exp_fns(t: np.ndarray, tol: float):
  """``h(l) = exp(-l t)`` and ``g(l) = (1 - h(l)) / l`` over times ``t`` (shape ``(n_t, n)``).

  ``g`` is ``t`` at ``l = 0`` (series ``t (1 - l t / 2)`` where ``|l t| < 1e-8``, error
  ``(l t)^2 / 6 < 1e-16``). Modes with ``|l| <= tol`` are rounding on exact zero modes: at
  every ``t`` they keep ``h = 1`` (they do not move) and ``g = 0`` (an exact zero mode of
  ``c B K B`` carries no gain: ``K B u = 0`` implies ``Theta(x, X) B u = 0``), so a large
  finite ``t`` agrees with ``t = inf``, where ``h = 0`` and ``g = 1 / l`` on the other modes."""
  finite = np.isfinite(t)[:, None]
  tt = np.where(finite, t[:, None], 0.0)

  def h(lam):
    zero = np.abs(lam[None, :]) <= tol
    with np.errstate(over="ignore"):
      moving = np.where(finite, np.exp(-lam[None, :] * tt), 0.0)
    return np.where(zero, 1.0, moving)

  def g(lam):
    lam2 = lam[None, :]
    x = lam2 * tt
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
      direct = -np.expm1(-x) / lam2
      inf_value = 1.0 / lam2
    series = tt * (1 - x / 2)
    moving = np.where(finite, np.where(np.abs(x) < 1e-8, series, direct), inf_value)
    return np.where(np.abs(lam2) <= tol, 0.0, moving)
  return h, g


def _power_fns(k: np.ndarray, tol: float):
  """``h(l) = (1 - l)^k`` and ``g(l) = (1 - h(l)) / l = sum_{j<k} (1 - l)^j`` (``k`` at ``l = 0``;
  ``-expm1(k log1p(-l)) / l`` for ``|l| < 1/2`` keeps small eigenvalues accurate); modes with
  ``|l| <= tol`` are exact zero modes (``h = 1``), as in :func:`_exp_fns`."""
  kk = k[:, None].astype(np.float64)

  def h(lam):
    with np.errstate(over="ignore", invalid="ignore"):
      return np.where(np.abs(lam[None, :]) <= tol, 1.0, (1 - lam[None, :]) ** kk)

  def g(lam):
    lam2 = lam[None, :]
    small = np.abs(lam2) < 0.5
    safe = np.where(small, lam2, 0.25)
    with np.errstate(divide="ignore", invalid="ignore"):
      accurate = np.where(lam2 == 0, kk, -np.expm1(kk * np.log1p(-safe)) / np.where(lam2 == 0, 1, safe))
      direct = (1 - (1 - lam2) ** kk) / np.where(small, 1, lam2)
    return np.where(small, accurate, direct)
  return h, g


@dataclasses.dataclass(frozen=True, eq=False)
class _Decomposition:
  """One factorisation of ``M = c K A`` (see the module docstring for the routes)."""
  method: str               # "eigh", "eigh-phi", "eig" or "expm"
  K: np.ndarray
  A: np.ndarray             # as given: vector (diagonal) or matrix
  c: float
  lam: np.ndarray           # eigenvalues of M (real on the symmetric routes)
  U: Optional[np.ndarray] = None       # eigenvectors: of S (eigh routes) or of M (eig)
  U_inv: Optional[np.ndarray] = None   # U^{-1} (eig route)
  B: Optional[np.ndarray] = None       # A^{1/2}, vector or matrix (eigh routes)
  B_inv: Optional[np.ndarray] = None   # A^{-1/2} ("eigh" route)

  @property
  def n(self) -> int:
    return len(self.K)

  @property
  def M(self) -> np.ndarray:
    return self.c * (self.K * self.A[None, :] if self.A.ndim == 1 else self.K @ self.A)

  @staticmethod
  def _left(D: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``diag(D) x`` or ``D x``."""
    return D[:, None] * x if D.ndim == 1 else D @ x

  def propagate(self, h, g, r0: np.ndarray) -> np.ndarray:
    """``h(M) r0`` for spectral functions ``h`` (with ``h(0) = 1``) and ``g = (1 - h) / l``;
    returns ``(n_t, n)``."""
    if self.method == "eigh":      # B^{-1} U h U^T B r0
      coeff = self.U.T @ self._left(self.B, r0[:, None])[:, 0]
      z = (h(self.lam) * coeff[None, :]) @ self.U.T
      return self._left(self.B_inv, z.T).T
    if self.method == "eigh-phi":  # r0 - K B U g U^T B r0 (c inside l)
      coeff = self.U.T @ self._left(self.B, r0[:, None])[:, 0]
      z = self.U @ (g(self.lam) * coeff[None, :]).T
      return r0[None, :] - (self.c * self.K @ self._left(self.B, z)).T
    if self.method == "eig":       # V h V^{-1} r0
      coeff = self.U_inv @ r0
      return np.real((h(self.lam) * coeff[None, :]) @ self.U.T)
    raise AssertionError(self.method)

  def gain_factors(self):
    """``(left, right)`` with ``G(t) = c A int_0^t exp(-c K A s) ds = left diag(g(l, t)) right``,
    ``g`` of :func:`_exp_fns`."""
    if self.method in ("eigh", "eigh-phi"):
      left = self.c * self._left(self.B, self.U)
      return left, left.T / self.c
    if self.method == "eig":
      return self.c * self._left(self.A, self.U), self.U_inv
    raise AssertionError(self.method)


def _sqrt_psd(A: np.ndarray):
  """``(A^{1/2}, A^{-1/2} or None)`` for a symmetric PSD matrix or a non-negative vector
  (``A^{-1/2}`` only when ``cond(A^{1/2}) <= MAX_SQRT_COND``); ``None`` otherwise."""
  if A.ndim == 1:
    if np.any(A < 0):
      return None
    B = np.sqrt(A)
    ok = np.all(A > 0) and np.sqrt(A.max() / A.min()) <= MAX_SQRT_COND
    return B, (1 / B if ok else None)
  scale = max(np.abs(A).max(), 1e-300)
  if not np.allclose(A, A.T, rtol=0, atol=1e3 * EPS * scale):
    return None
  w, V = np.linalg.eigh((A + A.T) / 2)
  if w.min() < -_tolerance(w):
    return None
  w = np.clip(w, 0, None)
  B = (V * np.sqrt(w)) @ V.T
  ok = w.min() > 0 and np.sqrt(w.max() / w.min()) <= MAX_SQRT_COND
  return B, ((V / np.sqrt(np.where(w > 0, w, 1))) @ V.T if ok else None)


def _decompose(K: np.ndarray, A: np.ndarray, c: float) -> _Decomposition:
  root = _sqrt_psd(A)
  if root is not None:
    B, B_inv = root
    BKB = (B[:, None] * K * B[None, :]) if B.ndim == 1 else B @ K @ B
    lam, U = np.linalg.eigh(c * (BKB + BKB.T) / 2)
    return _Decomposition("eigh" if B_inv is not None else "eigh-phi", K, A, c, lam, U, None,
                          B, B_inv)
  d = _Decomposition("expm", K, A, c, np.zeros(len(K)))
  lam, V = scipy.linalg.eig(d.M)
  cond = np.linalg.cond(V)
  if np.isfinite(cond) and cond <= MAX_EIGVEC_COND:
    return _Decomposition("eig", K, A, c, lam, V, np.linalg.inv(V))
  return dataclasses.replace(d, lam=lam)


def _check_limit(d: "_Decomposition", what: str) -> None:
  """``ValueError`` unless the flow of ``d`` has a ``t = inf`` limit (diagonalisable, no
  eigenvalue with negative real part beyond rounding)."""
  if d.method == "expm":
    raise ValueError(f"t = inf is not available when {what} is not diagonalisable (expm route); "
                     f"pass a large finite t.")
  if np.any(np.real(d.lam) < -_tolerance(d.lam)):
    raise ValueError(f"t = inf does not exist: {what} has eigenvalues with negative real part "
                     f"(min {np.real(d.lam).min():.3e}); the flow diverges.")


class ResidualFlow:
  """Solution of ``dr/dt = -c K A r``, ``r(0) = r0``, from one factorisation.

  ``flow(t)`` gives ``r(t)`` for a scalar or 1-D array ``t`` (shape ``t.shape + (n,)``;
  ``t = inf`` gives the limit: modes with eigenvalue 0 (to ``n eps lambda_max``) keep
  their value, the others vanish; it exists when no eigenvalue of ``K A`` has a
  negative real part). ``flow.steps(k)`` gives gradient descent
  ``r_k = (I - c K A)^k r0``. Attributes: ``eigenvalues`` (of ``c K A``),
  ``method`` (``"eigh"``, ``"eigh-phi"``, ``"eig"`` or ``"expm"``),
  ``max_stable_learning_rate``.
  """

  def __init__(self, decomposition: _Decomposition, r0: np.ndarray):
    self._d = decomposition
    self.r0 = r0

  @property
  def method(self) -> str:
    return self._d.method

  @property
  def eigenvalues(self) -> np.ndarray:
    return self._d.lam

  @property
  def max_stable_learning_rate(self) -> float:
    """The supremum of learning rates for which ``steps`` does not diverge: ``2 / lambda_max(K A)``
    for symmetric PSD ``A`` (``|1 - c l| < 1``); in general ``min 2 Re(l) / |l|^2`` over the
    non-zero eigenvalues ``l`` of ``K A`` (0 if one has a negative real part)."""
    return _stable_rate(self._d.lam / self._d.c)

  def __call__(self, t) -> np.ndarray:
    times = _as_times(t)
    flat = np.atleast_1d(times)
    d = self._d
    if np.any(np.isinf(flat)):
      _check_limit(d, "K A")
    if d.method == "expm":
      out = np.stack([scipy.linalg.expm(-d.M * s) @ self.r0 for s in flat])
    else:
      out = d.propagate(*_exp_fns(flat, _tolerance(d.lam)), self.r0)
    return out.reshape(times.shape + (d.n,))

  def steps(self, k) -> np.ndarray:
    """Gradient descent ``r_k = (I - c K A)^k r0`` for integers ``k >= 0`` (scalar or 1-D)."""
    ks = _checks.step_counts(k, "k", allow_scalar=True)
    flat = np.atleast_1d(ks)
    d = self._d
    limit = self.max_stable_learning_rate
    if d.c > limit * (1 + 1e-9) and np.any(flat > 0):
      warnings.warn(f"learning_rate {d.c:.6g} is above max_stable_learning_rate = {limit:.6g} "
                    f"(2 / lambda_max(K A)): gradient descent diverges; the residuals grow "
                    f"geometrically with k.", RuntimeWarning, stacklevel=2)
    if d.method == "expm":
      step = np.eye(d.n) - d.M
      out = np.stack([np.linalg.matrix_power(step, int(j)) @ self.r0 for j in flat])
    else:
      out = d.propagate(*_power_fns(flat, _tolerance(d.lam)), self.r0)
    return out.reshape(ks.shape + (d.n,))


def residual_flow(K, r0, weights=None, learning_rate: float = 1.0,
                  signed: bool = False) -> ResidualFlow:
  """The residuals ``r(t)`` of ``dr/dt = -learning_rate * K A r``, ``r(0) = r0``.

  ``K`` is an ``(n, n)`` kernel (e.g. ``gram(...).matrix``), ``weights`` is ``A``: a
  vector (diagonal) or an ``(n, n)`` matrix (default: identity), a loss weighting (``>= 0``
  or with a PSD symmetric part, not zero: :func:`ntkpde.weights.per_residual`) unless
  ``signed=True``, which accepts any finite real ``A`` (the general linear flow, e.g.
  ``A = -G`` of adversarial training; it may grow, and ``t = inf`` may not exist).
  No ``1/n`` is applied:
  pass ``learning_rate = eta / n`` for the loss ``1/(2n) r^T A r`` with step ``eta``.
  Symmetric PSD ``A``: one ``eigh`` of ``c A^{1/2} K A^{1/2}``; otherwise ``eig`` of
  ``c K A`` with an eigenvector-condition check (``MAX_EIGVEC_COND``) and
  ``scipy.linalg.expm`` as the fallback. Returns a :class:`ResidualFlow`.
  """
  K = _check_kernel(K)
  n = len(K)
  r0 = np.asarray(r0, dtype=np.float64)
  if r0.shape != (n,):
    raise ValueError(f"r0 must have shape ({n},) to match K, got {r0.shape}.")
  if not np.all(np.isfinite(r0)):
    raise ValueError("r0 has NaN or inf entries.")
  A = per_residual(weights, {"residuals": n}, signed=signed)
  if not (np.isfinite(learning_rate) and learning_rate > 0):
    raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}.")
  return ResidualFlow(_decompose(K, A, float(learning_rate)), r0)


def _check_targets(targets, chans) -> np.ndarray:
  if isinstance(targets, np.ndarray) and targets.ndim == 1 and len(chans) == 1:
    targets = [targets]
  targets = list(targets)
  if len(targets) != len(chans):
    raise ValueError(f"targets must hold one array per channel ({[c.name for c in chans]}), "
                     f"got {len(targets)}.")
  out = []
  for ch, y in zip(chans, targets):
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (len(ch.points),):
      raise ValueError(f"targets of channel {ch.name!r} must have shape ({len(ch.points)},), "
                       f"got {y.shape}.")
    if not np.all(np.isfinite(y)):
      raise ValueError(f"targets of channel {ch.name!r} have NaN or inf entries.")
    out.append(y)
  return np.concatenate(out)


def _add_diagonal_regularizer(K: np.ndarray, diag_reg: float) -> np.ndarray:
  """``K + diag_reg * Tr(K)/n * I``: neural-tangents' relative diagonal regulariser."""
  return K + diag_reg * np.trace(K) / len(K) * np.eye(len(K))


def gradient_descent_mse_ensemble(kernel_fn: Callable, channels: Sequence, targets: Sequence,
                                  learning_rate: float = 1.0, weights: Weights = None,
                                  diag_reg: float = 0.0, ntk_gram=None,
                                  output: Optional[output_maps.OutputMap] = None) -> Callable:
  """Mean and covariance of the infinite ensemble of PINNs trained on the weighted physics loss.

  Setting: ``u(x; theta)`` with ``u_0 ~ GP(0, K)`` (NNGP prior) is trained by gradient
  flow ``d theta/dt = -eta grad L`` on ``L = 1/(2n) sum_c w_c sum_{i in c} (T_c u(x_i) - y_i)^2``
  (``channels`` as for :func:`ntkpde.gram`, ``targets`` one ``(n_c,)`` array per channel,
  ``weights`` as in :func:`ntkpde.weights.per_residual`: ``A`` below). Linearised, with
  ``Theta`` the block NTK of the channels (``K`` the block NNGP Gram),
  ``Theta_tx = [T_test,x T_c,x' Theta(x_test, X_c)]_c`` and ``c = eta / n``:

      G(t) = c A int_0^t exp(-c Theta A s) ds          (= Theta^{-1}(I - exp(-c Theta A t)) if A > 0)
      mean(t) = Theta_tx G(t) y
      cov(t)  = K_tt - P K_xt - K_tx P^T + P K P^T,    P = Theta_tx G(t),

  which for one identity channel with ``A = I`` are neural-tangents' formulas
  (``gradient_descent_mse_ensemble``, get="ntk"); ``get="nngp"`` uses the NNGP Gram in
  place of ``Theta`` (readout-only training; the covariance then equals nt's
  ``K_tt - K_tx K^{-1}(I - exp(-2 c K t)) K_xt``; with ``diag_reg`` the prior uses the
  regularised Gram there, as nt does). ``G`` comes from one factorisation
  (see the module docstring): for ``A = B^2`` symmetric PSD,
  ``G(t) = c B U diag((1 - e^{-l t})/l) U^T B`` with ``c B Theta B = U diag(l) U^T``.
  At ``t = inf`` (``t=None``) ``G`` is the limit of the flow in the same eigenbasis,
  ``c B U diag(1/l) U^T B`` over the modes with ``l > n eps l_max``: eigenvalues at rounding
  level are exact zero modes, which the flow never moves (and which carry no gain at any
  ``t``), so a rank-deficient ``Theta`` needs no regulariser and a large finite ``t`` tends
  to ``t = inf`` (for invertible ``Theta`` and ``A > 0``, ``G = Theta^{-1}``; with zero
  weights, ``Theta_PP^{-1}`` on the channels of positive weight).

  ``diag_reg`` adds ``diag_reg * Tr(Theta)/n * I`` to the training Gram (nt's relative
  regulariser; it changes the answer, so use it only to model a ridge). ``ntk_gram`` is
  the channels' NTK Gram (``ntkpde.gram(kernel_fn, channels, "ntk")`` or its matrix) when
  the caller already has it; it is used instead of being computed again. An all-zero Gram
  (e.g. ``W_std = 0``) raises ``ValueError``.

  ``output``: a hard-constraint output map ``u = A + B N`` (:mod:`ntkpde.output_maps`).
  The ensemble is then that of ``u - A``, with the kernels ``B(x) B(x') K(x, x')`` and the
  targets ``y_c - T_c A(X_c)``, and ``T_test A(x_test)`` is added to the mean (``A`` is
  fixed: the covariance is that of ``u - A``). Where ``B = 0`` the mean is ``A`` at every
  ``t``; a channel of ``u`` alone at such points is refused. ``ntk_gram`` is then the Gram of
  the constrained kernel. Returns ``predict_fn(t=None, x_test=None, get="ntk", compute_cov=False,
  test_operator=None)``: ``t`` a scalar or 1-D array of times in optimiser steps
  (``None`` = inf), ``x_test`` ``(n_test, d)`` points (``None``: the training residual
  points, with ``T_c`` on each channel), ``test_operator`` ``T_test`` (default: identity,
  i.e. ``u`` itself; needs ``x_test``). Returns the mean, shape ``t.shape + (n_test,)``, or
  ``(mean, cov)`` with cov of shape ``t.shape + (n_test, n_test)``.
  """
  chans = as_channels(channels)
  y = _check_targets(targets, chans)
  if output is not None:
    output_maps.check_channels(output, chans)
    kernel_fn = output_maps.ConstrainedKernel(kernel_fn, output)
    shift = output.shifts(chans)
    y = y - shift
  sizes = {c.name: len(c.points) for c in chans}
  n = len(y)
  coords = chans[0].operator.coords
  if not (np.isfinite(learning_rate) and learning_rate > 0):
    raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}.")
  if not (np.isfinite(diag_reg) and diag_reg >= 0):
    raise ValueError(f"diag_reg must be a non-negative number, got {diag_reg!r}.")
  if isinstance(weights, str) and weights not in RULES:
    raise ValueError(f"unknown weight rule {weights!r}; rules are {sorted(RULES)}.")
  grams, decompositions, resolved = {}, {}, {}
  if ntk_gram is not None:
    grams["ntk"] = _check_kernel(getattr(ntk_gram, "matrix", ntk_gram), "ntk_gram")
    if grams["ntk"].shape != (n, n):
      raise ValueError(f"ntk_gram must be the ({n}, {n}) NTK Gram of the channels, got shape "
                       f"{grams['ntk'].shape}; pass ntkpde.gram(kernel_fn, channels, 'ntk').")

  def train_gram(get):
    if get not in grams:
      grams[get] = _check_kernel(gram(kernel_fn, chans, get).matrix, f"{get} Gram of the channels")
    return grams[get]

  def weight_matrix():
    if "A" not in resolved:
      g = BlockGram(train_gram("ntk"), tuple(sizes), sizes) if isinstance(weights, str) else None
      resolved["A"] = per_residual(weights, sizes, g)
    return resolved["A"]

  if not isinstance(weights, str):
    weight_matrix()  # validates before any kernel work

  def decomposition(get):
    if get not in decompositions:
      K = _add_diagonal_regularizer(train_gram(get), diag_reg)
      decompositions[get] = _decompose(K, weight_matrix(), learning_rate / n)
    return decompositions[get]

  def prior(get):
    # The NNGP prior of the training residuals. For get="nngp" neural-tangents uses the
    # regularised Gram for the prior too (the flow kernel is the prior kernel); we match it.
    return _add_diagonal_regularizer(train_gram("nngp"), diag_reg) if get == "nngp" else (
        train_gram("nngp"))

  def test_kernels(x_test, get, test_operator, compute_cov):
    if x_test is None:
      k_td = _add_diagonal_regularizer(train_gram(get), diag_reg)
      return k_td, prior(get) if compute_cov else None, prior(get) if compute_cov else None
    k_td = cross_kernel(kernel_fn, test_operator, chans, x_test, get)
    if not compute_cov:
      return k_td, None, None
    nngp_td = k_td if get == "nngp" else cross_kernel(kernel_fn, test_operator, chans, x_test,
                                                       "nngp")
    k_tt = np.asarray(operator_kernel(kernel_fn, test_operator, test_operator, "nngp")(x_test))
    return k_td, nngp_td, k_tt

  def compile_kernels(x_test, get, test_operator, compute_cov):
    # Every Gram and cross block this call will compute, compiled side by side in one wave.
    gets = {get, "nngp"} if compute_cov else {get}
    if gets - set(grams):
      check_gram_memory(n)  # gram's own refusal, before any compilation
    blocks = [(chans[i].operator, chans[j].operator, chans[i].points,
               None if i == j else chans[j].points, g)
              for g in gets - set(grams) for i in range(len(chans)) for j in range(i, len(chans))]
    if x_test is not None:
      blocks += [(test_operator, c.operator, x_test, c.points, g) for g in gets for c in chans]
      if compute_cov:
        blocks.append((test_operator, test_operator, x_test, None, "nngp"))
    compile_blocks(kernel_fn, blocks)

  def check_limit(get):
    _check_limit(decomposition(get), "Theta A")

  def finite_times(t, get, k_td, nngp_td, k_tt):
    d = decomposition(get)
    if d.method == "expm":
      return _finite_times_expm(d, t, y, k_td, nngp_td, k_tt, prior(get))
    _, g = _exp_fns(t, _tolerance(d.lam))
    gv = g(d.lam)                                     # (n_t, n)
    left, right = d.gain_factors()
    L = k_td @ left
    mean = np.real((gv * (right @ y)[None, :]) @ L.T)
    if k_tt is None:
      return mean, None
    R = right @ nngp_td.T
    Q = right @ prior(get) @ right.T
    covs = []
    for row in gv:
      Lg = L * row[None, :]                           # Theta_tx G(t) = Lg right
      cross = np.real(Lg @ R)
      covs.append(k_tt - cross - cross.T + np.real(Lg @ Q @ Lg.T))
    return mean, np.stack(covs)

  def predict_fn(t=None, x_test=None, get: str = "ntk", compute_cov: bool = False,
                 test_operator=None):
    if get not in GETS:
      raise ValueError(f"get must be one of {GETS}, got {get!r}.")
    times = None if t is None else _as_times(t)
    if test_operator is not None and not isinstance(test_operator, operators.LinearOperator):
      raise TypeError("test_operator must be an ntkpde.operators.LinearOperator.")
    if test_operator is not None and test_operator.coords != coords:
      raise ValueError(f"test_operator acts on {test_operator.coords}, the channels on {coords}.")
    if x_test is not None:
      x_test = np.asarray(x_test, dtype=np.float64)
      if x_test.ndim == 1 and len(coords) == 1:
        x_test = x_test[:, None]
      if x_test.ndim != 2 or x_test.shape[1] != len(coords) or not np.all(np.isfinite(x_test)):
        raise ValueError(f"x_test must be a finite array of shape (n_test, {len(coords)}), got "
                         f"{x_test.shape}.")
    if x_test is None and test_operator is not None:
      raise ValueError("test_operator needs x_test: without x_test the prediction is T_c u on each "
                       "training channel's own points. Pass x_test=... with test_operator.")
    if test_operator is None:
      test_operator = operators.identity(coords)
    compile_kernels(x_test, get, test_operator, compute_cov)
    k_td, nngp_td, k_tt = test_kernels(x_test, get, test_operator, compute_cov)
    flat = np.atleast_1d(np.inf if times is None else times)
    if np.any(np.isinf(flat)):
      check_limit(get)
    mean, cov = finite_times(flat, get, k_td, nngp_td, k_tt)
    if output is not None:
      mean = mean + (shift if x_test is None else np.asarray(output.shift(test_operator)(x_test)))
    shape = () if times is None else times.shape
    mean = mean.reshape(shape + mean.shape[1:])
    if not compute_cov:
      return mean
    return mean, cov.reshape(shape + cov.shape[1:])

  return predict_fn


def _finite_times_expm(d: _Decomposition, t, y, k_td, nngp_td, k_tt, prior):
  """``G(t) = c A int_0^t exp(-M s) ds`` by Van Loan's block exponential
  ``expm([[-M, I], [0, 0]] t) = [[e^{-M t}, int_0^t e^{-M s} ds], [0, I]]``."""
  n = d.n
  block = np.zeros((2 * n, 2 * n))
  block[:n, :n] = -d.M
  block[:n, n:] = np.eye(n)
  means, covs = [], []
  for s in t:
    integral = scipy.linalg.expm(block * s)[:n, n:]
    G = d.c * _Decomposition._left(d.A, integral)
    P = k_td @ G
    means.append(P @ y)
    if k_tt is not None:
      cross = P @ nngp_td.T
      covs.append(k_tt - cross - cross.T + P @ prior @ P.T)
  return np.stack(means), (np.stack(covs) if k_tt is not None else None)
