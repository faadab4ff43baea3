"""ntkpde.operators: parsing, algebra, application to functions, errors.

Applications are compared with derivatives written by hand; forward-mode autodiff is
exact up to float64 rounding of a few dozen operations, so ``rtol = 1e-13``
(about 500 eps) is a safe bound for these O(1) smooth functions.
"""
import jax.numpy as jnp
import numpy as np
import pytest
import sympy

import ntkpde  # noqa: F401  (float64)
from ntkpde import operators
from ntkpde.operators import directional_derivative, identity, normal_derivative, parse

XY = ("x", "y")
x_, y_ = sympy.symbols("x y", real=True)


def as_dict(op):
  return {t.multi_index: sympy.nsimplify(t.coefficient) for t in op.terms}


@pytest.mark.parametrize("text, coords, params, expected, order", [
    ("u_xx + u_yy", XY, None, {(2, 0): 1, (0, 2): 1}, 2),
    ("u_tt - 4*u_xx", ("x", "t"), None, {(0, 2): 1, (2, 0): -4}, 2),
    ("-u_xx + a*u", ("x",), {"a": 2.0}, {(2,): -1, (0,): 2}, 2),
    ("-u_xx + a*u", ("x",), {"a": 0.25}, {(2,): -1, (0,): sympy.Rational(1, 4)}, 2),
    ("x*u_x + u", XY, None, {(1, 0): x_, (0, 0): 1}, 1),
    ("Derivative(u, x, 2)", ("x",), None, {(2,): 1}, 2),
    ("diff(u, x, y) + 3*u_xy", XY, None, {(1, 1): 4}, 2),
    ("u_xxyy", XY, None, {(2, 2): 1}, 4),
])
def test_parse_documented_forms(text, coords, params, expected, order):
  op = parse(text, coords, params)
  assert op.coords == coords
  assert as_dict(op) == {k: sympy.sympify(v) for k, v in expected.items()}
  assert op.order == order


def test_subscripts_with_multi_letter_coordinates():
  op = parse("u_x1x1 + u_x2", ("x1", "x2"))
  assert as_dict(op) == {(2, 0): 1, (0, 1): 1}


def test_algebra_and_order():
  lap = parse("u_xx + u_yy", XY)
  ident = identity(XY)
  assert as_dict(lap + ident) == {(2, 0): 1, (0, 2): 1, (0, 0): 1}
  assert as_dict(lap - parse("u_xx", XY)) == {(0, 2): 1}
  assert (lap - lap).terms == () and (lap - lap).order == 0
  assert as_dict(-lap) == {(2, 0): -1, (0, 2): -1}
  assert as_dict(2 * lap) == as_dict(lap * 2) == {(2, 0): 2, (0, 2): 2}
  assert as_dict("x" * ident) == {(0, 0): x_}
  assert (lap + parse("u_xxx", XY)).order == 3
  # Equal operators built differently are equal and hash equal (kernel caches rely on it).
  assert parse("u_x", XY) == directional_derivative(XY, (1, 0))
  assert hash(parse("u_x", XY)) == hash(directional_derivative(XY, (1, 0)))
  with pytest.raises(TypeError, match="scalar"):
    lap * lap
  with pytest.raises(ValueError, match="coordinates"):
    lap + identity(("x", "t"))
  with pytest.raises(ValueError, match="unknown name .k."):
    lap * "k"


def f_single(p):
  x, y = p[..., 0], p[..., 1]
  return jnp.sin(2 * x) * jnp.exp(y) + x ** 3 * y


def f_hand(x, y):
  """(f, f_x, f_y, f_xx, f_yy, f_xy) of f_single."""
  s, c, e = np.sin(2 * x), np.cos(2 * x), np.exp(y)
  return (s * e + x ** 3 * y, 2 * c * e + 3 * x ** 2 * y, s * e + x ** 3, -4 * s * e + 6 * x * y,
          s * e, 2 * c * e + 3 * x ** 2)


@pytest.mark.parametrize("text, combine", [
    ("u_xx + u_yy", lambda x, y, d: d[3] + d[4]),
    ("x*u_x + u", lambda x, y, d: x * d[1] + d[0]),
    ("u_xy - 3*u_y", lambda x, y, d: d[5] - 3 * d[2]),
    ("u", lambda x, y, d: d[0]),
])
def test_application_matches_hand_derivatives(text, combine):
  op = parse(text, XY)
  pts = np.random.default_rng(0).uniform(-1, 1, (7, 2))
  expected = combine(pts[:, 0], pts[:, 1], f_hand(pts[:, 0], pts[:, 1]))
  batched = np.asarray(op(f_single)(jnp.asarray(pts)))  # row-local batch
  single = np.array([float(op(f_single)(jnp.asarray(p))) for p in pts[:2]])
  np.testing.assert_allclose(batched, expected, rtol=1e-13, atol=1e-13)
  np.testing.assert_allclose(single, expected[:2], rtol=1e-13, atol=1e-13)


def test_differentiate_multi_index():
  pts = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (4, 2)))
  got = operators.differentiate(f_single, (1, 1))(pts)
  np.testing.assert_allclose(got, f_hand(*np.asarray(pts).T)[5], rtol=1e-13)


def test_identity_and_normal_derivative():
  ident = identity(XY)
  assert ident.order == 0 and as_dict(ident) == {(0, 0): 1}
  pts = jnp.asarray([[0.3, -0.2], [0.6, 0.8]])
  np.testing.assert_array_equal(ident(f_single)(pts), f_single(pts))
  # On the unit circle with outward normal (x, y), d_n (x^2 + y^2) = 2 (x^2 + y^2) = 2.
  nd = normal_derivative(XY, ("x", "y"))
  assert as_dict(nd) == {(1, 0): x_, (0, 1): y_} and nd.order == 1
  theta = np.linspace(0, 2 * np.pi, 5)
  circle = jnp.asarray(np.stack([np.cos(theta), np.sin(theta)], 1))
  np.testing.assert_allclose(nd(lambda p: p[..., 0] ** 2 + p[..., 1] ** 2)(circle), 2.0, rtol=1e-14)
  assert normal_derivative(XY, (1, 0)) == parse("u_x", XY)
  with pytest.raises(ValueError, match="3 components, coordinates \\[.x., .y.\\] need 2"):
    normal_derivative(XY, (1, 0, 0))
  with pytest.raises(ValueError, match="zero"):
    directional_derivative(XY, (0, 0))


@pytest.mark.parametrize("text, message", [
    ("u**2", "nonlinear"),
    ("u*u_x", "nonlinear"),
    ("u_xx + sin(u)", "nonlinear"),
    ("u_xx + 1", "does not contain u"),
    ("u_xx + f(x)*u", "not an allowed function"),
    ("u_z", "not one of the coordinates"),
    ("u_xx +", "cannot parse"),
    ("u_x - u_x", "zero operator"),
])
def test_parse_errors(text, message):
  with pytest.raises(ValueError, match=message):
    parse(text, XY)


def test_unknown_symbol_lists_coordinates_and_parameters():
  with pytest.raises(ValueError) as err:
    parse("u_xx + k*u", XY, params={"a": 1.0})
  text = str(err.value)
  assert "['k']" in text and "['x', 'y']" in text and "['a']" in text and "params=" in text


@pytest.mark.parametrize("coords, params, message", [
    (("x", "x"), None, "distinct"),
    (("u",), None, "not 'u'"),
    (("x", "y"), {"x": 1.0}, "clash"),
])
def test_bad_coordinates_and_parameters(coords, params, message):
  with pytest.raises(ValueError, match=message):
    parse("u_x", coords, params)


@pytest.mark.parametrize("text", ["x*u_x + u_xy", "Derivative(u, x, y) + u_x",
                                  "u_x + u_xx + u_xxy + u_y + u"])
def test_mixed_derivatives_beside_their_lower_orders_are_kept(text):
  """Regression: SymPy's subs replaced Derivative(u, x, y) by d/dy of the u_x placeholder, 0."""
  x, y = sympy.symbols("x y", real=True)
  f = sympy.sin(2 * x) * sympy.exp(y) + x ** 3 * y ** 2
  op = parse(text, XY)
  applied = sum(t.coefficient * sympy.diff(f, x, t.multi_index[0], y, t.multi_index[1])
                for t in op.terms)
  names = {"u": f, "u_x": f.diff(x), "u_y": f.diff(y), "u_xx": f.diff(x, 2),
           "u_xy": f.diff(x, y), "u_xxy": f.diff(x, 2, y)}
  by_hand = {"x*u_x + u_xy": x * names["u_x"] + names["u_xy"],
             "Derivative(u, x, y) + u_x": names["u_xy"] + names["u_x"],
             "u_x + u_xx + u_xxy + u_y + u": names["u_x"] + names["u_xx"] + names["u_xxy"]
             + names["u_y"] + names["u"]}[text]
  assert sympy.simplify(applied - by_hand) == 0
