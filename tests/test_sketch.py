"""NTK sketches (ntkpde.sketch, Hirsch & Pichi Alg. 2/3) against closed forms.

The quadratic predictor ``R_i = (theta*theta) . u(x_i) - y_i`` has ``J_ij = 2 theta_j u_j(x_i)``
and second derivative ``R''[v, v]_i = 2 sum_j u_j(x_i) v_j^2``, so the predictor-step
quotient is exactly ``dR = K g + dt sum_j u_j v_j^2`` with ``v = J^T g``: checked to
round-off (``eps ||R|| / dt`` ~ 1e-10 relative at the ``dt`` used).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkpde import sketch
from ntkpde.operator_kernels import BlockGram
from ntkpde.weights import trace_weights

X = np.linspace(-1, 1, 12)
U = np.stack([np.ones_like(X), X, X ** 2], axis=1)
Y = np.pi * X ** 2 + np.e * X + np.sqrt(2)
THETA = jnp.array([0.7, -1.2, 0.4])
SIZES = {"a": 8, "b": 4}


def residuals(theta):
  return jnp.asarray(U) @ (theta * theta) - jnp.asarray(Y)


def closed_form_K(theta):
  J = 2 * U * np.asarray(theta)[None, :]
  return J, J @ J.T


def test_exact_ntk_and_predictor_step_match_closed_forms():
  J, K = closed_form_K(THETA)
  np.testing.assert_allclose(sketch.exact_ntk(residuals, THETA), K, rtol=1e-13, atol=1e-13)
  g = jax.random.normal(jax.random.PRNGKey(0), (len(X),))
  dt = 1e-4
  K_hat, tr, dR = sketch.sketch_sample(residuals, THETA, g, dt)
  v = J.T @ np.asarray(g)
  np.testing.assert_allclose(dR, K @ g + dt * U @ v ** 2, rtol=1e-8, atol=1e-8 * np.abs(K @ g).max())
  outer = np.outer(dR, g)
  np.testing.assert_allclose(K_hat, (outer + outer.T) / 2, rtol=1e-14)
  assert tr == pytest.approx(float(g @ dR), rel=1e-14)


def test_sketch_mean_converges_within_theorem_4_bound():
  _, K = closed_form_K(THETA)
  n, N = len(K), 4000
  K_N, tr_N = sketch.sketch_ntk(residuals, THETA, jax.random.PRNGKey(1), 1e-7, N)
  # Thm 4: E||K_N - K||_F^2 <= 2 n (n+2) ||K||_F^2 / N (+ O(dt^2)); Markov at 1/25 probability
  assert np.sum((np.asarray(K_N) - K) ** 2) < 25 * 2 * n * (n + 2) * np.sum(K ** 2) / N
  # Hutchinson: Var(g^T K g) = 2 ||K||_F^2; 5 standard deviations
  assert abs(float(tr_N) - np.trace(K)) < 5 * np.sqrt(2 * np.sum(K ** 2) / N)


def test_sketch_mean_is_the_mean_of_single_samples_across_batches():
  """``sketch_ntk`` batches its probes (SKETCH_BATCH); with a count that is not a multiple
  of the batch its mean equals the explicit mean of Algorithm 2 samples on the same probes."""
  N = sketch.SKETCH_BATCH + 44
  key, dt = jax.random.PRNGKey(3), 1e-5
  probes = jax.random.normal(key, (N, len(X)))
  samples = [sketch.sketch_sample(residuals, THETA, g, dt) for g in probes]
  K_N, tr_N = sketch.sketch_ntk(residuals, THETA, key, dt, N)
  np.testing.assert_allclose(K_N, np.mean([k for k, _, _ in samples], axis=0), rtol=1e-12, atol=1e-12)
  assert float(tr_N) == pytest.approx(float(np.mean([t for _, t, _ in samples])), rel=1e-12)


def test_adaptive_training_exact_weights_first_step():
  _, K = closed_form_K(THETA)
  out = sketch.adaptive_training(residuals, THETA, SIZES, learning_rate=1e-3, steps=2)
  want = trace_weights(BlockGram(jnp.asarray(K), tuple(SIZES), SIZES))
  np.testing.assert_allclose(out["weights"][0], [want["a"], want["b"]], rtol=1e-12)
  np.testing.assert_allclose(out["eigenvalues"][0], np.linalg.eigvalsh(K), rtol=1e-10,
                             atol=1e-10 * np.abs(K).max())
  J, _ = closed_form_K(THETA)
  lam = np.repeat(out["weights"][0], list(SIZES.values()))
  r0 = np.asarray(residuals(THETA))
  theta1 = np.asarray(THETA) - 1e-3 / len(X) * J.T @ (lam * r0)
  np.testing.assert_allclose(out["residual_sq"][1], np.sum(np.asarray(residuals(theta1)) ** 2),
                             rtol=1e-12)
  assert out["grad_sq"][0] == pytest.approx(np.sum((J.T @ (lam * r0)) ** 2), rel=1e-12)


def test_moving_average_weights_track_exact_ones():
  out = sketch.adaptive_training(residuals, THETA, SIZES, learning_rate=1e-3, steps=50,
                                 weights="sketch", alpha=0.05, init_samples=20000, dt=1e-7,
                                 track_exact=1)
  gap = np.abs(out["weights"] - out["exact_weights"]) / out["exact_weights"]
  assert gap[0].max() < 0.1     # 20000 samples: relative Hutchinson error ~ sqrt(2/20000) x O(1)
  assert np.all(np.isfinite(out["weights"]))


def test_bad_arguments_are_rejected():
  with pytest.raises(ValueError, match="weights"):
    sketch.adaptive_training(residuals, THETA, SIZES, 1e-3, 2, weights="fast")
  with pytest.raises(ValueError, match="shape"):
    sketch.adaptive_training(residuals, THETA, {"a": 3}, 1e-3, 2)
  with pytest.raises(ValueError, match="alpha"):
    sketch.adaptive_training(residuals, THETA, SIZES, 1e-3, 2, weights="sketch", alpha=0.0)
  with pytest.raises(ValueError, match="dt"):
    sketch.sketch_ntk(residuals, THETA, jax.random.PRNGKey(0), -1.0)
  with pytest.raises(ValueError, match="num_samples"):
    sketch.sketch_ntk(residuals, THETA, jax.random.PRNGKey(0), 1e-4, 0)
