"""Problems of Hirsch & Pichi (ntk-weights-sketching) shared by the NTKW-2..5 checks.

Their networks use tanh, Xavier initialisation and inputs normalised to zero mean and
unit standard deviation (Sec. 5.1); tanh needs no analytic kernel here (everything is
finite width), so it is used as in the paper: ``stax.Elementwise(jnp.tanh)`` in the
standard parameterisation with Xavier-normal weights (variance ``2 / (fan_in +
fan_out)``) and zero biases' standard deviation 0.
"""
import jax
import jax.numpy as jnp
import numpy as np

from ntkpde import finite, operators, weights
from ntkpde._compat import import_neural_tangents
from ntkpde.operator_kernels import BlockGram

stax = import_neural_tangents().stax


def tanh_mlp(in_dim, hidden, mean, std):
  """Xavier-initialised tanh MLP ``in_dim -> hidden... -> 1`` on inputs ``(x - mean) / std``."""
  sizes = [in_dim] + list(hidden) + [1]
  layers = []
  for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
    layers.append(stax.Dense(fan_out, W_std=np.sqrt(2 * fan_in / (fan_in + fan_out)), b_std=0.0,
                             parameterization="standard"))
    layers.append(stax.Elementwise(jnp.tanh))
  init_fn, apply_fn, _ = stax.serial(*layers[:-1])
  mean, std = jnp.asarray(mean), jnp.asarray(std)
  return init_fn, lambda params, x: apply_fn(params, (x - mean) / std)


def poisson_problem(seed=0, hidden=(100,)):
  """Sec. 5.1: ``u_xx = -16 pi^2 sin(4 pi x)`` on [0, 1], ``u(0) = u(1) = 0``; two interior
  points (1/3, 2/3: the paper does not give them) and the two boundary points."""
  x_d, x_b = np.array([[1 / 3], [2 / 3]]), np.array([[0.0], [1.0]])
  pts = np.concatenate([x_d, x_b])
  init_fn, apply_fn = tanh_mlp(1, hidden, pts.mean(0), pts.std(0))
  _, params = init_fn(jax.random.PRNGKey(seed), (-1, 1))
  chans = [("D", operators.parse("u_xx", "x"), x_d), ("B", operators.identity("x"), x_b)]
  targets = [-16 * np.pi ** 2 * np.sin(4 * np.pi * x_d[:, 0]), np.zeros(2)]
  return finite.residual_fn(apply_fn, chans, targets), params, {"D": 2, "B": 2}


def quadratic_problem(seed=0):
  """Sec. 5.2.1: ``R_i = (theta * theta) . (1, x_i, x_i^2) - y_i``, 50 points on [-1, 1],
  ``y = pi x^2 + e x + sqrt(2) + xi``, ``xi ~ N(0, 1/sqrt(2))`` (read as standard deviation
  ``1/sqrt(2)``); ``theta_0 ~ N(0, I_3)``."""
  rng = np.random.default_rng(seed)
  x = np.linspace(-1, 1, 50)
  y = np.pi * x ** 2 + np.e * x + np.sqrt(2) + rng.normal(0, 1 / np.sqrt(2), 50)
  features = jnp.asarray(np.stack([np.ones_like(x), x, x ** 2], axis=1))
  y = jnp.asarray(y)

  def residuals(theta):
    return features @ (theta * theta) - y
  return residuals, jnp.asarray(rng.normal(size=3))


def wave_problem(seed=0, hidden=(64, 64), n_interior=40, n_edge=10):
  """Sec. 5.2.2: ``u_tt = 4 u_xx`` on (0, 1)^2 (coordinates ``(x, t)``), ``u(x, 0) = sin(pi x)
  + sin(4 pi x) / 2``, ``u_t(x, 0) = 0``, ``u(0, t) = u(1, t) = 0``. Fixed points (no
  resampling), channels D (interior), D_i (initial velocity), B_i (initial value),
  B (both walls). Smaller than the paper's (3 x 500 tanh, 300/300/100/200 points)."""
  rng = np.random.default_rng(seed)
  coords = ("x", "t")
  interior = rng.uniform(0, 1, (n_interior, 2))
  xs = rng.uniform(0, 1, n_edge)
  initial = np.stack([xs, np.zeros(n_edge)], axis=1)
  ts = rng.uniform(0, 1, n_edge)
  walls = np.concatenate([np.stack([np.zeros(n_edge // 2), ts[:n_edge // 2]], 1),
                          np.stack([np.ones(n_edge - n_edge // 2), ts[n_edge // 2:]], 1)])
  pts = np.concatenate([interior, initial, walls])
  init_fn, apply_fn = tanh_mlp(2, hidden, pts.mean(0), pts.std(0))
  _, params = init_fn(jax.random.PRNGKey(seed), (-1, 2))
  chans = [("D", operators.parse("u_tt - 4*u_xx", coords), interior),
           ("D_i", operators.parse("u_t", coords), initial),
           ("B_i", operators.identity(coords), initial),
           ("B", operators.identity(coords), walls)]
  targets = [np.zeros(n_interior), np.zeros(n_edge),
             np.sin(np.pi * xs) + 0.5 * np.sin(4 * np.pi * xs), np.zeros(n_edge)]
  sizes = {name: len(x) for name, _, x in chans}
  return finite.residual_fn(apply_fn, chans, targets), params, sizes


def trace_weights_and_step(K, sizes, fraction: float):
  """``(lambda, eta)``: the NTK trace weights ``lambda_c = Tr K / Tr K_cc`` (eq. 5,
  :func:`ntkpde.weights.trace_weights`) per channel, in ``sizes`` order, and the step
  ``eta = fraction * n / lambda_max(Lambda^1/2 K Lambda^1/2)`` (ntkpde's loss units)."""
  lam = weights.trace_weights(BlockGram(jnp.asarray(K), tuple(sizes), dict(sizes)))
  root = np.sqrt(weights.per_residual(lam, sizes))
  eta = fraction * len(K) / np.linalg.eigvalsh(root[:, None] * K * root[None, :]).max()
  return np.array([lam[c] for c in sizes]), eta
