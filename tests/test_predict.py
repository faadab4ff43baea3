"""ntkpde.predict and ntkpde.weights against independent routes.

Routes: neural-tangents' own ``predict`` (identity channel); ``scipy.linalg.expm`` and
``scipy.integrate.solve_ivp`` for the flow ODE; central differences in ``t``; the
gradient-descent recursion applied step by step; ``numpy.linalg.eigvalsh``.

Tolerances (error estimates, not tuning):
* eigendecomposition routes: backward-stable ``eigh`` gives ``r(t)`` to about
  ``n eps cond(B)`` relative for the O(1) matrices here (n <= 40): ``1e-11``.
* vs neural-tangents at finite ``t``: both are ``eigh``-based, ``1e-10`` relative is
  ``>> n eps`` and well inside the required ``1e-8``. At ``t = inf`` both solve with
  ``K``; the difference is bounded by ``n eps cond(K)``, computed per case.
* central differences with step ``h``: truncation ``h^2 ||M||^3 ||r|| / 6`` plus rounding
  ``eps ||r|| / h``; with ``||M|| <= 3`` and ``h = 1e-4``: ``< 1e-7``, we assert ``1e-6``.
* ``solve_ivp`` (DOP853, ``rtol = atol = 1e-12``): global error ``~1e-10``; assert ``1e-8``.
"""
import contextlib

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import ntkpde
from ntkpde import operators, predict, weights
from ntkpde._compat import import_neural_tangents
from ntkpde.predict import gradient_descent_mse_ensemble, max_stable_learning_rate, residual_flow

EPS = np.finfo(np.float64).eps
X1 = ("x",)


def random_spd(n, seed, jitter=1e-2):
  rng = np.random.default_rng(seed)
  X = rng.normal(size=(n, n))
  return X @ X.T / n + jitter * np.eye(n)


def weight_cases(n, seed=0):
  rng = np.random.default_rng(seed)
  Y = rng.normal(size=(n, n))
  return {
      "none": None,
      "vector": rng.uniform(0.5, 2, n),
      "zero-channel": np.r_[np.zeros(4), np.ones(n - 4)],
      "psd-matrix": Y @ Y.T / n,
      "nonsymmetric": Y / np.sqrt(n) + 2 * np.eye(n),
      "indefinite": np.r_[-np.ones(3), np.ones(n - 3)],   # signed=True: the general flow
  }


def as_matrix(A, n):
  A = np.ones(n) if A is None else np.asarray(A)
  return np.diag(A) if A.ndim == 1 else A


@pytest.mark.parametrize("case", list(weight_cases(20)))
def test_flow_matches_expm_and_steps_match_recursion(case):
  n, c = 20, 0.3
  K = random_spd(n, 1)
  A = weight_cases(n)[case]
  r0 = np.random.default_rng(2).normal(size=n)
  flow = residual_flow(K, r0, A, learning_rate=c, signed=case == "indefinite")
  M = c * K @ as_matrix(A, n)
  times = np.array([0.0, 0.5, 4.0])
  expected = np.stack([scipy.linalg.expm(-M * t) @ r0 for t in times])
  scale = np.abs(expected).max()
  assert np.abs(flow(times) - expected).max() <= 1e-11 * scale
  assert flow(1.5).shape == (n,)
  # Discrete gradient descent: r_{k+1} = (I - c K A) r_k, applied step by step.
  r, ks, direct = r0.copy(), [0, 1, 5, 12], []
  for k in range(13):
    if k in ks:
      direct.append(r.copy())
    r = r - M @ r
  with (pytest.warns(RuntimeWarning, match="max_stable_learning_rate = 0") if case == "indefinite"
        else contextlib.nullcontext()):  # the signed flow has growing modes: GD diverges
    steps = flow.steps(np.array(ks))
  assert np.abs(steps - np.stack(direct)).max() <= 1e-11 * np.abs(direct).max()


@pytest.mark.parametrize("case", ["vector", "zero-channel", "psd-matrix", "nonsymmetric"])
def test_flow_satisfies_its_ode_by_central_differences(case):
  n, c, h = 20, 0.3, 1e-4
  K = random_spd(n, 3)
  A = weight_cases(n, 4)[case]
  r0 = np.random.default_rng(5).normal(size=n)
  flow = residual_flow(K, r0, A, learning_rate=c)
  M = c * K @ as_matrix(A, n)
  assert np.linalg.norm(M, 2) <= 3  # the truncation estimate in the module docstring
  for t in (0.3, 2.0):
    derivative = (flow(t + h) - flow(t - h)) / (2 * h)
    assert np.abs(derivative + M @ flow(t)).max() <= 1e-6 * np.abs(r0).max()


def test_max_stable_learning_rate_is_two_over_lambda_max():
  n = 15
  K = random_spd(n, 6)
  w = np.random.default_rng(7).uniform(0.5, 2, n)
  r0 = np.random.default_rng(8).normal(size=n)
  lam_max = np.linalg.eigvalsh(np.diag(np.sqrt(w)) @ K @ np.diag(np.sqrt(w))).max()
  flow = residual_flow(K, r0, w)
  assert flow.max_stable_learning_rate == pytest.approx(2 / lam_max, rel=1e-12)
  # Just below: the top mode contracts; just above: it grows (2000 steps amplify
  # |1 - c l| = 1 -/+ 1e-3 by e^{-/+2} at least).
  below = residual_flow(K, r0, w, 0.999 * 2 / lam_max).steps(2000)
  with pytest.warns(RuntimeWarning, match="max_stable_learning_rate"):
    above = residual_flow(K, r0, w, 1.001 * 2 / lam_max).steps(2000)
  assert np.linalg.norm(below) < np.linalg.norm(r0) < np.linalg.norm(above)


@pytest.mark.parametrize("case", ["none", "vector", "zero-channel", "psd-matrix", "nonsymmetric"])
def test_max_stable_learning_rate_helper_against_numpy_eigvals(case):
  """``2 n / lambda_max`` of the weighted system ``K A`` by NumPy's general ``eigvals`` (no
  symmetrisation, no square root), in the loss units of train/solve (``eta``, step ``eta/n``);
  for the non-symmetric A the general bound ``n min 2 Re(l)/|l|^2``."""
  n = 16
  K = random_spd(n, 11)
  A = weight_cases(n, 12)[case]
  lam = np.linalg.eigvals(K @ as_matrix(A, n))
  lam = lam[np.abs(lam) > 1e-12 * np.abs(lam).max()]
  expected = n * np.min(2 * lam.real / np.abs(lam) ** 2)
  if case != "nonsymmetric":
    assert expected == pytest.approx(2 * n / lam.real.max(), rel=1e-12)
  assert max_stable_learning_rate(K, A) == pytest.approx(expected, rel=1e-9)
  # the bound is sharp: GD just above it grows (|1 - c l| >= 1.01: e^30 in 3000 steps), just
  # below it stays bounded (zero-weight channels move but do not grow)
  r0 = np.random.default_rng(13).normal(size=n)
  below = residual_flow(K, r0, A, 0.99 * expected / n).steps(3000)
  with pytest.warns(RuntimeWarning, match=f"max_stable_learning_rate = {expected / n:.6g}"):
    above = residual_flow(K, r0, A, 1.01 * expected / n).steps(3000)
  assert np.linalg.norm(below) < 10 * np.linalg.norm(r0) < 1e-6 * np.linalg.norm(above)


def test_signed_weights_are_opt_in():
  """Negative weights are not a loss weighting (refused by default); the general linear flow
  of adversarial training takes them with signed=True and grows along the negative ones."""
  K, r0 = random_spd(6, 17), np.ones(6)
  with pytest.raises(ValueError, match=">= 0"):
    residual_flow(K, r0, -np.ones(6))
  flow = residual_flow(K, r0, -np.ones(6), signed=True)
  assert np.linalg.norm(flow(1.0)) > np.linalg.norm(r0)
  with pytest.raises(ValueError, match="does not exist"):
    flow(np.inf)


def rank_deficient(n=20, rank=8, seed=14):
  V = np.random.default_rng(seed).normal(size=(n, rank))
  return V @ V.T


def test_rounding_level_eigenvalues_are_zero_modes_at_every_t():
  """Rank-8 K (n = 20): the 12 zero eigenvalues come out of eigh as +-1e-15 rounding. They
  must not move at any t: t = 1e16 gives the t = inf residual (the projection of r0 on
  ker K, by an SVD), not a drift of size e^{1e16 * 1e-16}."""
  n = 20
  K = rank_deficient(n)
  r0 = np.random.default_rng(15).normal(size=n)
  flow = residual_flow(K, r0, learning_rate=1 / np.linalg.eigvalsh(K).max())
  _, _, vt = np.linalg.svd(K)
  null = vt[8:]
  expected = null.T @ (null @ r0)
  for t in (1e6, 1e12, 1e16, 1e300, np.inf):
    assert np.abs(flow(t) - expected).max() <= 1e-12 * np.abs(r0).max(), t
  assert np.abs(flow.steps(10 ** 6) - expected).max() <= 1e-12 * np.abs(r0).max()


def test_infinite_time_in_the_eigenbasis_matches_lstsq_without_diag_reg():
  """The t = inf ensemble mean on a rank-deficient Gram is the limit of the flow,
  ``Theta(x, X) Theta^+ y``; the reference is NumPy's minimum-norm ``lstsq`` (SVD) on the
  same matrix. A large finite t gives the same answer (no drift along rounding modes)."""
  rng = np.random.default_rng(16)
  freqs = jnp.arange(1, 5.0)
  features = lambda x: jnp.concatenate([jnp.cos(x * freqs), jnp.sin(x * freqs)], 1)
  kernel = lambda a, b=None, get=None: (features(a) * jnp.arange(1, 9.0) ** -2) @ features(
      a if b is None else b).T
  x = np.linspace(0, 3, 20)[:, None]           # 20 points, rank-8 kernel
  y = rng.normal(size=20)
  x_test = np.linspace(0.1, 2.9, 7)[:, None]
  K, k_tx = kernel(x, x), kernel(x_test, x)
  expected = k_tx @ np.linalg.lstsq(K, y, rcond=1e-10)[0]
  identity = operators.identity(X1)
  predict_fn = gradient_descent_mse_ensemble(kernel, [("u", identity, x)], [y])
  scale = np.abs(expected).max()
  assert np.abs(predict_fn(None, x_test) - expected).max() <= 1e-8 * scale
  assert np.abs(predict_fn(1e16, x_test) - expected).max() <= 1e-8 * scale
  assert np.all(np.isfinite(predict_fn(None, x_test)))


def test_flow_at_infinity_keeps_only_the_null_space():
  n = 12
  X = np.random.default_rng(9).normal(size=(n, n - 3))
  K = X @ X.T  # rank n - 3
  r0 = np.random.default_rng(10).normal(size=n)
  limit = residual_flow(K, r0)(np.inf)
  _, _, vt = np.linalg.svd(X.T)
  null = vt[n - 3:]  # orthonormal basis of ker K
  assert np.abs(limit - null.T @ (null @ r0)).max() <= 1e-12 * np.abs(r0).max()


def test_inverse_kernel_weights_give_one_rate_ntkw1():
  """NTKW-1: with Lambda = Tr(K) K^{-1} every residual decays as exp(-Tr(K) t)."""
  n = 10
  K = random_spd(n, 11, jitter=0.5)
  r0 = np.random.default_rng(12).normal(size=n)
  t = np.array([0.01, 0.05, 0.1])
  flow = residual_flow(K, r0, weights.inverse_kernel_weights(K))
  expected = np.exp(-np.trace(K) * t)[:, None] * r0[None, :]
  # cond(K) ~ 1e2 enters through K^{-1}: 1e-12 relative.
  assert np.abs(flow(t) - expected).max() <= 1e-12 * np.abs(r0).max()


def test_trace_weights_balance_channel_traces():
  G = ntkpde.BlockGram(jnp.asarray(random_spd(9, 13)), ("a", "b"), {"a": 4, "b": 5})
  w = weights.trace_weights(G)
  K = np.asarray(G.matrix)
  assert w["a"] == pytest.approx(np.trace(K) / np.trace(K[:4, :4]), rel=1e-14)
  assert w["b"] == pytest.approx(np.trace(K) / np.trace(K[4:, 4:]), rel=1e-14)
  vec = weights.per_residual("trace", G.sizes, G)
  assert vec.shape == (9,) and np.all(vec[:4] == w["a"]) and np.all(vec[4:] == w["b"])
  assert np.all(weights.per_residual({"b": 3.0}, G.sizes) == np.r_[np.ones(4), 3 * np.ones(5)])


@pytest.mark.parametrize("bad, match", [
    (dict(K=np.ones((3, 4))), "square"),
    (dict(r0=np.ones(4)), "r0 must have shape"),
    (dict(r0=np.r_[np.nan, 0, 0]), "NaN"),
    (dict(weights=np.ones(5)), "weights must be"),
    (dict(learning_rate=-1.0), "learning_rate"),
])
def test_residual_flow_rejects_bad_input(bad, match):
  args = dict(K=np.eye(3), r0=np.ones(3), weights=None, learning_rate=1.0)
  args.update(bad)
  with pytest.raises(ValueError, match=match):
    residual_flow(**args)
  flow = residual_flow(np.eye(3), np.ones(3))
  for t in (-1.0, np.nan, np.ones((2, 2))):
    with pytest.raises(ValueError, match="t must"):
      flow(t)
  with pytest.raises(ValueError, match="k must"):
    flow.steps(1.5)


# --- the ensemble -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def erf2():
  return ntkpde.mlp(depth=2, activation="erf", W_std=1.5, b_std=0.1)


@pytest.fixture(scope="module")
def regression_data():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (12, 1))
  return x, np.sin(3 * x[:, 0]), np.linspace(-1, 1, 7)[:, None]


@pytest.mark.parametrize("get", ["ntk", "nngp"])
def test_identity_channel_matches_neural_tangents(erf2, regression_data, get):
  nt = import_neural_tangents()
  x, y, x_test = regression_data
  ident = operators.identity(X1)
  ours = gradient_descent_mse_ensemble(erf2.kernel_fn, [("data", ident, x)], [y],
                                       learning_rate=0.7)
  ref = nt.predict.gradient_descent_mse_ensemble(erf2.kernel_fn.base, x, y[:, None],
                                                 learning_rate=0.7)
  times = np.array([0.0, 1.0, 30.0, 1e4])
  for xt in (x_test, None):
    mean, cov = ours(times, xt, get=get, compute_cov=True)
    ref_mean, ref_cov = ref(times, xt, get=get, compute_cov=True)
    ref_mean = np.asarray(ref_mean)[..., 0]
    assert mean.shape == (4, len(x if xt is None else xt))
    assert np.abs(mean - ref_mean).max() <= 1e-10 * np.abs(ref_mean).max()
    assert np.abs(cov - np.asarray(ref_cov)).max() <= 1e-10 * np.abs(ref_cov).max()
  # t = inf: both solve with K; difference <= n eps cond(K) (times a safety factor 10).
  K = np.asarray(erf2.kernel_fn(x, None, get))
  bound = 10 * len(x) * EPS * np.linalg.cond(K)
  mean, cov = ours(None, x_test, get=get, compute_cov=True)
  ref_mean, ref_cov = ref(None, x_test, get=get, compute_cov=True)
  assert np.abs(mean - np.asarray(ref_mean)[:, 0]).max() <= bound * np.abs(ref_mean).max()
  prior_scale = np.abs(np.asarray(erf2.kernel_fn(x_test, None, "nngp"))).max()
  assert np.abs(cov - np.asarray(ref_cov)).max() <= bound * prior_scale
  assert ours(1.0, x_test, get=get).shape == (7,)


def toy_kernel(x1, x2=None, get="ntk"):
  """A smooth positive-definite kernel that compiles fast (tests of the weighted,
  multi-channel algebra do not need a network kernel)."""
  x2 = x1 if x2 is None else x2
  d2 = jnp.sum((x1[:, None, :] - x2[None, :, :]) ** 2, -1)
  ell = 0.3 if get == "ntk" else 0.4
  return jnp.exp(-d2 / (2 * ell ** 2)) * (1.0 + 0.5 * x1 @ x2.T)


@pytest.fixture(scope="module")
def two_channels():
  rng = np.random.default_rng(3)
  interior = ("interior", operators.parse("u_xx", X1), rng.uniform(0.05, 0.95, (6, 1)))
  boundary = ("boundary", operators.identity(X1), np.array([[0.0], [1.0]]))
  targets = [np.sin(2 * interior[2][:, 0]), np.array([0.3, -0.2])]
  return [interior, boundary], targets


def linearised_ode_solution(kernel_fn, channels, targets, A, c, x_test, t):
  """Mean and covariance of (train, test) outputs by integrating the linearised ODE
  ``d/dt [f_train; f_test] = -c [K; K_tx] A (f_train - y)`` with solve_ivp, for the mean
  and for the linear map of the initial values (covariance = Phi Sigma0 Phi^T)."""
  chans = [ntkpde.Channel(*c_) for c_ in channels]
  ident = operators.identity(X1)
  n, m = sum(len(ch.points) for ch in chans), len(x_test)
  y = np.concatenate(targets)

  def cross(get, T_row, pts):
    return np.concatenate([np.asarray(ntkpde.operator_kernel(kernel_fn, T_row, ch.operator, get)(
        pts, ch.points)) for ch in chans], axis=1)
  Kxx = np.asarray(ntkpde.gram(kernel_fn, channels, "ntk").matrix)
  Ktx = cross("ntk", ident, x_test)
  big = np.vstack([Kxx, Ktx]) @ A  # (n + m, n)

  def rhs(_, z):
    Z = z.reshape(n + m, -1)
    return (-c * big @ Z[:n]).ravel()
  z0 = np.concatenate([np.zeros((n + m, 1)), np.eye(n + m)], axis=1)
  z0[:n, 0] = -y  # column 0 tracks the mean of f - (y, 0); the rest the linear map
  sol = scipy.integrate.solve_ivp(rhs, (0, t), z0.ravel(), method="DOP853", rtol=1e-12,
                                  atol=1e-12)
  Z = sol.y[:, -1].reshape(n + m, -1)
  mean_test = Z[n:, 0]
  Phi = Z[n:, 1:]
  Nxx = np.asarray(ntkpde.gram(kernel_fn, channels, "nngp").matrix)
  Ntx = cross("nngp", ident, x_test)
  Ntt = np.asarray(ntkpde.operator_kernel(kernel_fn, ident, ident, "nngp")(x_test))
  Sigma0 = np.block([[Nxx, Ntx.T], [Ntx, Ntt]])
  return mean_test, Phi @ Sigma0 @ Phi.T


@pytest.mark.parametrize("weight", ["vector", "matrix"])
def test_weighted_two_channel_ensemble_matches_ode_integration(two_channels, weight):
  channels, targets = two_channels
  n = 8
  A = np.r_[np.full(6, 0.5), np.full(2, 4.0)] if weight == "vector" else (
      lambda Y: Y @ Y.T / n + 0.2 * np.eye(n))(np.random.default_rng(1).normal(size=(n, n)))
  lr, t = 2.0, 3.0
  x_test = np.linspace(0, 1, 5)[:, None]
  predict_fn = gradient_descent_mse_ensemble(toy_kernel, channels, targets, learning_rate=lr,
                                             weights=A)
  mean, cov = predict_fn(t, x_test, compute_cov=True)
  A_mat = np.diag(A) if A.ndim == 1 else A
  ref_mean, ref_cov = linearised_ode_solution(toy_kernel, channels, targets, A_mat, lr / n,
                                              x_test, t)
  assert np.abs(mean - ref_mean).max() <= 1e-8 * np.abs(ref_mean).max()
  assert np.abs(cov - ref_cov).max() <= 1e-8 * np.abs(ref_cov).max()


def test_infinite_time_fits_every_channel_and_test_operator(two_channels):
  channels, targets = two_channels
  predict_fn = gradient_descent_mse_ensemble(toy_kernel, channels, targets)
  y = np.concatenate(targets)
  K = np.asarray(ntkpde.gram(toy_kernel, channels).matrix)
  bound = 10 * len(y) * EPS * np.linalg.cond(K) * np.abs(y).max()
  assert np.abs(predict_fn(None) - y).max() <= bound            # training residuals vanish
  interior_pts = channels[0][2]
  fitted = predict_fn(None, interior_pts, test_operator=channels[0][1])
  assert np.abs(fitted - targets[0]).max() <= bound
  # Finite large t approaches the same limit (the slowest mode decays as e^{-c l_min t}).
  lam_min = np.linalg.eigvalsh(K).min() / len(y)
  t_big = 40 / lam_min
  assert np.abs(predict_fn(t_big) - y).max() <= bound + np.exp(-40) * np.abs(y).max() * 10


def test_singular_system_needs_no_diag_reg(two_channels):
  """A channel given twice makes Theta exactly singular; the limit of the flow is the fit of
  the channel once (the duplicate only doubles its weight, which the limit does not see).
  Reference: the single channel, a 6x6 well-conditioned system (1e-8 relative)."""
  channels, targets = two_channels
  doubled = [channels[0], ("again", channels[0][1], channels[0][2])]
  predict_fn = gradient_descent_mse_ensemble(toy_kernel, doubled, [targets[0], targets[0]])
  once = gradient_descent_mse_ensemble(toy_kernel, channels[:1], targets[:1])
  x_test = np.linspace(0, 1, 5)[:, None]
  expected = once(None, x_test)
  assert np.abs(predict_fn(None, x_test) - expected).max() <= 1e-8 * np.abs(expected).max()
  # With diag_reg the answer is the ridge solve k_tx (K + reg Tr(K)/n I)^{-1} y, by
  # numpy.linalg.solve on the assembled Gram (was: checked only for being finite). Error of
  # both routes: n eps cond(K_reg) times the size of the terms (factor 10).
  reg = 1e-6
  regularised = gradient_descent_mse_ensemble(toy_kernel, doubled, [targets[0], targets[0]],
                                              diag_reg=reg)
  K = np.asarray(ntkpde.gram(toy_kernel, doubled).matrix)
  K_reg = K + reg * np.trace(K) / len(K) * np.eye(len(K))
  k_tx = np.asarray(ntkpde.operator_kernel(toy_kernel, operators.identity(X1), channels[0][1])(
      x_test, channels[0][2]))
  k_tx = np.concatenate([k_tx, k_tx], axis=1)
  coef = np.linalg.solve(K_reg, np.r_[targets[0], targets[0]])
  bound = 10 * len(K) * EPS * np.linalg.cond(K_reg) * np.abs(k_tx).sum(1).max() * np.abs(coef).max()
  assert np.abs(regularised(None, x_test) - k_tx @ coef).max() <= bound
  assert np.abs(regularised(None, x_test) - expected).max() > 10 * bound  # the ridge matters


def test_small_times_use_the_series_of_one_minus_exp():
  """At ``c K t = 1e-9`` the gain ``g = (1 - e^{-l t}) / l`` is taken from its series;
  for a 1x1 kernel the mean at the training point is ``-expm1(-c K t) y`` (NumPy's expm1,
  accurate to an ulp): 1e-13 relative catches an O(l t) error in the series."""
  kernel = lambda a, b=None, get=None: 2.0 + 0.0 * a @ (a if b is None else b).T
  x, y = np.array([[0.3]]), np.array([1.7])
  predict_fn = gradient_descent_mse_ensemble(kernel, [("u", operators.identity(X1), x)], [y])
  times = np.array([1e-12, 5e-10, 1e-3, 2.0])
  expected = -np.expm1(-2.0 * times) * y[0]
  np.testing.assert_allclose(predict_fn(times)[:, 0], expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(targets=[np.ones(6)]), "one array per channel"),
    (dict(targets=[np.ones(5), np.ones(2)]), "shape"),
    (dict(targets=[np.ones(6), np.array([np.nan, 1.0])]), "NaN"),
    (dict(weights=np.ones(3)), "weights must be"),
    (dict(weights={"nope": 1.0}), "unknown channel"),
    (dict(weights="magic"), "unknown weight rule"),
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(diag_reg=-1.0), "diag_reg"),
    (dict(ntk_gram=np.eye(7)), "ntk_gram must be the"),
])
def test_ensemble_rejects_bad_input(two_channels, kwargs, match):
  channels, targets = two_channels
  args = dict(kernel_fn=toy_kernel, channels=channels, targets=targets)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    gradient_descent_mse_ensemble(**args)


def test_a_given_ntk_gram_is_used_instead_of_a_second_assembly(two_channels, monkeypatch):
  """``ntk_gram`` (what ``ntkpde solve`` passes) gives the same predictions as the Gram the
  ensemble assembles itself, and no NTK Gram is assembled again."""
  channels, targets = two_channels
  G = ntkpde.gram(toy_kernel, channels, "ntk")
  times = np.array([0.5, 5.0, np.inf])
  expected = gradient_descent_mse_ensemble(toy_kernel, channels, targets, weights="trace")(times)
  calls = []
  real = predict.gram
  monkeypatch.setattr(predict, "gram", lambda *a, **k: calls.append(a[2:]) or real(*a, **k))
  given = gradient_descent_mse_ensemble(toy_kernel, channels, targets, weights="trace",
                                        ntk_gram=G)(times)
  assert ("ntk",) not in calls
  np.testing.assert_array_equal(given, expected)


def test_poisson1d_infinite_width_pinn_error_falls_with_n():
  """t = inf ensemble mean of the PINN on u_xx = -16 pi^2 sin(4 pi x): the max error
  against the exact solution falls with the number of interior points (measured
  0.17, 0.011, 8e-6 for N = 6, 12, 24; docs/dynamics.md has the full table). We assert
  a factor >= 4 per doubling, far below the observed 16 and 1300, and above what
  rounding (n eps cond(K) < 1e-4 here) could produce by chance."""
  problem = ntkpde.problems.get("poisson1d")
  net = ntkpde.mlp(depth=1, activation="erf", W_std=1.5, b_std=0.1, input_map=problem.input_map())
  x_test = np.linspace(0, 1, 101)[:, None]
  exact = problem.exact_fn()(x_test)
  errors = []
  for n in (6, 12, 24):
    sample = problem.sample(sizes={"interior": n}, sampler="grid")
    mean = gradient_descent_mse_ensemble(net.kernel_fn, sample.channels, sample.targets)(None, x_test)
    errors.append(np.abs(mean - exact).max() / np.abs(exact).max())
  assert errors[1] < errors[0] / 4 and errors[2] < errors[1] / 4, errors


def test_zero_weight_channel_is_ignored_at_infinity_and_inf_mixes_with_finite(two_channels):
  """A channel with weight 0 never enters the loss: at t = inf the ensemble equals the one
  trained on the other channels alone (the limit G = Theta_PP^{-1} on positive weights).
  Both are eigen-solves of an O(1)-conditioned 6x6 system: 1e-10."""
  channels, targets = two_channels
  x_test = np.linspace(0, 1, 5)[:, None]
  weighted = gradient_descent_mse_ensemble(toy_kernel, channels, targets, weights={"boundary": 0.0})
  alone = gradient_descent_mse_ensemble(toy_kernel, channels[:1], targets[:1])
  expected = alone(None, x_test)
  assert np.abs(weighted(None, x_test) - expected).max() <= 1e-10 * np.abs(expected).max()
  both = weighted(np.array([1.0, np.inf]), x_test)
  assert np.allclose(both[1], weighted(None, x_test), rtol=1e-13, atol=0)
  assert np.allclose(both[0], weighted(1.0, x_test), rtol=1e-13, atol=0)


def test_defective_weighting_takes_the_expm_route_and_matches_the_jordan_closed_form():
  """``K = I`` (two far-apart points of a narrow Gaussian: the off-diagonal entry
  ``e^{-1000}`` underflows to 0) and the admissible non-symmetric weighting
  ``A = [[1, 1], [0, 1]]`` make ``K A`` a Jordan block: no eigenbasis, so both the flow and
  the ensemble take the expm routes (Van Loan's block exponential for ``G(t)``). Closed form:
  ``exp(-c A t) = e^{-c t} [[1, -c t], [0, 1]]``, ``(I - c A)^k = (1 - c)^k [[1, -k c / (1 - c)],
  [0, 1]]``; at the training points ``mean = (I - E) y`` and ``cov = E E^T`` with
  ``E = exp(-c A t)``. ``expm`` (Pade, scaling and squaring) is accurate to ~1e-15 here: 1e-12."""
  kernel = lambda a, b=None, get=None: jnp.exp(-1e3 * jnp.sum(
      (a[:, None, :] - (a if b is None else b)[None, :, :]) ** 2, -1))
  x, y, r0 = np.array([[0.0], [1.0]]), np.array([0.4, -1.3]), np.array([0.7, 2.0])
  A = np.array([[1.0, 1.0], [0.0, 1.0]])

  def jordan_exp(c, t):
    return np.exp(-c * t) * np.array([[1.0, -c * t], [0.0, 1.0]])
  flow = residual_flow(np.eye(2), r0, A, learning_rate=0.3)
  assert flow.method == "expm"
  for t in (0.0, 0.7, 5.0):
    np.testing.assert_allclose(flow(t), jordan_exp(0.3, t) @ r0, rtol=0, atol=1e-12)
  for k in (0, 1, 7):
    step_k = 0.7 ** k * np.array([[1.0, -k * 0.3 / 0.7], [0.0, 1.0]])
    np.testing.assert_allclose(flow.steps(k), step_k @ r0, rtol=0, atol=1e-12)
  with pytest.raises(ValueError, match="not diagonalisable"):
    flow(np.inf)
  lr = 1.2
  predict_fn = gradient_descent_mse_ensemble(kernel, [("u", operators.identity(X1), x)], [y],
                                             learning_rate=lr, weights=A)
  times = np.array([0.0, 0.5, 3.0])
  mean, cov = predict_fn(times, compute_cov=True)
  for t, m, s in zip(times, mean, cov):
    E = jordan_exp(lr / 2, t)
    np.testing.assert_allclose(m, (np.eye(2) - E) @ y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s, E @ E.T, rtol=0, atol=1e-12)


def test_a_prediction_compiles_every_block_in_one_wave(two_channels, compile_calls):
  """A first prediction with covariance hands every program it needs (NTK and NNGP Grams,
  cross blocks, the test NNGP) to ``compile_concurrently`` at once, none later, and gives
  the same numbers as a second call. Every tile is 8 x 8; the cores are compiled by no other
  test."""
  channels, targets = two_channels
  kfn = ntkpde.mlp(2, activation="erf", W_std=1.3).kernel_fn
  fn = gradient_descent_mse_ensemble(kfn, channels, targets)
  x_test = np.linspace(0.0, 1.0, 5)[:, None]
  mean, cov = fn(t=np.inf, x_test=x_test, compute_cov=True)
  # per get: (u_xx, u_xx), (u_xx, u), (u, u) on the channels; (u, u_xx) across (u, u shared)
  assert compile_calls[0] == 8 and not any(compile_calls[1:]), compile_calls
  again = fn(t=np.inf, x_test=x_test, compute_cov=True)
  np.testing.assert_array_equal(mean, again[0])
  np.testing.assert_array_equal(cov, again[1])
