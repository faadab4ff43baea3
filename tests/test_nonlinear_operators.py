"""ntkpde.operators.parse_nonlinear: residuals against hand-written formulas, Frechet
derivatives against directional finite differences of the residual, operator kernels of
linearised operators against per-pair autodiff.

Finite-difference tolerances come from an error estimate: the central difference
``D_h = (N[u + h v] - N[u - h v]) / 2h`` has error ``c h^2 + O(eps / h)``, so
``|D_h - D_{h/2}|`` estimates ``3/4`` of the error of ``D_h``; we allow
``|D_{h/2} - L v| <= |D_h - D_{h/2}| + 1e3 eps / h`` times the scale of the values.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkpde
from ntkpde import operators
from ntkpde.operators import parse, parse_nonlinear

XY, XT = ("x", "y"), ("x", "t")
EPS = np.finfo(float).eps


def u_ref(p):
  return jnp.sin(2 * p[..., 0] + 0.5) * jnp.exp(0.7 * p[..., 1]) + 0.3 * p[..., 0] * p[..., 1]


def v_dir(p):
  return jnp.cos(p[..., 0] - 2 * p[..., 1]) + p[..., 0] ** 2


def hand(x, y):
  """u_ref and its derivatives (u, u_x, u_y, u_xx, u_yy) written by hand."""
  s, c, e = np.sin(2 * x + 0.5), np.cos(2 * x + 0.5), np.exp(0.7 * y)
  return (s * e + 0.3 * x * y, 2 * c * e + 0.3 * y, 0.7 * s * e + 0.3 * x, -4 * s * e,
          0.49 * s * e)


CASES = [
    ("u_xx + u_yy - u**3", XY, None, lambda d, x, y: d[3] + d[4] - d[0] ** 3),
    ("u_y + u*u_x - nu*u_xx", XY, {"nu": 0.05}, lambda d, x, y: d[2] + d[0] * d[1] - 0.05 * d[3]),
    ("-u_xx + sin(u)", XY, None, lambda d, x, y: -d[3] + np.sin(d[0])),
    ("u_x**2 + u_y**2 - 1 + eps*(u_xx+u_yy)", XY, {"eps": 0.1},
     lambda d, x, y: d[1] ** 2 + d[2] ** 2 - 1 + 0.1 * (d[3] + d[4])),
    ("x*exp(u)*u_y + Derivative(u, x, 2)", XY, None,
     lambda d, x, y: x * np.exp(d[0]) * d[2] + d[3]),
]
POINTS = np.random.default_rng(0).uniform(-1, 1, (9, 2))


@pytest.mark.parametrize("text, coords, params, formula", CASES, ids=[c[0] for c in CASES])
def test_residual_matches_hand_formula(text, coords, params, formula):
  N = parse_nonlinear(text, coords, params)
  expected = formula(hand(*POINTS.T), *POINTS.T)
  np.testing.assert_allclose(N.residual(u_ref)(jnp.asarray(POINTS)), expected, rtol=1e-13,
                             atol=1e-13)
  single = float(N.residual(u_ref)(jnp.asarray(POINTS[0])))
  np.testing.assert_allclose(single, expected[0], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("text, coords, params, formula", CASES, ids=[c[0] for c in CASES])
def test_linearization_matches_directional_finite_difference(text, coords, params, formula):
  N = parse_nonlinear(text, coords, params)
  L = N.linearize(u_ref)
  assert isinstance(L, operators.LinearOperator)
  x = jnp.asarray(POINTS)
  exact = np.asarray(L(v_dir)(x))

  def central(h):
    plus = N.residual(lambda p: u_ref(p) + h * v_dir(p))(x)
    minus = N.residual(lambda p: u_ref(p) - h * v_dir(p))(x)
    return np.asarray((plus - minus) / (2 * h))
  h = 1e-3
  coarse, fine = central(h), central(h / 2)
  scale = np.abs(exact).max() + np.abs(np.asarray(N.residual(u_ref)(x))).max()
  tolerance = np.abs(coarse - fine) + 1e3 * EPS / h * scale
  assert np.all(np.abs(fine - exact) <= tolerance), np.abs(fine - exact) / tolerance
  # The estimate is not vacuous: a wrong linearisation (one term dropped) fails it.
  wrong = np.asarray(operators.LinearOperator(L.coords, L.terms[1:], L.fields)(v_dir)(x))
  assert np.any(np.abs(fine - wrong) > 100 * tolerance)


@pytest.mark.parametrize("text, coords, params, formula", CASES, ids=[c[0] for c in CASES])
def test_hessian_matches_central_differences_of_the_gradient(text, coords, params, formula):
  """``d^2F/dp_j dp_k`` against ``(dF/dp_j(p + h e_k) - dF/dp_j(p - h e_k)) / 2h`` (error
  ``c h^2 + O(eps / h)``, estimated from two steps as above)."""
  N = parse_nonlinear(text, coords, params)
  x = jnp.asarray(POINTS)
  p = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (len(POINTS), len(N.multi_indices))))
  exact = np.asarray(N.hessian(x, p))
  assert exact.shape == (len(POINTS),) + (len(N.multi_indices),) * 2

  def central(h):
    return np.stack([np.asarray(N.gradient(x, p + h * e) - N.gradient(x, p - h * e)) / (2 * h)
                     for e in np.eye(p.shape[1])], axis=-1)
  h = 1e-3
  coarse, fine = central(h), central(h / 2)
  scale = np.abs(np.asarray(N.gradient(x, p))).max() + np.abs(exact).max()
  tolerance = np.abs(coarse - fine) + 1e3 * EPS / h * scale
  assert np.all(np.abs(fine - exact) <= tolerance), np.abs(fine - exact) / tolerance
  np.testing.assert_array_equal(exact, np.swapaxes(exact, -1, -2))


def test_linear_input_linearises_to_parse():
  N = parse_nonlinear("-u_xx + a*x*u_y", XY, {"a": 2.0})
  assert N.is_linear and not parse_nonlinear("u*u_x", XY).is_linear
  assert N.linearize(u_ref) == parse("-u_xx + a*x*u_y", XY, {"a": 2.0})
  assert N.order == 2 and N.multi_indices == ((0, 0), (0, 1), (2, 0))


def test_linearisations_at_different_references_combine():
  N = parse_nonlinear("u**2 + u_x", XY)
  L1, L2 = N.linearize(u_ref), N.linearize(v_dir)
  x = jnp.asarray(POINTS)
  np.testing.assert_allclose((L1 + L2)(v_dir)(x), L1(v_dir)(x) + L2(v_dir)(x), rtol=1e-13)
  np.testing.assert_allclose((L1 - L1)(v_dir)(x), 0.0)
  assert L1 != L2 and hash(L1) != hash(L2)
  # d/du u^2 = 2 u_ref: the coefficient of u is twice the reference.
  np.testing.assert_allclose(L1.coefficients(x)[0], 2 * u_ref(x), rtol=1e-14)


@pytest.mark.parametrize("text, message", [
    ("u_xx + __import__('os').system('true')", "not allowed"),
    ("u_xx + f(u)", "not an allowed function"),
    ("x + y", "does not contain u"),
    ("u_xx + k*u**2", "unknown symbol"),
    ("u_z**2", "not one of the coordinates"),
    ("u**" + "9" * 5, "exponents"),
])
def test_parse_nonlinear_errors(text, message):
  with pytest.raises(ValueError, match=message):
    parse_nonlinear(text, XY)


def test_operator_kernel_of_linearised_operator_matches_per_pair_autodiff():
  """``L_x L_x' K`` for ``L = N'[u_ref]``, ``N = -u_xx + u^3`` (1-D), against nested
  ``jax.grad`` on one pair at a time with the coefficients ``3 u_ref^2`` written out."""
  net = ntkpde.mlp(1, activation="erf")
  N = parse_nonlinear("-u_xx + u**3", ("x",))
  ref = lambda p: jnp.sin(3 * p[..., 0])  # noqa: E731
  L = N.linearize(ref)
  x = np.linspace(-0.9, 0.8, 5)[:, None]
  got = np.asarray(ntkpde.operator_kernel(net.kernel_fn, L)(x, x))

  def k(a, b):
    return net.kernel_fn(a.reshape(1, 1), b.reshape(1, 1), "ntk")[0, 0]

  def l_side(f):   # g -> -g'' + 3 ref^2 g, in the first argument of f
    return lambda a, b: (-jax.grad(jax.grad(f, 0), 0)(a, b) + 3 * jnp.sin(3 * a) ** 2 * f(a, b))

  def r_side(f):
    return lambda a, b: (-jax.grad(jax.grad(f, 1), 1)(a, b) + 3 * jnp.sin(3 * b) ** 2 * f(a, b))
  both = jax.jit(jax.vmap(jax.vmap(l_side(r_side(k)), (None, 0)), (0, None)))
  expected = np.asarray(both(jnp.asarray(x[:, 0]), jnp.asarray(x[:, 0])))
  np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-11 * np.abs(expected).max())
