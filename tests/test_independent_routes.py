"""Independent routes for pieces the claims rely on: the initial residual ``r0 = T u(X) - y``,
``diag_reg`` predictions (neural-tangents' own ``predict``), Fourier-feature input maps,
``finite.width_sweep`` and ``ntkpde.rates.bootstrap_slope``.

Each reference shares no code with the route it checks: ``jax.hessian`` of the scalar
network instead of ntkpde's operators, neural-tangents' ``gradient_descent_mse_ensemble``,
NumPy cosines and Richardson-checked finite differences, a hand-written per-neuron
network (tests/test_finite.py), and Monte Carlo over independent synthetic experiments.
"""
import jax
import numpy as np
import pytest

import ntkpde
from ntkpde import finite, operators, rates, training
from ntkpde._compat import import_neural_tangents
from ntkpde.input_maps import fourier_features
from ntkpde.predict import gradient_descent_mse_ensemble
from theory.finite_differences import richardson_check

EPS = np.finfo(float).eps
UXX, ID = operators.parse("u_xx", "x"), operators.identity("x")
XR, XB = np.linspace(-0.8, 0.8, 4)[:, None], np.array([[-1.0], [1.0]])


def test_initial_residual_is_the_operator_applied_network_minus_the_targets():
  """``r0`` of ``finite.residual_fn`` and of ``training.train`` against ``u_xx`` by
  ``jax.hessian`` of the scalar network at each point, minus ``y``; rounding only."""
  net = ntkpde.mlp(2, 32, "erf", 1.5, 0.1)
  _, params = net.init_fn(jax.random.PRNGKey(4), (-1, 1))
  targets = [np.sin(3 * XR[:, 0]), np.array([0.5, -0.25])]
  chans = [("r", UXX, XR), ("b", ID, XB)]

  def u(x):
    return net.apply_fn(params, x.reshape(1, 1))[0, 0]
  reference = np.r_[[float(jax.hessian(u)(x)) for x in XR[:, 0]],
                    [float(u(x)) for x in XB[:, 0]]] - np.concatenate(targets)
  r0 = np.asarray(finite.residual_fn(net.apply_fn, chans, targets)(params))
  res = training.train(net.apply_fn, params, chans, targets, learning_rate=1e-6, steps=1)
  scale = np.abs(reference).max()
  np.testing.assert_allclose(r0, reference, rtol=0, atol=1e-12 * scale)
  np.testing.assert_allclose(res.residuals[0], reference, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("get", ["ntk", "nngp"])
def test_diag_reg_predictions_match_neural_tangents(get):
  """Mean and covariance with ``diag_reg`` against ``nt.predict.gradient_descent_mse_ensemble``
  (same relative regulariser ``diag_reg Tr(K)/n``), on test points and on the training
  points, at finite times and ``t = inf``. Both are float64 evaluations of the same
  formulas through different factorisations: ``1e-10`` of the largest value at finite t;
  at ``t = inf`` ``n eps cond(K + reg)`` (factor 10)."""
  nt = import_neural_tangents()
  net = ntkpde.mlp(2, activation="erf")
  rng = np.random.default_rng(0)
  x, x_test = rng.uniform(-1, 1, (10, 1)), np.linspace(-1, 1, 5)[:, None]
  y = np.sin(3 * x[:, 0])
  reg = 1e-3
  ours = gradient_descent_mse_ensemble(net.kernel_fn, [("data", ID, x)], [y], learning_rate=0.7,
                                       diag_reg=reg)
  ref = nt.predict.gradient_descent_mse_ensemble(net.kernel_fn.base, x, y[:, None],
                                                 learning_rate=0.7, diag_reg=reg)
  times = np.array([0.0, 1.0, 30.0])
  for xt in (x_test, None):
    mean, cov = ours(times, xt, get=get, compute_cov=True)
    ref_mean, ref_cov = ref(times, xt, get=get, compute_cov=True)
    ref_mean = np.asarray(ref_mean)[..., 0]
    assert np.abs(mean - ref_mean).max() <= 1e-10 * np.abs(ref_mean).max()
    assert np.abs(cov - np.asarray(ref_cov)).max() <= 1e-10 * np.abs(ref_cov).max()
    K = np.asarray(net.kernel_fn(x, None, get))
    bound = 10 * len(x) * EPS * np.linalg.cond(K + reg * np.trace(K) / len(K) * np.eye(len(K)))
    mean_inf = ours(None, xt, get=get)
    ref_inf = np.asarray(ref(None, xt, get=get))[..., 0]
    assert np.abs(mean_inf - ref_inf).max() <= max(bound, 1e-12) * np.abs(ref_inf).max()
  # the regulariser matters at this size: without it the t = inf answer moves
  assert np.abs(gradient_descent_mse_ensemble(net.kernel_fn, [("data", ID, x)], [y],
                                              diag_reg=0.0)(None, x_test, get=get)
                - ours(None, x_test, get=get)).max() > 1e-6


def test_fourier_features_and_their_operator_kernels():
  """The map against NumPy cosines/sines of ``2 pi B x`` with ``B`` drawn the same way, and
  ``d/dx`` through the map (chain rule inside ``operator_kernel``) against Richardson-checked
  central differences of the plain kernel (OPK-1's route)."""
  fmap = fourier_features(1, 3, scale=0.7, seed=5)
  B = np.random.default_rng(5).normal(0.0, 0.7, size=(3, 1))
  x = np.linspace(-1, 1, 7)[:, None]
  z = 2 * np.pi * x @ B.T
  np.testing.assert_allclose(np.asarray(fmap.fn(x)), np.c_[np.cos(z), np.sin(z)], rtol=0, atol=1e-14)
  assert fmap.out_dim(1) == 6
  with pytest.raises(ValueError, match="1-d inputs"):
    fmap.out_dim(2)
  net = ntkpde.mlp(1, activation="erf", input_map=fmap)
  ux = operators.parse("u_x", "x")
  got = np.asarray(ntkpde.operator_kernel(net.kernel_fn, ux, ID)(x, x[::2] + 0.05))
  plain = jax.jit(lambda a, b: net.kernel_fn(a, b, "ntk"))
  fd, bound = richardson_check(plain, ux, ID, x, x[::2] + 0.05)
  assert np.all(np.abs(got - fd) <= bound), np.max(np.abs(got - fd) / bound)


def test_width_sweep_errors_match_a_hand_written_network():
  """``width_sweep``'s per-seed errors against the empirical kernel of the hand-written
  one-hidden-layer network of tests/test_finite.py (same parameters), its rms and slope
  against NumPy's ``polyfit``."""
  from test_finite import B_STD, W_STD, _per_neuron_kernels
  X_r, X_b = np.linspace(-0.9, 0.9, 4)[:, None], np.array([[-1.0], [1.0]])
  chans = [("r", UXX, X_r), ("b", ID, X_b)]
  widths, seeds = [16, 64], [0, 1, 2]
  res = finite.width_sweep(lambda w: ntkpde.mlp(1, w, "erf", W_STD, B_STD), chans, widths, seeds)
  analytic = np.asarray(ntkpde.gram(ntkpde.mlp(1, 8, "erf", W_STD, B_STD).kernel_fn, chans).matrix)
  for i, w in enumerate(widths):
    net = ntkpde.mlp(1, w, "erf", W_STD, B_STD)
    for j, seed in enumerate(seeds):
      _, params = net.init_fn(jax.random.PRNGKey(seed), (-1, 1))
      k, c = _per_neuron_kernels(params, X_r, X_b)
      e = np.linalg.norm(k.mean(0) + c - analytic) / np.linalg.norm(analytic)
      assert res["errors"][i, j] == pytest.approx(e, rel=1e-8)
  rms = np.sqrt(np.mean(res["errors"] ** 2, axis=1))
  np.testing.assert_allclose(res["rms"], rms, rtol=1e-14)
  assert res["slope"] == pytest.approx(np.polyfit(np.log(widths), np.log(rms), 1)[0], rel=1e-12)
  assert res["bootstrap_slope_std"] > 0


def test_loglog_slope_matches_scipy_linregress():
  """Slope, intercept and the slope's standard error against ``scipy.stats.linregress`` on
  the logs (float64 least squares of 6 points: 1e-12 relative); two points have no
  standard error (nan, not 0)."""
  from scipy import stats
  x = np.array([8, 16, 32, 64, 128, 256.0])
  y = 2.5 * x ** -0.7 * np.exp(np.random.default_rng(3).normal(0, 0.1, x.size))
  slope, c, se = rates.loglog_slope(x, y)
  ref = stats.linregress(np.log(x), np.log(y))
  assert slope == pytest.approx(ref.slope, rel=1e-12) and c == pytest.approx(ref.intercept, rel=1e-12)
  assert se == pytest.approx(ref.stderr, rel=1e-12)
  assert np.isnan(rates.loglog_slope(x[:2], y[:2])[2])


def test_bootstrap_slope_spread_matches_independent_experiments():
  """Monte Carlo route: the standard deviation of the fitted slope over 300 independent
  synthetic experiments (log-normal errors around ``x^-1/2``, 12 draws per x) against the
  bootstrap spread of single experiments (median of 20): within a factor 1.5 (the
  bootstrap of 12 draws is itself uncertain by ~20 %). Identical draws give spread 0."""
  x = np.array([64, 128, 256, 512, 1024.0])
  rng = np.random.default_rng(7)

  def experiment():
    return x[:, None] ** -0.5 * np.exp(rng.normal(0, 0.3, (len(x), 12)))
  direct = np.std([rates.loglog_slope(x, np.sqrt(np.mean(experiment() ** 2, axis=1)))[0]
                   for _ in range(300)])
  boot = np.median([rates.bootstrap_slope(x, experiment(), "rms")[1] for _ in range(20)])
  assert direct / 1.5 <= boot <= 1.5 * direct, (boot, direct)
  slope, spread = rates.bootstrap_slope(x, np.repeat((3 * x ** -0.5)[:, None], 4, axis=1), "mean")
  assert slope == pytest.approx(-0.5, abs=1e-12) and spread < 1e-12
  with pytest.raises(ValueError, match="resamples"):   # was: a NaN spread, silently
    rates.bootstrap_slope(x, experiment(), "rms", resamples=0)
  with pytest.raises(ValueError, match="reduce"):
    rates.bootstrap_slope(x, experiment(), "median")
  with pytest.raises(ValueError, match="shape"):
    rates.bootstrap_slope(x, experiment()[:3], "rms")
