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
  """For Gaussian probes one sample ``sym(K g g^T)`` has the exact variance
  ``V = E||K_hat - K||_F^2 = ((n + 2) ||K||_F^2 + Tr(K)^2) / 2`` (Isserlis:
  ``E[(g.g)(g.M g)] = (n + 2) Tr M``, ``E[(g.K g)^2] = Tr(K)^2 + 2 ||K||_F^2``), so the
  mean of N has MSE ``V / N``, below Thm 4's ``2 n (n + 2) ||K||_F^2 / N``. Markov at
  probability 1/25 on ``V / N``; the threshold is checked to exclude ``K_N = 0`` and
  ``K_N = K / 2`` (the test has power)."""
  _, K = closed_form_K(THETA)
  n, N = len(K), 4000
  K_N, tr_N = sketch.sketch_ntk(residuals, THETA, jax.random.PRNGKey(1), 1e-7, N)
  frob2 = np.sum(K ** 2)
  V = ((n + 2) * frob2 + np.trace(K) ** 2) / 2
  assert V <= 2 * n * (n + 2) * frob2                          # Thm 4's constant covers it
  threshold = 25 * V / N
  assert threshold < frob2 / 4                                 # K_N = 0 or K / 2 would fail
  assert np.sum((np.asarray(K_N) - K) ** 2) < threshold
  # Hutchinson: Var(g^T K g) = 2 ||K||_F^2; 5 standard deviations
  assert abs(float(tr_N) - np.trace(K)) < 5 * np.sqrt(2 * frob2 / N)


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
  # Without tracking (how NTKW-5 times a step) the same iterates and no eigendecomposition;
  # every second step: the eigenvalues at even steps, NaN at odd ones.
  bare = sketch.adaptive_training(residuals, THETA, SIZES, learning_rate=1e-3, steps=2,
                                  track_exact=0)
  assert "eigenvalues" not in bare
  np.testing.assert_array_equal(bare["residual_sq"], out["residual_sq"])
  every2 = sketch.adaptive_training(residuals, THETA, SIZES, learning_rate=1e-3, steps=2,
                                    track_exact=2)
  np.testing.assert_array_equal(every2["eigenvalues"][0], out["eigenvalues"][0])
  assert np.all(np.isnan(every2["eigenvalues"][1]))


def test_moving_average_weights_track_exact_ones():
  """Over the whole run, not only the first sketch. After ~100 steps of ``alpha = 0.05`` the
  initial mean has weight ``0.95^100 < 0.01`` and the average is an exponentially weighted
  mean of ``N_eff = (2 - alpha) / alpha = 39`` sketches. Its scatter ``s`` is measured here
  as the median relative weight error of 40 static means of 39 sketches at ``THETA`` (the
  kernel moves by ~1 % over the run). The tracking gap over the second half must be
  ``s`` within a factor 2 either way: an average that never updates (gap ~ the initial
  20000-sample error, ~0.01) or one that keeps only the latest sketch (~sqrt(39) s)
  fails; the first step has the initial mean's accuracy (20000 samples: < 0.1)."""
  alpha, steps = 0.05, 200
  out = sketch.adaptive_training(residuals, THETA, SIZES, learning_rate=1e-2, steps=steps,
                                 weights="sketch", alpha=alpha, init_samples=20000, dt=1e-7,
                                 track_exact=1)
  gap = np.abs(out["weights"] - out["exact_weights"]) / out["exact_weights"]
  assert gap[0].max() < 0.1
  n_eff = round((2 - alpha) / alpha)
  _, K = closed_form_K(THETA)
  names = tuple(SIZES)
  exact = np.array(list(trace_weights(BlockGram(jnp.asarray(K), names, SIZES)).values()))
  static = []
  for k in range(40):
    K_N, _ = sketch.sketch_ntk(residuals, THETA, jax.random.PRNGKey(100 + k), 1e-7, n_eff)
    w = trace_weights(BlockGram(jnp.asarray(K_N), names, SIZES))
    static.append(np.abs(np.array(list(w.values())) - exact) / exact)
  s = np.median(static)
  tracking = np.median(gap[steps // 2:])
  assert s / 2 <= tracking <= 2 * s, (tracking, s)


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


def test_adaptive_training_checks_the_network_of_residual_fn_first():
  """A ReLU network under ``u_xx`` is refused before any work (``finite.check_network``)."""
  from ntkpde import finite, operators
  from ntkpde._compat import import_neural_tangents
  stax = import_neural_tangents().stax
  init_fn, apply_fn, _ = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
  params = init_fn(jax.random.PRNGKey(0), (-1, 1))[1]
  x = np.linspace(-1, 1, 4)[:, None]
  res = finite.residual_fn(apply_fn, [("r", operators.parse("u_xx", "x"), x),
                                      ("b", operators.identity("x"), x[:2])])
  with pytest.raises(ValueError, match="non-smooth"):
    sketch.adaptive_training(res, params, {"r": 4, "b": 2}, 1e-3, 2)
  plain = finite.residual_fn(apply_fn, [("b", operators.identity("x"), x)])
  out = sketch.adaptive_training(plain, params, {"b": 4}, 1e-3, 2)   # order 0: allowed
  assert np.all(np.isfinite(out["residual_sq"]))
