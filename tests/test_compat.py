"""neural-tangents 0.6.5 through ntkpde._compat on the installed JAX.

Independent routes: the SymPy closed form of the one-hidden-layer erf kernels, Monte
Carlo over initialisations, and scipy's matrix exponential / solve.

For one hidden layer in the NTK parameterisation, ``f(x) = W/sqrt(n) sum_j v_j
erf(z_j(x)) + b b_out`` with i.i.d. neurons, so both ``E[f(x) f(x')]`` (over seeds) and
the empirical NTK (per seed, an average over the ``n`` neurons) are unbiased Monte
Carlo estimates of the analytic NNGP and NTK at any width: ``E[v_j^2] = 1`` is
independent of ``z_j``. Their errors are tested against 6 estimated standard errors
(a Student-t variable with >= 15 degrees of freedom exceeds 6 with probability
< 3e-5 per entry; the seeds are fixed, so the test is deterministic).
"""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import ntkpde
from ntkpde import _compat
from theory.erf_ntk_closed_form import operator_kernel_closed_form

nt = _compat.import_neural_tangents()
IDENT = ntkpde.operators.identity(("x", "y"))
EPS = np.finfo(np.float64).eps


def closed_form(get, x1, x2):
  return operator_kernel_closed_form(IDENT, IDENT, get, depth=1, W_std=1.5, b_std=0.1)(x1, x2)


def test_import_and_versions():
  assert nt is _compat.import_neural_tangents()
  assert nt.__version__ == _compat.NEURAL_TANGENTS_VERSION == "0.6.5"
  for name in ("stax", "predict", "empirical_ntk_fn", "NtkImplementation"):
    assert hasattr(nt, name)


@pytest.mark.parametrize("version", ["0.10.2", "0.11.2", "0.4.31"])
def test_check_jax_version_accepts_tested(version):
  _compat.check_jax_version(version)


@pytest.mark.parametrize("version", ["0.4.30", "0.12.0", "1.0.0"])
def test_check_jax_version_rejects_untested(version):
  with pytest.raises(RuntimeError, match=rf"JAX >= 0\.4\.31, < 0\.12\.0; found JAX {version}"):
    _compat.check_jax_version(version)


def test_installed_jax_is_supported():
  _compat.check_jax_version()  # the running JAX, which imported neural-tangents above


@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_stax_kernel_fn_matches_closed_form(erf1, points, get):
  x1, x2 = points
  got = erf1.kernel_fn(x1, x2, get)
  exact = closed_form(get, x1, x2)
  # float64 evaluations of the same ~50-operation formula: a few eps relative.
  np.testing.assert_allclose(got, exact, rtol=0, atol=1e-14 * np.max(np.abs(exact)))


WIDTH, SEEDS = 2048, 16


def test_init_apply_covariance_is_the_nngp(points):
  """E[f(x) f(x')] over initialisations equals the NNGP at any width (one hidden
  layer), so a narrow network keeps this Monte Carlo test cheap."""
  narrow = ntkpde.mlp(depth=1, width=64, activation="erf", W_std=1.5, b_std=0.1)
  x = points[0]
  init = jax.jit(lambda key: narrow.init_fn(key, x.shape)[1])
  apply = jax.jit(narrow.apply_fn)
  params = init(jax.random.PRNGKey(0))
  assert params[0][0].shape == (2, 64) and apply(params, x).shape == (6, 1)
  f = np.stack([np.asarray(apply(init(jax.random.PRNGKey(seed)), x))[:, 0] for seed in range(1024)])
  products = f[:, :, None] * f[:, None, :]
  stderr = products.std(0, ddof=1) / np.sqrt(len(f))
  assert np.all(np.abs(products.mean(0) - closed_form("nngp", x, x)) <= 6 * stderr)


def test_empirical_ntk_is_unbiased_for_the_analytic_ntk(points):
  wide = ntkpde.mlp(depth=1, width=WIDTH, activation="erf", W_std=1.5, b_std=0.1)
  x1, x2 = points
  ntk_fns = {i: jax.jit(nt.empirical_ntk_fn(wide.apply_fn, implementation=i)) for i in (1, 2)}
  samples = []
  for seed in range(SEEDS):
    _, params = wide.init_fn(jax.random.PRNGKey(seed), x1.shape)
    samples.append(np.asarray(ntk_fns[1](x1, x2, params)))
    if seed < 2:  # implementations 1 and 2: the same contraction in different orders
      np.testing.assert_allclose(ntk_fns[2](x1, x2, params), samples[-1], rtol=1e-12)
  samples = np.stack(samples)
  exact = closed_form("ntk", x1, x2)
  stderr = samples.std(0, ddof=1) / np.sqrt(SEEDS)
  assert np.all(np.abs(samples.mean(0) - exact) <= 6 * stderr)
  # ... and the per-seed relative fluctuation is of order width^(-1/2).
  spread = np.max(samples.std(0, ddof=1)) / np.max(np.abs(exact))
  assert 0.1 / np.sqrt(WIDTH) < spread < 10 / np.sqrt(WIDTH)


def test_predict_matches_expm_and_interpolates(erf1, points):
  """nt's mean prediction (f_0 has mean 0) against scipy: on the training set
  ``(I - expm(-eta K t / n)) y``, elsewhere ``K_*x K^{-1}`` of that; at t = inf the
  training targets. Both routes are backward stable, so their gap is bounded by
  ~ cond(K) eps |y| times a modest constant (1e3 here)."""
  x_train, x_test = points
  y = np.sin(3 * x_train[:, :1]) + x_train[:, 1:] ** 2
  n, lr, t = len(y), 0.5, 7.0
  predict_fn = nt.predict.gradient_descent_mse_ensemble(erf1.kernel_fn, x_train, y, learning_rate=lr)
  k = np.asarray(erf1.kernel_fn(x_train, x_train, "ntk"))
  k_star = np.asarray(erf1.kernel_fn(x_test, x_train, "ntk"))
  tol = 1e3 * np.linalg.cond(k) * EPS * np.max(np.abs(y))
  fit = y - scipy.linalg.expm(-lr * k * t / n) @ y
  expected = np.concatenate([fit, k_star @ scipy.linalg.solve(k, fit, assume_a="pos")])
  got = predict_fn(t=t, x_test=np.concatenate([x_train, x_test]), get="ntk")
  np.testing.assert_allclose(got, expected, rtol=0, atol=tol)
  np.testing.assert_allclose(predict_fn(t=None, x_test=x_train, get="ntk"), y, rtol=0, atol=tol)


# The four uses of neural-tangents that import but then fail on JAX 0.10 / SciPy 1.14+
# without ntkpde._compat's adapters, each against a route that does not go through it.

def _jacobian_reference(apply_fn, params, x1, x2):
  """``mean_o J_o(x1) J_o(x2)^T`` from ``jax.jacobian`` of the raveled parameters (the
  default ``trace_axes=(-1,)`` is neural-tangents' normalised trace over outputs)."""
  from jax.flatten_util import ravel_pytree
  flat, unravel = ravel_pytree(params)
  jac = [jax.jacobian(lambda p, x=x: apply_fn(unravel(p), x))(flat) for x in (x1, x2)]
  return np.einsum("aop,bop->ab", *jac) / jac[0].shape[1]


@pytest.mark.parametrize("out_dim", [1, 2])
def test_empirical_ntk_implementations_agree_with_jacobian_reference(points, out_dim):
  """Implementations 1, 2, 3 (structured derivatives: ``ad.linearize``'s new signature)
  and 0 (AUTO: ``cost_analysis`` as a dict) contract the same Jacobians in different
  orders; a depth-2 width-16 network has ~400 parameters, so round-off is ~1e-15."""
  net = ntkpde.mlp(depth=2, width=16, activation="erf", W_std=1.5, b_std=0.1, out_dim=out_dim)
  x1, x2 = points
  _, params = net.init_fn(jax.random.PRNGKey(7), x1.shape)
  want = _jacobian_reference(net.apply_fn, params, x1, x2)
  for implementation in (1, 2, 3, 0):
    with warnings.catch_warnings():   # no use of a JAX form deprecated as a future error
      warnings.simplefilter("error", DeprecationWarning)
      got = jax.jit(nt.empirical_ntk_fn(net.apply_fn, implementation=implementation,
                                        vmap_axes=0))(x1, x2, params)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max(),
                               err_msg=f"implementation {implementation}")


def test_max_learning_rate_is_two_n_over_largest_eigenvalue(erf1, points):
  """``2 (1 + momentum) n / (lambda_max + eps)`` (neural-tangents' definition) against
  NumPy's symmetric eigensolver (SciPy renamed ``eigvalsh(eigvals=)``)."""
  k = np.asarray(erf1.kernel_fn(points[0], points[0], "ntk"))
  lam = np.linalg.eigvalsh(k)[-1]
  assert nt.predict.max_learning_rate(k) == pytest.approx(2 * len(k) / (lam + 1e-12), rel=1e-12)
  assert nt.predict.max_learning_rate(k, y_train_size=3, momentum=0.5) == pytest.approx(
      2 * 1.5 * 3 / (lam + 1e-12), rel=1e-12)


def test_gradient_descent_mse_under_vmap_jit_and_grad_matches_a_loop(erf1, points):
  """``jax.core.eval_context()`` inside ``predict``: batched kernels under ``vmap`` (the
  eigendecomposition is batched, not evaluated eagerly on tracers), the same under
  ``jit``, and ``jit`` of a predictor of a concrete kernel, called twice (its cached
  eigendecomposition must be concrete, not a leaked tracer); all against a Python loop of
  unbatched calls. Same operations in the same order: agreement to ~1e-13 relative."""
  x1, x2 = points
  k = np.asarray(erf1.kernel_fn(x1, x1, "ntk"))
  k_test = np.asarray(erf1.kernel_fn(x2, x1, "ntk"))
  y = np.sin(3 * x1[:, :1])
  scales = np.array([0.5, 1.0, 2.0])

  def predict(scale, t):
    fn = nt.predict.gradient_descent_mse(scale * k, y, learning_rate=0.5)
    return jnp.concatenate(fn(t, np.zeros_like(y), np.zeros((len(x2), 1)), scale * k_test))

  loop = np.stack([predict(s, 3.0) for s in scales])
  for batched in (jax.vmap(predict, (0, None)), jax.jit(jax.vmap(predict, (0, None)))):
    np.testing.assert_allclose(batched(jnp.asarray(scales), 3.0), loop,
                               rtol=1e-12, atol=1e-13 * np.abs(loop).max())
  fixed = nt.predict.gradient_descent_mse(k, y, learning_rate=0.5)
  jitted = jax.jit(lambda t: fixed(t, np.zeros_like(y)))
  for t in (1.0, 3.0):
    want = predict(1.0, t)[:len(y)]
    np.testing.assert_allclose(jitted(t), want, rtol=1e-12, atol=1e-13 * np.abs(want).max())
  # d/dt of the training predictions: (eta/n) K exp(-eta K t / n) y, by jvp through eigh's batch
  dfdt = jax.jacfwd(lambda t: predict(1.0, t)[:len(y)])(2.0)
  n, eta = len(k), 0.5
  want = (eta / n) * k @ scipy.linalg.expm(-eta * k * 2.0 / n) @ y
  np.testing.assert_allclose(dfdt, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())


def test_jet_runs_through_custom_jvp_functions(points):
  """``_compat.jet`` (JAX's univariate Taylor mode) through neural-tangents' erf kernel, whose
  ``_sqrt`` is a ``custom_jvp`` function (jax-ml/jax#30352 makes plain ``jet`` raise there):
  its third-order coefficient equals the third derivative by nested ``jax.jvp`` / 3! (two
  roundings of ~10^3 operations each; measured ~1e-15 relative)."""
  net = ntkpde.mlp(2, activation="erf")
  x1, x2 = points[0][:3], points[1][:2]
  direction = jnp.asarray([0.6, -0.8])

  def along(s):
    return net.kernel_fn(x1 + s * direction, x2, "ntk")

  def derivative(f):
    return lambda s: jax.jvp(f, (s,), (1.0,))[1]
  _, series = _compat.jet(along, (0.0,), ([1.0, 0.0, 0.0],))
  third = derivative(derivative(derivative(along)))(0.0)
  np.testing.assert_allclose(series[2], third, rtol=1e-12, atol=1e-12 * np.max(np.abs(third)))
  assert np.max(np.abs(third)) > 1e-3  # a non-trivial coefficient
