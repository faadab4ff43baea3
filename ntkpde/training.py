"""Training finite-width PINNs on the weighted physics loss, in ntkpde's units.

Loss and time units are those of :mod:`ntkpde.predict` (see there):

    L(theta) = 1/(2n) sum_c w_c sum_{i in c} r_i(theta)^2 = 1/(2n) r^T A r,
    theta_{k+1} = theta_k - eta grad L(theta_k),        t = k (steps),

so for a linear(ised) network the residuals follow ``r_k = (I - (eta/n) K A)^k r_0``
exactly, and in the infinite-width limit ``K`` is the analytic block Gram
(:func:`ntkpde.gram`). :func:`train` records the per-channel losses, the residuals,
the parameter drift ``||theta_k - theta_0||`` and, optionally, the empirical kernel
``K_k`` (:func:`ntkpde.finite.empirical_gram`) at checkpoints; :func:`linearize` gives
the first-order Taylor network ``u_lin(x; theta) = u(x; theta_0) + J(x) (theta -
theta_0)`` (Lee et al. 2019, eq. (5)), the middle reference between the finite network
and the kernel prediction. Adam (optax) is available as an option; its time units are
steps as well but it follows no kernel flow.
"""
import dataclasses
import functools
from typing import Callable, Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ntkpde import _checks, _compat
from ntkpde.finite import channel_data, check_network, empirical_gram, stacked_residuals
from ntkpde.predict import residual_flow
from ntkpde.weights import per_residual

OPTIMIZERS = ("gd", "adam")
# train() stops with FloatingPointError when the loss exceeds its start by this factor.
DIVERGENCE_FACTOR = 1e6


def linearize(apply_fn: Callable, params0) -> Callable:
  """``(params, x) -> u(x; params0) + d_theta u(x; params0) . (params - params0)``."""
  def apply_lin(params, x):
    delta = jax.tree_util.tree_map(lambda p, q: p - q, params, params0)
    value, tangent = jax.jvp(lambda p: apply_fn(p, x), (params0,), (delta,))
    return value + tangent
  return apply_lin


@dataclasses.dataclass(frozen=True)
class TrainingResult:
  """Trajectory at the checkpoint steps ``steps`` (step 0 included).

  ``residuals`` ``(n_ckpt, n)``; ``losses`` ``{channel: (n_ckpt,)}`` with
  ``1/(2n) w_c sum_{i in c} r_i^2`` (their sum is ``L``; for a matrix ``A`` the
  diagonal blocks ``1/(2n) r_c^T A_cc r_c``, without the cross terms); ``drift`` ``(n_ckpt,)`` is
  ``||theta_k - theta_0||_2``; ``kernels`` ``(n_ckpt, n, n)`` empirical block Grams or
  ``None``; ``params`` the final parameters; ``names``/``sizes`` the channels;
  ``predictions`` ``(n_ckpt, n_test)`` the network ``u(x_test)`` at the checkpoints, or
  ``None`` without ``x_test``."""
  steps: np.ndarray
  residuals: np.ndarray
  losses: Dict[str, np.ndarray]
  drift: np.ndarray
  kernels: Optional[np.ndarray]
  params: object
  names: tuple
  sizes: Dict[str, int]
  predictions: Optional[np.ndarray] = None

  @property
  def kernel_change(self) -> np.ndarray:
    """``||K_k - K_0||_F / ||K_0||_F`` at the checkpoints (needs ``record_kernel=True``)."""
    if self.kernels is None:
      raise ValueError("train(..., record_kernel=True) records the kernels.")
    k0 = self.kernels[0]
    return np.linalg.norm(self.kernels - k0, axis=(1, 2)) / np.linalg.norm(k0)


def _check_steps(steps, checkpoints) -> np.ndarray:
  if int(steps) != steps or steps < 0:
    raise ValueError(f"steps must be a non-negative integer, got {steps!r}.")
  if checkpoints is None:
    points = np.unique(np.linspace(0, steps, min(int(steps), 50) + 1).astype(int))
  else:
    points = np.asarray(checkpoints)
    if points.ndim != 1 or not np.issubdtype(points.dtype, np.integer) or np.any(points < 0) \
        or np.any(points > steps):
      raise ValueError(f"checkpoints must be integers in [0, steps={steps}], got {checkpoints!r}.")
    points = np.unique(np.concatenate([[0], points]))
  return points


@functools.lru_cache(maxsize=64)
def _compiled_advance(apply_fn: Callable, ops: tuple, groups: tuple, optimizer: str,
                      learning_rate: float):
  """``(init, advance, residuals, apply)``: the optimiser's state constructor, the jitted
  ``advance(params, state, count, (points, targets, A))`` (donates ``params`` and
  ``state``) taking ``count`` steps on
  ``L = 1/(2n) r^T A r``, the jitted ``residuals(params, points, targets)`` and the
  jitted ``apply_fn``.
  Cached per network, operators (and which share points: ``groups``, see
  :func:`ntkpde.finite.channel_data`), optimiser and step size, so repeated :func:`train`
  calls (other seeds, points or targets of the same shapes) compile once."""
  residuals = stacked_residuals(apply_fn, ops, groups)

  def loss(params, data):
    points, targets, A = data
    r = residuals(params, points, targets)
    return (jnp.sum(A * r ** 2) if A.ndim == 1 else r @ A @ r) / (2 * r.shape[0])

  if optimizer == "gd":
    def init(p):
      return ()

    def update(g, state, p):
      return jax.tree_util.tree_map(lambda x: -learning_rate * x, g), state
  else:
    import optax
    opt = optax.adam(learning_rate)
    init, update = opt.init, opt.update

  def advance(p, state, count, data):
    def body(_, carry):
      q, s = carry
      u, s = update(jax.grad(loss)(q, data), s, q)
      return jax.tree_util.tree_map(jnp.add, q, u), s
    return jax.lax.fori_loop(0, count, body, (p, state))
  # Parameters and state are updated in place: donated, and no per-step copy of each
  # weight matrix (_compat.in_place_loop_options).
  return (init, _compat.jit(advance, _compat.in_place_loop_options(), donate_argnums=(0, 1)),
          jax.jit(residuals), jax.jit(apply_fn))


def train(apply_fn: Callable, params, channels: Sequence, targets=None, weights=None,
          learning_rate: float = 1.0, steps: int = 100, checkpoints=None,
          optimizer: str = "gd", record_kernel: bool = False,
          batch_size: Optional[int] = None, x_test=None) -> TrainingResult:
  """Full-batch training of ``apply_fn`` on ``L = 1/(2n) r^T A r`` for ``steps`` steps.

  ``channels`` ``[(name, operator, X), ...]`` and ``targets`` (one ``(n_c,)`` array per
  channel; default zeros) define the residuals ``r = T_c u(X_c) - y_c``; ``weights``
  as in :func:`ntkpde.weights.per_residual` (per channel, per residual or a matrix).
  ``optimizer="gd"``: ``theta <- theta - learning_rate grad L``; ``"adam"``: optax Adam
  with that learning rate. ``checkpoints`` (integers in ``[0, steps]``; default 51
  evenly spaced) are where residuals, losses, drift and (``record_kernel``) the
  empirical kernel are recorded, and ``u(x_test)`` when ``x_test`` (``(n_test, d)``) is
  given (compare with :func:`kernel_function_change` or
  :func:`ntkpde.predict.gradient_descent_mse_ensemble`). Raises ``ValueError`` for bad arguments before any
  work (weights must be >= 0 and not all zero; the network must be scalar and, under
  derivative operators, smooth: :mod:`ntkpde.smoothness`) and ``FloatingPointError``
  naming the checkpoint step when training diverges: the loss becomes NaN/inf or exceeds
  ``DIVERGENCE_FACTOR`` times its start (learning rate too large: GD is stable for
  ``learning_rate < ntkpde.predict.max_stable_learning_rate(K, weights)``, i.e.
  ``2n / lambda_max(K A)``).
  """
  chans, points, groups, ys = channel_data(channels, targets)
  sizes = {c.name: len(c.points) for c in chans}
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.")
  if not (np.isfinite(learning_rate) and learning_rate > 0):
    raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}.")
  checkpoint_steps = _check_steps(steps, checkpoints)
  A = per_residual(weights, sizes)
  n = len(A)
  check_network(apply_fn, params, tuple(c.operator for c in chans))
  if x_test is not None:
    x_test = np.asarray(x_test, dtype=np.float64)
    if x_test.ndim != 2 or x_test.shape[1] != chans[0].operator.dim or not np.all(np.isfinite(x_test)):
      raise ValueError(f"x_test must be a finite (n_test, {chans[0].operator.dim}) array, got "
                       f"shape {x_test.shape}.")
  ops = tuple(c.operator for c in chans)
  init, advance, residual_jit, apply_jit = _compiled_advance(apply_fn, ops, groups, optimizer,
                                                             float(learning_rate))
  data = (points, ys, jnp.asarray(A))
  flat0 = jnp.concatenate([x.ravel() for x in jax.tree_util.tree_leaves(params)])
  current = jax.tree_util.tree_map(jnp.array, params)   # a copy: advance donates its input
  state, done = init(current), 0
  rs, drift, kernels, predictions = [], [], [], []
  for k in checkpoint_steps:
    current, state = advance(current, state, int(k - done), data)
    done = int(k)
    r = np.asarray(residual_jit(current, points, ys))
    loss = (np.sum(A * r ** 2) if A.ndim == 1 else r @ A @ r) / (2 * n)
    if not rs:
      loss0 = loss
    if not (np.all(np.isfinite(r)) and np.isfinite(loss)):
      raise FloatingPointError(f"training diverged: the residuals became NaN/inf by step {k} "
                               f"({optimizer}, learning_rate {learning_rate}); reduce the "
                               f"learning rate.")
    if loss > DIVERGENCE_FACTOR * loss0 and loss0 > 0:
      raise FloatingPointError(f"training diverged: the loss at step {k} is {loss:.3e}, "
                               f"{loss / loss0:.1e} times its start {loss0:.3e} ({optimizer}, "
                               f"learning_rate {learning_rate}); reduce the learning rate (GD: "
                               f"below ntkpde.predict.max_stable_learning_rate(K, weights)).")
    rs.append(r)
    flat = jnp.concatenate([x.ravel() for x in jax.tree_util.tree_leaves(current)])
    drift.append(float(jnp.linalg.norm(flat - flat0)))
    if x_test is not None:
      predictions.append(np.asarray(apply_jit(current, x_test))[:, 0])
    if record_kernel:
      kernels.append(np.asarray(empirical_gram(apply_fn, current, chans, batch_size).matrix))
  rs = np.stack(rs)
  losses, start = {}, 0
  for c in chans:
    sl = slice(start, start + sizes[c.name])
    part = rs[:, sl] ** 2
    w = A[sl] if A.ndim == 1 else None
    losses[c.name] = (part @ w if w is not None else
                      np.einsum("ki,ij,kj->k", rs[:, sl], A[sl, sl], rs[:, sl])) / (2 * n)
    start = sl.stop
  return TrainingResult(checkpoint_steps, rs, losses, np.asarray(drift),
                        np.stack(kernels) if record_kernel else None, current,
                        tuple(sizes), sizes, np.stack(predictions) if predictions else None)


def kernel_residuals(K, r0, steps, weights=None, learning_rate: float = 1.0,
                     sizes: Optional[Dict[str, int]] = None, discrete: bool = True) -> np.ndarray:
  """Residuals predicted by a constant kernel ``K`` in :func:`train`'s units.

  ``r_k = (I - (eta/n) K A)^k r0`` (``discrete``, gradient descent) or
  ``expm(-(eta/n) K A k) r0`` (gradient flow), by :func:`ntkpde.predict.residual_flow`
  with ``learning_rate = eta / n``; ``weights`` as in :func:`train` (``sizes`` needed
  for per-channel weights). Returns ``(len(steps), n)``."""
  K = np.asarray(K)
  n = len(K)
  A = per_residual(weights, sizes or {"all": n})
  flow = residual_flow(K, r0, A, learning_rate / n)
  steps = np.asarray(steps)
  return flow.steps(steps.astype(int)) if discrete else flow(steps.astype(float))


def kernel_function_change(K_test, K, r0, steps, weights=None, learning_rate: float = 1.0,
                           sizes: Optional[Dict[str, int]] = None) -> np.ndarray:
  """``u_k(x_test) - u_0(x_test)`` of the constant-kernel model after ``k`` gradient-descent
  steps: ``-(eta/n) K_test A sum_{j<k} r_j`` with ``r_j = (I - (eta/n) K A)^j r_0``
  (:func:`kernel_residuals`), since each step moves ``u(x)`` by ``-(eta/n) Theta(x, X) A r_j``.

  ``K_test`` ``(n_test, n)`` is the kernel between the test quantity (e.g. ``u`` at test
  points) and the residual channels, ``K`` ``(n, n)`` the block Gram. Returns
  ``(len(steps), n_test)``."""
  K_test, K = np.asarray(K_test), np.asarray(K)
  n = len(K)
  if K_test.ndim != 2 or K_test.shape[1] != n:
    raise ValueError(f"K_test must have shape (n_test, {n}), got {K_test.shape}.")
  steps = _checks.step_counts(steps, "steps")
  r = kernel_residuals(K, r0, np.arange(max(int(steps.max()), 1)), weights, learning_rate, sizes)
  partial = np.concatenate([np.zeros((1, n)), np.cumsum(r, axis=0)])[steps]   # sum_{j<k} r_j
  A = per_residual(weights, sizes or {"all": n})
  weighted = partial * A[None, :] if A.ndim == 1 else partial @ A.T
  return -(learning_rate / n) * weighted @ K_test.T
