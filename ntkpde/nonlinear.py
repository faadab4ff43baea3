"""Nonlinear PDEs by Gauss-Newton kernel collocation (Chen, Hosseini, Owhadi & Stuart 2021).

Problem: ``N_c[u](x) = f_c(x)`` at the points ``X_c`` of every channel ``c``, with
``N_c[u] = F_c(x, (D^alpha u(x))_{alpha in A_c})`` (:func:`ntkpde.operators.parse_nonlinear`).
The kernel solution is the minimum-norm ``u`` in the RKHS of ``K`` that satisfies the
equations. Its values are fixed by the *measurements*
``z = [D^alpha u(X_c)]_{c, alpha}``: ``u`` is the kernel interpolant of ``z``, with
Gram matrix ``Theta = [D^alpha_x D^beta_x' K(X_c, X_c')]`` (computed once, by
:func:`ntkpde.gram` with unit-coefficient operators ``D^alpha``). Gauss-Newton linearises
``F`` at the current measurements ``z_k`` (``M_k = dF/dz (z_k)``, one row per equation with
``|A_c|`` entries) and takes the minimum-norm solution of the linearised equations,

    z_{k+1} = Theta M_k^T gamma,   (M_k Theta M_k^T + R) gamma = f - F(z_k) + M_k z_k,     (1)

Chen et al. (2021), eq. (3.8) with their nugget ``R``; here ``R`` is ``nugget`` times the
mean diagonal of each channel's block of ``M_k Theta M_k^T``. The step is damped
(``z_k + s (z_{k+1} - z_k)``, ``s = 1, 1/2, ...``, at most ``MAX_HALVINGS`` halvings) only
when the full step would increase the root-mean-square residual ``|F(z) - f|`` (beyond
rounding: ``STALL``, ``FLOOR``) and is not below ``SMALL_STEP`` (whose residual changes
are rounding in systems with condition numbers to 1e16), so close
to a solution it is the plain Gauss-Newton step; far from one (steady Allen-Cahn from
``u_0 = 0``) the plain iteration can cycle. ``M_k Theta M_k^T`` is the
block Gram of the Frechet-linearised operators ``N_c'[u_k]``
(:meth:`ntkpde.operators.NonlinearOperator.linearize`), so each step is a linear kernel
collocation solve; assembling it from ``Theta`` avoids recompiling kernels per step.
The iterate is ``u_k(x) = sum_j [D^beta_j K(x, x_j)] w_j`` with weights
``w = M_k^T gamma`` on the measurement functionals.

The fixed points of (1) are the stationary points of
``J(z) = 1/2 z^T Theta^{-1} z + 1/2 (F(z) - f)^T R^{-1} (F(z) - f)``, with multipliers
``gamma = R^{-1} (f - F(z))``. Gauss-Newton drops the curvature term
``H = -sum_i gamma_i d^2F_i/dz^2`` of ``J``'s Hessian, so it converges only linearly when
the multipliers are large (an unresolved solution: the depth-2 erf NTK at 100 points
contracts by 0.35 per step). Once (1) is that slow (the relative update below
``NEWTON_SWITCH`` and shrinking by less than ``NEWTON_RATE`` per step) ``solve`` takes
Newton steps on ``J`` instead, ``H`` built from the last multipliers (sequential quadratic
programming; quadratic convergence near a solution): with ``Theta_H = (Theta^{-1} + H)^{-1}
= Theta - Theta P^T H_P (I + P Theta P^T H_P)^{-1} P Theta`` (Woodbury; ``P`` selects the
measurements ``F`` is not affine in, ``H_P`` the block-diagonal rest of ``H``),

    z_{k+1} = Theta_H (H z_k + M_k^T gamma),
    (M_k Theta_H M_k^T + R) gamma = f - F(z_k) + M_k z_k - M_k Theta_H H z_k,            (2)

with the same ``R`` as (1), so both have the same fixed points. Where (2) is singular the
step is (1); a damped Newton step returns the iteration to (1).

``kernel_fn(x1, x2, get)`` is any kernel: the NTK/NNGP of an ntkpde network, or the
Gaussian kernel :func:`gaussian_kernel` of the GP-PDE literature.

With an output map ``u = A + B N`` (:mod:`ntkpde.output_maps`) the unknown is ``v = u - A``
with the kernel ``B(x) B(x') K(x, x')`` (:class:`ntkpde.output_maps.ConstrainedKernel`),
and ``F`` is evaluated at the measurements of the whole ``u``: ``z + a`` with
``a = [D^alpha A(X_c)]`` (:meth:`ntkpde.output_maps.OutputMap.shift`); ``dF/dz`` is
unchanged. Boundary conditions built into ``A``, ``B`` hold exactly and their channels are
dropped.
"""
import dataclasses
import time
from typing import Callable, Optional, Sequence, Tuple

import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.sparse
import sympy

from ntkpde import operator_kernels, output_maps
from ntkpde.operators import LinearOperator, NonlinearOperator, Term

STALL = 1e-6
FLOOR = 1e-9        # residual changes below FLOOR * equation scale: rounding (and nugget) level
MAX_HALVINGS = 20
SMALL_STEP = 1e-4      # full steps below this relative update are taken undamped
NEWTON_SWITCH = 1e-2   # second-order steps once the relative update is below this ...
NEWTON_RATE = 0.2      # ... and Gauss-Newton contracts it by less than this per step


@dataclasses.dataclass(frozen=True)
class GaussianKernel:
  """``K(x, x') = exp(-sum_i (x_i - x'_i)^2 / (2 l_i^2))`` with the ``kernel_fn(x1, x2, get)``
  signature (``get`` is ignored: the same kernel serves as "ntk" and "nngp"). Hashable by
  value, so compiled operator kernels are shared between equal length scales."""
  lengthscale: Tuple[float, ...]
  max_operator_order = None

  @property
  def description(self) -> str:
    return f"Gaussian kernel, length scale {', '.join(f'{v:g}' for v in self.lengthscale)}"

  def __call__(self, x1, x2=None, get=None):
    x2 = x1 if x2 is None else x2
    scale = jnp.asarray(self.lengthscale, dtype=jnp.float64)
    diff = (x1[:, None, :] - x2[None, :, :]) / scale
    return jnp.exp(-0.5 * jnp.sum(diff ** 2, axis=-1))


def gaussian_kernel(lengthscale) -> GaussianKernel:
  """The Gaussian (RBF) kernel with one length scale or one per coordinate."""
  scales = tuple(float(v) for v in np.atleast_1d(lengthscale))
  if not scales or not all(np.isfinite(v) and v > 0 for v in scales):
    raise ValueError(f"lengthscale must be positive and finite, got {lengthscale!r}.")
  return GaussianKernel(scales)


class GaussNewtonDivergence(ArithmeticError):
  """The Gauss-Newton iteration diverged or did not converge; ``history`` holds its steps."""

  def __init__(self, message: str, history):
    super().__init__(message)
    self.history = history


@dataclasses.dataclass(frozen=True)
class Step:
  """One Gauss-Newton iteration: ``residual`` is the root mean square of ``F(z) - f`` over
  all equations after the step, ``update`` is ``|z_{k+1} - z_k| / |z_{k+1}|`` (``z``: the
  measurements of ``u``),
  ``step_size`` the damping factor taken, ``error`` the relative L2 error at the test
  points (if given), ``newton`` whether it was a Newton step (2) rather than (1)."""
  iteration: int
  residual: float
  update: float
  step_size: float
  error: Optional[float]
  seconds: float
  newton: bool = False


def _derivative_operator(coords, alpha) -> LinearOperator:
  return LinearOperator(tuple(coords), (Term(sympy.Integer(1), tuple(alpha)),))


@dataclasses.dataclass(frozen=True, eq=False)
class Solution:
  """The Gauss-Newton kernel solution: ``u(x) = sum_j [D^beta_j K(x, x_j)] weights_j``.

  ``history`` lists the :class:`Step` s, ``channels`` the measurement functionals
  ``D^alpha`` at the points ``X_c``, ``measurements`` the final ``D^alpha u(X_c)``;
  with an ``output`` map ``u = A + B N`` the sum runs over the kernel ``B B' K`` of ``u - A``
  and ``A`` is added."""
  kernel_fn: Callable
  get: str
  channels: Tuple[operator_kernels.Channel, ...]   # measurement functionals D^alpha at X_c
  weights: np.ndarray
  measurements: np.ndarray
  history: Tuple[Step, ...]
  condition_number: float        # 1-norm estimate, last linear system, nugget included
  seconds: float
  output: Optional[output_maps.OutputMap] = None

  def __call__(self, x) -> np.ndarray:
    """``u(x)`` at points ``x`` of shape ``(n, d)``."""
    v = _cross_matrix(self.kernel_fn, self.channels, x, self.get) @ self.weights
    return v if self.output is None else v + np.asarray(self.output.A(jnp.asarray(x)))


def _cross_matrix(kernel_fn, channels, x, get) -> np.ndarray:
  """``[D^beta_j K(x, x_j)]``: value kernels against every measurement functional."""
  coords = channels[0].operator.coords
  ident = _derivative_operator(coords, (0,) * len(coords))
  return operator_kernels.cross_kernel(kernel_fn, ident, channels, x, get)


def _check_equations(channels, targets):
  out = []
  if len(channels) != len(targets):
    raise ValueError(f"got {len(channels)} channels and {len(targets)} target arrays.")
  for ch, f in zip(channels, targets):
    name, op, points = ch
    if not isinstance(op, NonlinearOperator):
      raise TypeError(f"channel {name!r}: operator must be an ntkpde.operators."
                      f"NonlinearOperator (parse_nonlinear), got {type(op).__name__}.")
    points = operator_kernels._check_points(points, op, f"points of channel {name!r}")
    f = np.asarray(f, dtype=np.float64).reshape(-1)
    if f.shape != (len(points),) or not np.all(np.isfinite(f)):
      raise ValueError(f"targets of channel {name!r} must be {len(points)} finite numbers.")
    out.append((str(name), op, points, f))
  if len({op.coords for _, op, _, _ in out}) != 1:
    raise ValueError("all channels must use the same coordinates.")
  return out


def solve(kernel_fn: Callable, channels: Sequence, targets: Sequence, get: str = "ntk",
          nugget: float = 1e-10, tol: float = 1e-6, max_iterations: int = 20,
          x_test=None, exact=None, progress: Optional[Callable[[Step], None]] = None,
          output: Optional[output_maps.OutputMap] = None, second_order: bool = True
          ) -> Solution:
  """Gauss-Newton kernel collocation for ``N_c[u] = f_c`` on every channel (module docstring).

  ``channels``: ``[(name, NonlinearOperator, points (n_c, d))]`` (e.g.
  ``problem.sample().channels`` of a :class:`ntkpde.problems.NonlinearProblem`),
  ``targets``: one ``(n_c,)`` array per channel. Starts at ``u_0 = 0``; converged when the
  relative update of the measurements is below ``tol``, or when a full step leaves the
  residual stationary (change below ``STALL`` times the residual plus ``FLOOR`` times
  the scale of the equations, the larger of the root mean squares of ``f`` and of the
  initial residual ``F(z_0) - f``, which is not zero when ``f = 0``: the update has
  reached the rounding floor of the ill-conditioned system, about ``cond * eps``, or the
  nugget's), or when full steps below ``SMALL_STEP`` stop shrinking (the update's rounding
  floor); a stationary residual under damped steps is a stuck iteration, not a solution;
  else raises
  ``GaussNewtonDivergence``
  after ``max_iterations``. ``x_test`` with ``exact`` (values there) records the relative L2
  error per step; ``progress(step)`` is called after each step. Raises
  ``GaussNewtonDivergence`` if the residual becomes non-finite or grows above
  ``1e6`` times its largest earlier value, or if it has not converged after
  ``max_iterations`` (Gauss-Newton from ``u_0 = 0`` can leave the basin of a strongly
  nonlinear problem, or cycle when the problem has no solution). ``output``: an output map
  ``u = A + B N`` (module docstring); the iteration starts at ``u_0 = A``.
  ``second_order=False``: plain Gauss-Newton (1) throughout, no Newton steps (2).
  """
  start = time.perf_counter()
  if get not in operator_kernels.GETS:
    raise ValueError(f"get must be one of {operator_kernels.GETS}, got {get!r}.")
  if not (np.isfinite(nugget) and nugget >= 0):
    raise ValueError(f"nugget must be a finite number >= 0, got {nugget!r}.")
  if not (np.isfinite(tol) and tol > 0) or int(max_iterations) < 1:
    raise ValueError(f"need tol > 0 and max_iterations >= 1, got {tol!r}, {max_iterations!r}.")
  equations = _check_equations(channels, targets)
  if (x_test is None) != (exact is None):
    raise ValueError("pass x_test and exact together (or neither).")
  if output is not None:
    output_maps.check_channels(output, [eq[:3] for eq in equations])
    kernel_fn = output_maps.ConstrainedKernel(kernel_fn, output)
  measures, index = _measurements(equations)
  shift = (np.zeros(sum(len(c.points) for c in measures)) if output is None
           else output.shifts(measures))
  theta = np.asarray(operator_kernels.gram(kernel_fn, measures, get).matrix)
  cross = None
  if x_test is not None:
    cross = _cross_matrix(kernel_fn, tuple(measures), x_test, get)
    exact = np.asarray(exact, dtype=np.float64).reshape(-1)
    a_test = 0.0 if output is None else np.asarray(output.A(jnp.asarray(x_test)))
  f = np.concatenate([eq[3] for eq in equations])
  z, weights = np.zeros(len(theta)), np.zeros(len(theta))
  values, grads = _linearise(equations, index, z + shift)
  residual = _rms(values - f)
  history, worst = [], residual
  floor = FLOOR * max(_rms(f), residual)
  converged, cond = False, np.inf
  sizes = [len(eq[2]) for eq in equations]
  gamma, newton, previous_update = None, False, None
  for iteration in range(1, int(max_iterations) + 1):
    tic = time.perf_counter()
    M = _sparse_rows(grads, index, len(z))
    rhs = f - values + M @ z
    m_theta = np.asarray(M @ theta)
    regulariser = _nugget(np.asarray(M.multiply(m_theta).sum(axis=1)).ravel(), sizes, nugget)
    step_weights = None
    if newton:
      hessian = _sparse_hessian(equations, index, z + shift, -gamma)
      step_weights, newton_gamma, newton_cond = _newton_step(theta, M, hessian, z, rhs,
                                                             regulariser)
    if step_weights is None:
      newton = False
      gamma, cond = _solve_psd(_symmetric(m_theta @ M.T) + np.diag(regulariser), rhs)
      step_weights = M.T @ gamma
    else:
      gamma, cond = newton_gamma, newton_cond
    direction = step_weights - weights
    # Backtracking: the full Gauss-Newton step unless it increases the residual (beyond
    # rounding, STALL); else the best of the halved steps.
    size, best = 1.0, None
    for _ in range(MAX_HALVINGS + 1):
      trial_z = theta @ (weights + size * direction)
      trial_values, trial_grads = _linearise(equations, index, trial_z + shift)
      trial_residual = _rms(trial_values - f)
      trial_residual = trial_residual if np.isfinite(trial_residual) else np.inf
      trial = (trial_residual, size, trial_z, trial_values, trial_grads)
      small = size == 1 and (np.linalg.norm(trial_z - z)
                             <= SMALL_STEP * np.linalg.norm(trial_z + shift))
      if small or trial_residual <= residual * (1 + STALL) + floor:   # no rise beyond rounding
        best = trial
        break
      if best is None or trial_residual < best[0]:
        best = trial
      size /= 2
    residual, size, z_new, values, grads = best
    weights = weights + size * direction
    update = float(np.linalg.norm(z_new - z) / max(np.linalg.norm(z_new + shift), 1e-300))
    previous, z = history[-1].residual if history else None, z_new
    error = None
    if cross is not None:
      error = float(np.linalg.norm(cross @ weights + a_test - exact) / np.linalg.norm(exact))
    step = Step(iteration, residual, update, size, error, time.perf_counter() - tic, newton)
    history.append(step)
    if progress is not None:
      progress(step)
    if not np.isfinite(residual) or residual > 1e6 * worst:
      raise GaussNewtonDivergence(
          f"Gauss-Newton diverged at iteration {iteration}: residual {residual:.3e} (largest "
          f"earlier {worst:.3e}). Try a larger nugget, more collocation points or a "
          f"different kernel scale.", tuple(history))
    stalled = previous is not None and abs(residual - previous) <= STALL * residual + floor
    # Full steps below SMALL_STEP that stop shrinking are rounding noise: the floor.
    at_floor = previous_update is not None and SMALL_STEP >= update >= previous_update
    worst = max(worst, residual)
    if size == 1 and (update <= tol or stalled or at_floor):   # damped steps never converge
      converged = True
      break
    slow = previous_update is not None and update > NEWTON_RATE * previous_update
    newton = second_order and size == 1 and (
        newton or (SMALL_STEP < update <= NEWTON_SWITCH and slow))
    previous_update = update if size == 1 else None
  if not converged:
    last = history[-1]
    raise GaussNewtonDivergence(
        f"Gauss-Newton did not converge in {max_iterations} iterations: last update "
        f"{last.update:.3e} (tol {tol:g}), residual {last.residual:.3e}. The problem may have "
        f"no solution near the start (u = 0; A with an output map), or the system is too "
        f"ill-conditioned (condition estimate {cond:.1e}): raise the nugget or "
        f"max_iterations.", tuple(history))
  return Solution(kernel_fn, get, tuple(measures), weights, z + shift, tuple(history), cond,
                  time.perf_counter() - start, output)


def _sparse_hessian(equations, index, z, multipliers):
  """Sparse ``sum_i multipliers_i d^2F_i/dz^2`` (block diagonal: one ``|A_c| x |A_c|`` block
  per equation ``i``, at the columns ``index[c][:, i]``)."""
  rows, cols, vals, start = [], [], [], 0
  for (_, op, points, _), idx in zip(equations, index):
    n = len(points)
    blocks = np.asarray(op.hessian(points, jnp.asarray(z[idx].T)))   # (n, m, m)
    blocks = blocks * multipliers[start:start + n, None, None]
    for a in range(idx.shape[0]):
      for b in range(idx.shape[0]):
        rows.append(idx[a])
        cols.append(idx[b])
        vals.append(blocks[:, a, b])
    start += n
  out = scipy.sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                        np.concatenate(cols))), shape=(len(z),) * 2)
  out.eliminate_zeros()
  return out


def _newton_step(theta, M, H, z, rhs, regulariser):
  """The Newton step (2) of the module docstring: the weights ``w_{k+1}`` with
  ``z_{k+1} = Theta w_{k+1}``, the new multipliers and the condition estimate, or
  ``(None, None, None)`` when its system is singular or not finite (the caller falls back to
  Gauss-Newton)."""
  used = np.unique(H.nonzero()[0])
  if len(used) == 0:
    return None, None, None
  Hs = H[used][:, used].toarray()
  inner = np.eye(len(used)) + theta[np.ix_(used, used)] @ Hs
  theta_p = theta[used]                               # P Theta
  try:
    correction = np.linalg.solve(inner, theta_p)      # (I + C Hs)^{-1} P Theta
  except np.linalg.LinAlgError:
    return None, None, None
  modified = theta - theta_p.T @ (Hs @ correction)    # (Theta^{-1} + H)^{-1}
  Hz = H @ z
  system = _symmetric(np.asarray(M @ _symmetric(modified)) @ M.T) + np.diag(regulariser)
  factor = scipy.linalg.lu_factor(system, check_finite=False)
  rcond, info = scipy.linalg.lapack.dgecon(factor[0], np.abs(system).sum(axis=0).max())
  if info != 0 or not rcond > 0:
    return None, None, None
  gamma = scipy.linalg.lu_solve(factor, rhs - M @ (modified @ Hz))
  v = Hz + M.T @ gamma
  weights = v - np.zeros_like(v)
  weights[used] -= Hs @ np.linalg.solve(inner, (theta @ v)[used])
  if not np.all(np.isfinite(weights)):
    return None, None, None
  return weights, gamma, 1.0 / rcond


def _measurements(equations):
  """Measurement functionals ``D^alpha`` at ``X_c`` (as channels) and, per equation channel,
  the ``(|A_c|, n_c)`` positions of its measurements in ``z``."""
  measures, index, offset = [], [], 0
  for name, op, points, _ in equations:
    rows = []
    for alpha in op.multi_indices:
      measures.append(operator_kernels.Channel(f"{name}:{alpha}",
                                               _derivative_operator(op.coords, alpha), points))
      rows.append(np.arange(offset, offset + len(points)))
      offset += len(points)
    index.append(np.stack(rows))
  return tuple(measures), index


def gradient_descent(kernel_fn: Callable, channels: Sequence, targets: Sequence, steps,
                     learning_rate: float, x_test, get: str = "ntk", relinearize: bool = True
                     ) -> Tuple[np.ndarray, np.ndarray]:
  """Infinite-width gradient descent on a nonlinear physics loss.

  A network ``u(x; theta)`` centred at initialisation (``u_0 = 0``), trained by gradient
  descent with step ``eta`` on ``L = 1/(2n) sum_i r_i^2``, ``r = N[u](X) - f``, moves at
  infinite width (constant NTK ``Theta``) as ``u_{k+1}(x) = u_k(x) - c sum_i [N'[u_k]_{x'}
  Theta(x, x_i)] r_i(k)`` with ``c = learning_rate`` (``eta / n``): the residual NTK is the
  operator kernel of the operator linearised at the *current* function (Wang, Yu &
  Perdikaris 2022, eq. (4.6), with ``N'[u_k]`` in place of a fixed ``T``). In the
  measurement representation of :func:`solve`, ``u_k = sum_j [D^beta_j Theta(., x_j)] w_j``,
  ``z = Theta_meas w`` and ``w_{k+1} = w_k - c M(z_k)^T (F(z_k) - f)``.

  ``relinearize=True`` iterates this exactly (the relinearising, time-stepped dynamics);
  ``relinearize=False`` is the lazy closed form: the residual linearised at ``u_0``,
  ``r_k = (I - c K_0)^k r_0`` with ``K_0 = M_0 Theta_meas M_0^T`` the operator NTK of
  ``N'[u_0]`` (:func:`ntkpde.predict.residual_flow`), and ``u_k = Theta_x M_0^T a_k`` with
  ``K_0 a_k = r_k - r_0``. Returns ``(u at x_test per step (len(steps), n_test),
  root-mean-square residual per step)``; ``steps`` are non-negative integers.
  """
  from ntkpde.predict import residual_flow
  equations = _check_equations(channels, targets)
  steps = np.asarray(steps)
  if steps.ndim != 1 or not np.issubdtype(steps.dtype, np.integer) or np.any(steps < 0):
    raise ValueError(f"steps must be a 1-D array of non-negative integers, got {steps!r}.")
  if not (np.isfinite(learning_rate) and learning_rate > 0):
    raise ValueError(f"learning_rate must be positive, got {learning_rate!r}.")
  measures, index = _measurements(equations)
  theta = np.asarray(operator_kernels.gram(kernel_fn, measures, get).matrix)
  cross = _cross_matrix(kernel_fn, measures, x_test, get)
  f = np.concatenate([eq[3] for eq in equations])
  w = np.zeros(len(theta))
  values, grads = _linearise(equations, index, theta @ w)
  if not relinearize:
    M = _sparse_rows(grads, index, len(w))
    K0 = np.asarray((M @ theta) @ M.T)
    r0 = values - f
    r = residual_flow(K0, r0, learning_rate=learning_rate).steps(steps)
    a = np.linalg.lstsq(K0, (r - r0).T, rcond=None)[0]
    return (cross @ (M.T @ a)).T, np.sqrt(np.mean(r ** 2, axis=1))
  order = np.argsort(steps)
  outputs, norms, done = np.empty((len(steps), len(cross))), np.empty(len(steps)), 0
  for j in order:
    for _ in range(int(steps[j]) - done):
      M = _sparse_rows(grads, index, len(w))
      w = w - learning_rate * (M.T @ (values - f))
      values, grads = _linearise(equations, index, theta @ w)
      if not np.all(np.isfinite(values)):
        raise GaussNewtonDivergence(f"gradient descent diverged before step {steps[j]}: lower "
                                    f"the learning rate.", ())
    done = int(steps[j])
    outputs[j], norms[j] = cross @ w, _rms(values - f)
  return outputs, norms


def _rms(r) -> float:
  return float(np.sqrt(np.mean(r ** 2)))


def _linearise(equations, index, z):
  """``F_c(x, z_c)`` for every equation and its gradients ``dF_c/dz`` per channel."""
  values, grads = [], []
  for (_, op, points, _), idx in zip(equations, index):
    derivs = jnp.asarray(z[idx].T)               # (n_c, |A_c|)
    values.append(np.asarray(op.evaluate(points, derivs)))
    grads.append(np.asarray(op.gradient(points, derivs)))
  return np.concatenate(values), grads


def _sparse_rows(grads, index, n):
  """Sparse ``M``: row ``i`` of channel ``c`` holds ``dF_c/dp_alpha`` at column
  ``index[c][alpha, i]`` (``|A_c|`` entries per row)."""
  rows, cols, vals, start = [], [], [], 0
  for g, idx in zip(grads, index):
    r = np.arange(start, start + g.shape[0])
    for a in range(idx.shape[0]):
      rows.append(r)
      cols.append(idx[a])
      vals.append(g[:, a])
    start += g.shape[0]
  return scipy.sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                         np.concatenate(cols))), shape=(start, n))


def _symmetric(a):
  return (a + a.T) / 2


def _nugget(diagonal, sizes, nugget):
  """The diagonal of ``R``: ``nugget`` times the mean of ``diagonal`` (that of
  ``M Theta M^T``) over each channel's block."""
  out, start = np.empty(len(diagonal)), 0
  for n in sizes:
    out[start:start + n] = nugget * max(float(np.mean(diagonal[start:start + n])), 0.0)
    start += n
  return out


def _solve_psd(system, rhs):
  """Cholesky solve; ``ValueError`` suggesting a nugget when ``system`` is not positive
  definite to working precision. Returns the solution and the 1-norm condition estimate
  (LAPACK ``pocon``)."""
  try:
    factor = scipy.linalg.cho_factor(system, lower=True)
  except np.linalg.LinAlgError:
    raise ValueError("the linearised collocation system is not positive definite to working "
                     "precision; pass a larger nugget (e.g. 1e-8).") from None
  rcond, _ = scipy.linalg.lapack.dpocon(factor[0], np.abs(system).sum(axis=0).max(), uplo="L")
  return scipy.linalg.cho_solve(factor, rhs), (1.0 / rcond if rcond > 0 else np.inf)
