"""Finite-width training (ntkpde.training) in the units of ntkpde.predict.

* The linearised network under gradient descent is exactly linear in the residuals:
  ``r_k = (I - (eta/n) K0 A)^k r0`` with ``K0`` its (constant) empirical kernel. The
  training route (autodiff gradients of the loss, ``fori_loop``) and the prediction
  route (``eigh`` in ntkpde.predict) share no code; both are exact, so they agree to
  round-off (1e-9 relative allows ``k * eps * cond`` growth over 60 steps).
* One small step of the real network: ``r_1 - r_0 = -(eta/n) K A r_0 + O(eta^2)``, with
  ``K = J J^T`` from a Jacobian written here (``jax.hessian`` in ``x``, ``jax.jacrev`` in the
  flattened parameters), which also checks ntkpde.finite's and the recorded kernels; at ``(eta/n) lambda_max = 1e-4`` the
  second-order term is ~1e-4 relative, so 1e-3 checks the 1/(2n) normalisation.
"""
import jax
import numpy as np
import pytest

import ntkpde
from ntkpde import finite, operators, training

UXX, ID = operators.parse("u_xx", "x"), operators.identity("x")
XR, XB = np.linspace(-0.9, 0.9, 5)[:, None], np.array([[-1.0], [1.0]])
CHANNELS = [("r", UXX, XR), ("b", ID, XB)]
TARGETS = [-np.pi ** 2 * np.sin(np.pi * XR[:, 0]), np.zeros(2)]
WEIGHTS = {"r": 1.0, "b": 4.0}
A = np.repeat([1.0, 4.0], [5, 2])
SIZES = {"r": 5, "b": 2}


def jacobian_gram(net, params):
  """``J J^T`` of the residual map ``theta -> (u_xx(XR), u(XB))`` by an independent route:
  ``u_xx`` by ``jax.hessian`` of the scalar network at each point, the parameter Jacobian
  by ``jax.jacrev`` over the flattened parameters (no ntkpde.finite, no operator objects)."""
  from jax.flatten_util import ravel_pytree
  flat, unravel = ravel_pytree(params)

  def u(theta, x):
    return net.apply_fn(unravel(theta), x.reshape(1, 1))[0, 0]

  def residual_map(theta):
    uxx = jax.vmap(lambda x: jax.hessian(u, argnums=1)(theta, x))(XR[:, 0])
    return jax.numpy.concatenate([uxx, jax.vmap(lambda x: u(theta, x))(XB[:, 0])])
  J = np.asarray(jax.jacrev(residual_map)(flat))
  return J @ J.T


@pytest.fixture(scope="module")
def setup():
  net = ntkpde.mlp(1, 64, "erf", 1.5, 0.1)
  _, params = net.init_fn(jax.random.PRNGKey(0), (-1, 1))
  K0 = np.asarray(finite.empirical_gram(net.apply_fn, params, CHANNELS).matrix)
  lam = np.linalg.eigvalsh(np.sqrt(A)[:, None] * K0 * np.sqrt(A)[None]).max()
  return net, params, K0, lam


def test_linearised_network_follows_the_kernel_flow_exactly(setup):
  net, params, K0, lam = setup
  n = len(A)
  eta = 1.5 * n / lam                           # (eta/n) lambda_max = 1.5 < 2: stable
  lin = training.linearize(net.apply_fn, params)
  res = training.train(lin, params, CHANNELS, TARGETS, WEIGHTS, eta, steps=60,
                       checkpoints=np.arange(0, 61, 15))
  pred = training.kernel_residuals(K0, res.residuals[0], res.steps, WEIGHTS, eta, SIZES)
  scale = np.abs(res.residuals[0]).max()
  np.testing.assert_allclose(res.residuals, pred, rtol=0, atol=1e-9 * scale)
  total = sum(res.losses.values())
  np.testing.assert_allclose(total, np.sum(A * res.residuals ** 2, axis=1) / (2 * n), rtol=1e-12)
  assert res.drift[0] == 0 and np.all(res.drift[1:] > 0)


def test_one_small_step_has_the_predicted_units(setup):
  net, params, K0, lam = setup
  n = len(A)
  eta = 1e-4 * n / lam
  res = training.train(net.apply_fn, params, CHANNELS, TARGETS, WEIGHTS, eta, steps=1,
                       record_kernel=True)
  r0 = res.residuals[0]
  K_ref = jacobian_gram(net, params)       # independent of finite.empirical_gram
  np.testing.assert_allclose(K0, K_ref, rtol=0, atol=1e-10 * np.abs(K_ref).max())
  predicted = -(eta / n) * K_ref @ (A * r0)
  np.testing.assert_allclose(res.residuals[1] - r0, predicted, rtol=0,
                             atol=1e-3 * np.abs(predicted).max())
  np.testing.assert_allclose(res.kernels[0], K_ref, rtol=0, atol=1e-10 * np.abs(K_ref).max())
  assert res.kernel_change[0] == 0 and res.kernel_change[1] < 1e-3


def test_adam_option_reduces_the_loss(setup):
  net, params, _, _ = setup
  res = training.train(net.apply_fn, params, CHANNELS, TARGETS, WEIGHTS, 1e-2, steps=200,
                       optimizer="adam", checkpoints=[200])
  assert sum(v[-1] for v in res.losses.values()) < 0.1 * sum(v[0] for v in res.losses.values())


def test_bad_arguments_are_rejected(setup):
  net, params, _, lam = setup
  for kwargs, match in [({"optimizer": "sgd"}, "optimizer"), ({"learning_rate": -1.0}, "learning_rate"),
                        ({"checkpoints": [5], "steps": 2}, "checkpoints"), ({"steps": 1.5}, "steps"),
                        ({"weights": {"q": 1.0}}, "unknown channel"),
                        ({"x_test": np.zeros((3, 2))}, "x_test"),
                        ({"x_test": np.array([[np.nan]])}, "x_test")]:
    with pytest.raises(ValueError, match=match):
      training.train(net.apply_fn, params, CHANNELS, TARGETS, **kwargs)
  with pytest.raises(FloatingPointError, match="learning rate"):
    training.train(net.apply_fn, params, CHANNELS, TARGETS, learning_rate=1e6 * len(A) / lam,
                   steps=200, checkpoints=[200])
  with pytest.raises(ValueError, match="record_kernel"):
    training.train(net.apply_fn, params, CHANNELS, TARGETS, steps=0).kernel_change


def test_linearised_function_change_matches_kernel_formula(setup):
  net, params, K0, lam = setup
  n = len(A)
  eta = 1.0 * n / lam
  x_test = np.linspace(-1, 1, 7)[:, None]
  lin = training.linearize(net.apply_fn, params)
  res = training.train(lin, params, CHANNELS, TARGETS, WEIGHTS, eta, steps=30,
                       checkpoints=[10, 30], x_test=x_test)
  # step 0: u_lin(theta_0) = u(theta_0); jit and the zero tangent change only rounding
  np.testing.assert_allclose(res.predictions[0], np.asarray(net.apply_fn(params, x_test))[:, 0],
                             rtol=1e-14)
  np.testing.assert_allclose(res.predictions[-1], np.asarray(lin(res.params, x_test))[:, 0],
                             rtol=1e-14)
  moved = res.predictions - res.predictions[0]          # the prediction trajectory
  K_test = np.concatenate([np.asarray(finite.empirical_operator_ntk(
      net.apply_fn, params, ID, op)(x_test, X)) for _, op, X in CHANNELS], axis=1)
  pred = training.kernel_function_change(K_test, K0, res.residuals[0], res.steps, WEIGHTS, eta,
                                         SIZES)
  assert pred.shape == (3, 7) and np.abs(pred[-1]).max() > 1e-3
  np.testing.assert_allclose(moved, pred, rtol=0, atol=1e-9 * np.abs(pred).max())


def test_gradient_descent_matches_a_plain_loop_with_shared_points():
  """``train`` (channels on the same points share one derivative table; fori_loop) against
  a plain Python loop of ``jax.grad`` steps on residuals built per channel by
  ``LinearOperator.__call__``: the same iterates to round-off after 50 steps."""
  net = ntkpde.mlp(2, 32, "erf", 1.5, 0.1)
  _, params = net.init_fn(jax.random.PRNGKey(3), (-1, 1))
  UX = operators.parse("u_x", "x")
  chans = [("f", ID, XR), ("df", UX, XR), ("r", UXX, XR), ("b", ID, XB)]
  targets = [np.sin(XR[:, 0]), np.cos(XR[:, 0]), -np.sin(XR[:, 0]), np.zeros(2)]
  weights = np.repeat([1.0, 2.0, 0.5, 4.0], [5, 5, 5, 2])
  eta, steps = 0.05, 50
  res = training.train(net.apply_fn, params, chans, targets, {"f": 1.0, "df": 2.0, "r": 0.5,
                                                              "b": 4.0}, eta, steps=steps,
                       checkpoints=[steps])

  def loss(p):
    r = jax.numpy.concatenate([op(lambda z: net.apply_fn(p, z)[:, 0])(X) - y
                               for (_, op, X), y in zip(chans, targets)])
    return jax.numpy.sum(weights * r ** 2) / (2 * len(r))
  grad = jax.jit(jax.grad(loss))
  p = params
  for _ in range(steps):
    p = jax.tree_util.tree_map(lambda a, g: a - eta * g, p, grad(p))
  for a, b in zip(jax.tree_util.tree_leaves(res.params), jax.tree_util.tree_leaves(p)):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())
  assert sum(v[-1] for v in res.losses.values()) < sum(v[0] for v in res.losses.values())


@pytest.mark.parametrize("steps", [[-1, 2], [0.5], [], [[1, 2]]])
def test_kernel_function_change_refuses_steps_that_are_not_step_counts(steps):
  """A negative step used to index the cumulative sum from the end (a wrong number, no
  error); fractions were truncated."""
  K = np.eye(2)
  with pytest.raises(ValueError, match="non-negative integers"):
    training.kernel_function_change(np.ones((1, 2)), K, np.ones(2), steps)
