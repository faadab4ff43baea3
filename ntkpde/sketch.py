"""Randomised NTK sketches and NTK-weighted training (Hirsch & Pichi, ntk-weights-sketching).

For residuals ``R: theta -> R^n`` with Jacobian ``J = dR/dtheta`` the NTK is
``K(theta) = J J^T`` (their eq. (3), ``grad R^T grad R``). Algorithm 2 estimates it
from one extra gradient step: with ``g ~ N(0, I_n)``,

    theta_hat = theta + dt J^T g,      dR = (R(theta_hat) - R(theta)) / dt  ~  K g,
    K_hat = (dR g^T + g dR^T) / 2,     Tr_hat = g . dR,                         (Alg. 2)

(the paper writes the predictor as a gradient step with weights
``Lambda_pred = -diag(g) diag(R)^-1``, i.e. ``J^T Lambda_pred R = -J^T g``; we form
``J^T g`` by one vector-Jacobian product, which is the same vector and needs no
``R_i != 0``). ``E[K_hat] = K + O(dt)`` (Thm 3) and averaging ``N`` samples has mean
squared error ``O(1/N)`` (Thm 4). Algorithm 3 keeps a moving average
``K_t = (1 - alpha) K_{t-1} + alpha K_hat(theta_t)`` started from ``N`` samples.

NTK weights (their eq. (5)): ``lambda_c = Tr(K) / Tr(K_cc)`` per channel ``c``
(:func:`ntkpde.weights.trace_weights` for a :class:`~ntkpde.BlockGram`).

Units: :func:`adaptive_training` uses ntkpde's loss ``L = 1/(2n) R^T Lambda R`` and
``theta <- theta - eta grad L``; the paper's ``L = 1/2 R^T Lambda R`` with step
``eta_paper`` is ``eta = n eta_paper``.
"""
import functools
from typing import Callable, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ntkpde import _checks
from ntkpde.finite import ResidualFn, jacobian_matrix
from ntkpde.weights import check_block_trace


SKETCH_BATCH = 256


def _axpy(a, x, y):
  return jax.tree_util.tree_map(lambda u, v: a * u + v, x, y)


def _predictor_difference(residuals: Callable, params, g, dt: float):
  """``dR = (R(theta + dt J^T g) - R(theta)) / dt``: the predictor step of Algorithm 2."""
  r0, vjp = jax.vjp(residuals, params)
  (direction,) = vjp(g)
  return (residuals(_axpy(dt, direction, params)) - r0) / dt


def sketch_sample(residuals: Callable, params, g, dt: float):
  """One sample of Algorithm 2 with probe ``g`` (``(n,)``): returns
  ``(K_hat, Tr_hat, dR)`` with ``dR = (R(theta + dt J^T g) - R(theta)) / dt``."""
  dR = _predictor_difference(residuals, params, g, dt)
  outer = dR[:, None] * g[None, :]
  return (outer + outer.T) / 2, g @ dR, dR


def sketch_ntk(residuals: Callable, params, key, dt: float, num_samples: int = 1):
  """Mean of ``num_samples`` i.i.d. samples of Algorithm 2: ``(K_hat, Tr_hat)``.

  ``residuals: params -> (n,)`` (e.g. :func:`ntkpde.finite.residual_fn`), ``dt > 0`` the
  predictor step (bias ``O(dt)``, Thm 3; round-off ``~ eps ||R|| / dt``). Probes are
  processed in batches of at most :data:`SKETCH_BATCH`, so memory is bounded by
  ``SKETCH_BATCH`` parameter vectors plus ``num_samples`` residual vectors."""
  if not (np.isfinite(dt) and dt > 0):
    raise ValueError(f"dt must be a positive number, got {dt!r}.")
  num_samples = _checks.integer(num_samples, "num_samples")
  n = jax.eval_shape(residuals, params).shape[0]
  probes = jax.random.normal(key, (num_samples, n))
  dR = jax.lax.map(lambda g: _predictor_difference(residuals, params, g, dt), probes,
                   batch_size=min(num_samples, SKETCH_BATCH))
  # mean_j sym(dR_j g_j^T) = sym(dR^T G) / N, without forming the N matrices
  outer = dR.T @ probes / probes.shape[0]
  return (outer + outer.T) / 2, jnp.mean(jnp.sum(probes * dR, axis=1))


def exact_ntk(residuals: Callable, params) -> jax.Array:
  """``K(theta) = J J^T`` from the full Jacobian."""
  J = jacobian_matrix(residuals, params)
  return J @ J.T


def _channel_ids(sizes: Dict[str, int]) -> np.ndarray:
  if not sizes or any(int(v) < 1 for v in sizes.values()):
    raise ValueError(f"sizes must map every channel to a positive count, got {sizes!r}.")
  return np.repeat(np.arange(len(sizes)), [int(v) for v in sizes.values()])


def _trace_weights(K, ids, num_channels):
  """``Tr(K) / Tr(K_cc)`` per channel, from the diagonal (eq. (5)); NaN where ``Tr(K_cc) <= 0``
  (a sketch can estimate a trace <= 0), which :func:`adaptive_training` reports with
  :func:`ntkpde.weights.check_block_trace` after the run."""
  block = jax.ops.segment_sum(jnp.diag(K), ids, num_segments=num_channels)
  return jnp.where(block > 0, jnp.trace(K) / jnp.where(block > 0, block, 1.0), jnp.nan)


@functools.lru_cache(maxsize=32)
def _compiled_run(residuals, sizes, weights, alpha, dt, learning_rate, every):
  """The jitted scan of :func:`adaptive_training` (cached: a repeated call reuses it)."""
  ids = np.repeat(np.arange(len(sizes)), sizes)
  n, m = len(ids), len(sizes)
  ids_j = jnp.asarray(ids)
  eta = learning_rate / n

  def exact_record(K):
    return {"eigenvalues": jnp.linalg.eigvalsh(K), "exact_weights": _trace_weights(K, ids_j, m)}

  def tracked(t, kernel):
    """``exact_record`` of ``kernel()`` every ``every``-th step, NaN in between."""
    if every <= 1:
      return exact_record(kernel()) if every else {}
    return jax.lax.cond(t % every == 0, lambda: exact_record(kernel()), lambda: {
        "eigenvalues": jnp.full(n, jnp.nan), "exact_weights": jnp.full(m, jnp.nan)})

  def step(carry, xs):
    p, K_avg = carry
    step_key, t = xs
    r, vjp = jax.vjp(residuals, p)
    if weights == "exact":
      K = exact_ntk(residuals, p)
      lam = _trace_weights(K, ids_j, m)
      record = tracked(t, lambda: K)
    else:
      record = tracked(t, lambda: exact_ntk(residuals, p))
      g = jax.random.normal(step_key, (n,))
      # Algorithm 3: the N-sample mean at t = 0, the moving average from t = 1 on.
      K_avg = jnp.where(t == 0, K_avg,
                        (1 - alpha) * K_avg + alpha * sketch_sample(residuals, p, g, dt)[0])
      lam = _trace_weights(K_avg, ids_j, m)
    (grad,) = vjp(lam[ids_j] * r)
    record.update(weights=lam, residual_sq=r @ r,
                  grad_sq=sum(jnp.sum(x ** 2) for x in jax.tree_util.tree_leaves(grad)))
    return (_axpy(-eta, grad, p), K_avg), record

  return jax.jit(lambda p, k0, xs: jax.lax.scan(step, (p, k0), xs))


def adaptive_training(residuals: Callable, params, sizes: Dict[str, int], learning_rate: float,
                      steps: int, weights: str = "exact", alpha: float = 1e-2,
                      init_samples: int = 100, dt: float = 1e-4, key=None,
                      track_exact: Optional[int] = None) -> dict:
  """Gradient descent with NTK weights recomputed every step (Algorithm 1 with update
  frequency 1), from the exact kernel (``weights="exact"``) or the moving-average sketch
  (``"sketch"``, Algorithm 3 with ``alpha``, ``init_samples`` and ``dt``).

  ``residuals: params -> (n,)`` with channels of ``sizes`` (``{name: n_c}``, in order);
  one built by :func:`ntkpde.finite.residual_fn` has its network checked first (scalar,
  and smooth under derivative operators: :func:`ntkpde.finite.check_network`); for any
  other callable that is the caller's responsibility.
  Step ``theta <- theta - (eta/n) J^T Lambda R`` (``L = 1/(2n) R^T Lambda R``). Returns a
  dict of arrays over steps ``0..steps-1``: ``weights`` ``(steps, n_channels)`` (those
  used), ``residual_sq`` ``||R_t||^2``, ``grad_sq`` ``||J^T Lambda R||^2`` (the gradient
  of the paper's ``G(theta; theta_t) = 1/2 ||R||^2_Lambda``), ``eigenvalues`` of
  ``K(theta_t)`` and ``exact_weights`` every ``track_exact``-th step, NaN in between
  (``None``: every step with exact weights, never with sketch weights; ``0``: never, so
  that a timed exact step is Algorithm 1 alone, without an eigendecomposition),
  ``params`` (final), ``names``.
  """
  if weights not in ("exact", "sketch"):
    raise ValueError(f"weights must be 'exact' or 'sketch', got {weights!r}.")
  if not (np.isfinite(learning_rate) and learning_rate > 0):
    raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}.")
  steps = _checks.integer(steps, "steps")
  if not 0 < alpha <= 1:
    raise ValueError(f"alpha must be in (0, 1], got {alpha!r}.")
  ids = _channel_ids(sizes)
  n = len(ids)
  if isinstance(residuals, ResidualFn):
    residuals.check_network(params)
  if jax.eval_shape(residuals, params).shape != (n,):
    raise ValueError(f"residuals(params) must have shape ({n},) = sum of sizes, got "
                     f"{jax.eval_shape(residuals, params).shape}.")
  key = jax.random.PRNGKey(0) if key is None else key
  if track_exact is None:
    every = 1 if weights == "exact" else 0
  else:
    every = _checks.integer(track_exact, "track_exact", 0)
  run = _compiled_run(residuals, tuple(int(v) for v in sizes.values()), weights, float(alpha),
                      float(dt), float(learning_rate), every)
  init_key, run_key = jax.random.split(key)
  if weights == "sketch":
    K0, _ = sketch_ntk(residuals, params, init_key, dt, init_samples)
  else:
    K0 = jnp.zeros((n, n))
  (final, _), history = run(params, K0, (jax.random.split(run_key, steps),
                                         jnp.arange(steps)))
  out = {k: np.asarray(v) for k, v in history.items()}
  bad = np.argwhere(~np.isfinite(out["weights"]))
  if bad.size:
    step, channel = bad[0]
    check_block_trace(tuple(sizes)[channel], float("nan"),
                      f" in the {weights} kernel estimate at step {step}")
  if not np.all(np.isfinite(out["residual_sq"])):
    raise FloatingPointError("the residuals became NaN/inf: reduce learning_rate.")
  out["params"] = final
  out["names"] = tuple(sizes)
  return out
