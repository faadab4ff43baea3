"""ntkpde.operator_kernel / ntkpde.gram against independent routes.

Routes and tolerances:

* SymPy closed form (theory/erf_ntk_closed_form.py): the same analytic function
  computed by ``sympy.diff`` + NumPy instead of neural-tangents + nested ``jvp``.
  Both are float64 evaluations of expressions with at most ~1e4 operations
  (``sympy.count_ops`` of the depth-1 ``Lap x Lap`` NTK is 9142), so the worst-case
  rounding is ``n_ops * eps ~ 2e-12`` relative to the largest intermediate term;
  ``SYMPY_RTOL = 1e-10`` (relative to the block's largest entry) leaves a factor 50
  for cancellation. Measured: below 2e-15.
* Central finite differences of the plain kernel (theory/finite_differences.py):
  the bound is Richardson's truncation estimate plus the rounding bound
  ``16 eps max|K| ||w||_1``; see ``richardson_check``. A bound that is too loose
  to detect an error of 1e-3 relative would make the test toothless, so that is
  asserted too.
* Symmetry, transposes, PSD and tiling follow from the definitions; their
  tolerances are rounding bounds explained where they are used.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkpde
from ntkpde.input_maps import box_normalization, periodic_embedding
from ntkpde.operators import identity, normal_derivative, parse
from theory.erf_ntk_closed_form import operator_kernel_closed_form
from theory.finite_differences import richardson_check

XY = ("x", "y")
EPS = np.finfo(np.float64).eps
SYMPY_RTOL = 1e-10
IDENT = identity(XY)
LAP = parse("u_xx + u_yy", XY)
UX = parse("u_x", XY)
UY = parse("u_y", XY)
XUX = parse("x*u_x + u", XY)
NEUMANN = normal_derivative(XY, ("x", "y"))


def max_rel(a, b):
  return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def plain_kernel(kernel_fn, get="ntk"):
  return jax.jit(lambda a, b: kernel_fn(a, b, get))


def assert_matches_fd(kernel_fn, T, S, x1, x2, get="ntk"):
  got = np.asarray(ntkpde.operator_kernel(kernel_fn, T, S, get)(x1, x2))
  fd, bound = richardson_check(plain_kernel(kernel_fn, get), T, S, x1, x2)
  assert np.max(bound) < 1e-3 * np.max(np.abs(got)), "finite-difference bound too loose to test"
  err = np.abs(got - fd)
  assert np.all(err <= bound), f"max err/bound {np.max(err / bound):.3g}"


@pytest.mark.parametrize("get", ["ntk", "nngp"])
def test_identity_operator_is_the_plain_kernel(erf1, points, get):
  x1, x2 = points
  got = ntkpde.operator_kernel(erf1.kernel_fn, IDENT, get=get)(x1, x2)
  # Same computation, jitted vs eager: equal up to a few ulps (of the largest entry,
  # since XLA may fuse and reorder operations).
  plain = erf1.kernel_fn(x1, x2, get)
  np.testing.assert_allclose(got, plain, rtol=0, atol=1e-14 * np.max(np.abs(plain)))
  assert got.shape == (6, 5) and got.dtype == jnp.float64


@pytest.mark.parametrize("T, S, get", [
    (LAP, LAP, "ntk"), (UX, UX, "ntk"), (XUX, XUX, "nngp"),
    (LAP, IDENT, "ntk"), (XUX, UY, "ntk"), (NEUMANN, LAP, "nngp"),
], ids=["lap-lap-ntk", "ux-ux-ntk", "xux-xux-nngp", "lap-id-ntk", "xux-uy-ntk",
        "neumann-lap-nngp"])
def test_matches_sympy_closed_form(erf1, points, T, S, get):
  x1, x2 = points
  got = ntkpde.operator_kernel(erf1.kernel_fn, T, S, get)(x1, x2)
  exact = operator_kernel_closed_form(T, S, get, depth=1, W_std=1.5, b_std=0.1)(x1, x2)
  assert max_rel(got, exact) < SYMPY_RTOL


@pytest.mark.parametrize("T, S", [(LAP, LAP), (XUX, UY), (UX, IDENT)], ids=["lap-lap", "xux-uy", "ux-id"])
def test_matches_finite_differences(erf1, points, T, S):
  assert_matches_fd(erf1.kernel_fn, T, S, *points)


@pytest.mark.parametrize("activation", ["erf", "sin", "gelu", "gaussian"])
def test_activations_match_finite_differences(points, activation):
  net = ntkpde.mlp(depth=1, activation=activation, W_std=1.5, b_std=0.1)
  assert_matches_fd(net.kernel_fn, LAP, UY, *points)


PERIOD = 2.0


@pytest.fixture(scope="module")
def periodic_net():
  return ntkpde.mlp(depth=1, activation="erf", input_map=periodic_embedding([0], period=PERIOD))


@pytest.fixture(scope="module")
def box_net():
  return ntkpde.mlp(depth=1, activation="erf", input_map=box_normalization([0, 0], [2, 1]))


def test_periodic_embedding_matches_fd_and_is_periodic(periodic_net, points):
  x1, x2 = points
  assert_matches_fd(periodic_net.kernel_fn, LAP, UX, x1, x2)
  k = ntkpde.operator_kernel(periodic_net.kernel_fn, LAP, UX)
  shifted = x1 + np.array([PERIOD, 0.0])
  # Same kernel at arguments differing by a period: only the rounding of cos/sin
  # arguments (|w x| eps ~ 1e-15) times derivative factors enters.
  np.testing.assert_allclose(k(shifted, x2), k(x1, x2), rtol=1e-12, atol=1e-12 * np.max(np.abs(k(x1, x2))))


def test_box_normalization_matches_fd_and_chain_rule(box_net, erf1, points):
  x1, x2 = points
  lo_x = (x1 + 1) * np.array([1.0, 0.5])  # into the box [0, 2] x [0, 1]
  lo_x2 = (x2 + 1) * np.array([1.0, 0.5])
  assert_matches_fd(box_net.kernel_fn, LAP, IDENT, lo_x, lo_x2)
  # Chain rule by hand: xi = x - 1, eta = 2 y - 1, so u_xx + u_yy = u_xixi + 4 u_etaeta.
  by_hand = ntkpde.operator_kernel(erf1.kernel_fn, parse("u_xx + 4*u_yy", XY), IDENT)(x1, x2)
  got = ntkpde.operator_kernel(box_net.kernel_fn, LAP, IDENT)(lo_x, lo_x2)
  assert max_rel(got, by_hand) < 1e-13  # the map itself rounds x - 1, 2y - 1: a few eps


def test_transpose_symmetry(erf1, points):
  x1, x2 = points
  ts = ntkpde.operator_kernel(erf1.kernel_fn, LAP, IDENT)(x1, x2)
  st = ntkpde.operator_kernel(erf1.kernel_fn, IDENT, LAP)(x2, x1)
  # Different jvp nesting orders of the same function: each within ~10 eps relative
  # of the exact value (measured against SymPy), so 100 eps covers their difference.
  assert max_rel(ts, st.T) < 100 * EPS


@pytest.fixture(scope="module")
def block_gram(erf1, points):
  x1, x2 = points
  return ntkpde.gram(erf1.kernel_fn, [("interior", LAP, x1), ("boundary", IDENT, x2)])


def test_block_gram_structure(block_gram, erf1, points):
  x1, x2 = points
  g = block_gram
  assert g.names == ("interior", "boundary")
  assert g.sizes == {"interior": 6, "boundary": 5}
  assert g.slices == {"interior": slice(0, 6), "boundary": slice(6, 11)}
  assert g.matrix.shape == (11, 11)
  # Symmetry is not assumed: the unsymmetrised diagonal block T_x T_x' K(X, X) and the
  # cross block computed in the other order, S_x T_x' K(x2, x1), are the transposes of
  # T_x T_x' K and T_x S_x' K(x1, x2) up to rounding of differently nested jvps.
  raw = np.asarray(ntkpde.operator_kernel(erf1.kernel_fn, LAP, LAP)(x1, x1))
  np.testing.assert_allclose(raw, raw.T, rtol=0, atol=100 * EPS * np.max(np.abs(raw)))
  other_order = np.asarray(ntkpde.operator_kernel(erf1.kernel_fn, IDENT, LAP)(x2, x1))
  np.testing.assert_allclose(g.block("boundary", "interior"), other_order, rtol=0,
                             atol=100 * EPS * np.max(np.abs(other_order)))
  np.testing.assert_array_equal(g.block("interior", "boundary"),
                                ntkpde.operator_kernel(erf1.kernel_fn, LAP, IDENT)(x1, x2))
  lap_lap = ntkpde.operator_kernel(erf1.kernel_fn, LAP)(x1, x1)
  np.testing.assert_allclose(g.block("interior", "interior"), lap_lap, rtol=0,
                             atol=100 * EPS * np.max(np.abs(lap_lap)))  # symmetrised: rounding
  np.testing.assert_array_equal(g.block("boundary", "interior"), g.block("interior", "boundary").T)
  with pytest.raises(KeyError, match="channels are"):
    g.block("interior", "initial")
  # Channel order only permutes the matrix: gram(S, T) = gram(T, S)^T block by block
  # (different jvp nesting orders: within 100 eps of the largest entry, as above).
  reverse = ntkpde.gram(erf1.kernel_fn, [("boundary", IDENT, x2), ("interior", LAP, x1)])
  perm = np.r_[6:11, 0:6]
  np.testing.assert_allclose(reverse.matrix, np.asarray(g.matrix)[np.ix_(perm, perm)], rtol=0,
                             atol=100 * EPS * np.max(np.abs(g.matrix)))


def test_block_gram_is_psd(block_gram):
  """Exact Gram matrices are PSD. Each computed entry has an error of at most c eps
  max|K_ij| (c ~ 10 measured against SymPy; c = 100 here); by Weyl's inequality the
  smallest eigenvalue moves by at most ||E||_2 <= N max|E_ij| <= c eps N lambda_max
  (max|K_ij| <= max diagonal <= lambda_max for a PSD matrix), and eigvalsh adds a
  backward error of order eps N lambda_max."""
  ev = np.linalg.eigvalsh(np.asarray(block_gram.matrix))
  n = len(ev)
  assert ev[0] >= -100 * EPS * n * ev[-1]


def test_tiling_matches_untiled(erf1, points):
  x1, x2 = points
  whole = ntkpde.operator_kernel(erf1.kernel_fn, UX, IDENT)(x1, x2)
  tiled = ntkpde.operator_kernel(erf1.kernel_fn, UX, IDENT, tile=4)(x1, x2)
  # Entries depend only on their own two rows; a different batch shape may change XLA's
  # vectorisation (a few ulps), nothing more.
  np.testing.assert_allclose(tiled, whole, rtol=1e-14, atol=0)
  g = ntkpde.gram(erf1.kernel_fn, [("a", UX, x1), ("b", IDENT, x2)], tile=4)
  np.testing.assert_allclose(g.block("a", "b"), whole, rtol=1e-14, atol=0)


def counting_relu():
  stax = ntkpde.architectures.stax
  init_fn, apply_fn, base = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
  calls = []

  def kernel_fn(x1, x2=None, get=None, **kw):
    calls.append(get)
    return base(x1, x2, get, **kw)
  return ntkpde.network(init_fn, apply_fn, kernel_fn, max_operator_order=0), calls


def test_relu_refuses_derivative_operators_before_any_work(points):
  net, calls = counting_relu()
  x1, x2 = points
  with pytest.raises(ValueError, match="order 1 .* differentiable to order 0.*smooth activation"):
    ntkpde.operator_kernel(net.kernel_fn, UX)
  with pytest.raises(ValueError, match="order 2"):
    ntkpde.gram(net.kernel_fn, [("bd", IDENT, x2), ("int", LAP, x1)])
  assert calls == []
  with pytest.raises(ValueError, match="differentiable to order 0"):
    ntkpde.operator_kernel(ntkpde.mlp(1, activation="relu").kernel_fn, LAP, IDENT)
  # Order 0 is allowed and is the plain ReLU kernel.
  got = ntkpde.operator_kernel(net.kernel_fn, IDENT)(x1, x2)
  plain = net.kernel_fn(x1, x2, "ntk")
  np.testing.assert_allclose(got, plain, rtol=0, atol=1e-14 * np.max(np.abs(plain)))


@pytest.mark.parametrize("x1, message", [
    (np.zeros((4, 3)), r"shape \(n, 2\) for coordinates \['x', 'y'\], got \(4, 3\)"),
    (np.zeros(4), r"shape \(n, 2\).*got \(4,\)"),
    (np.zeros((2, 4, 2)), r"shape \(n, 2\)"),
    (np.array([[0.0, np.nan]]), "finite numbers"),
    (np.array([[0.0, np.inf]]), "finite numbers"),
    (np.array([["a", "b"]]), "real numbers"),
    (np.array([[0.0, 1j]]), "real numbers"),
])
def test_bad_points(erf1, points, x1, message):
  k = ntkpde.operator_kernel(erf1.kernel_fn, IDENT)
  with pytest.raises(ValueError, match=message):
    k(x1, points[1])
  with pytest.raises(ValueError, match=message):
    k(points[0], x1)
  with pytest.raises(ValueError, match="points of channel 'bd'"):
    ntkpde.gram(erf1.kernel_fn, [("int", IDENT, points[0]), ("bd", IDENT, x1)])


def test_bad_arguments(erf1, points):
  kfn = erf1.kernel_fn
  with pytest.raises(ValueError, match="get must be one of"):
    ntkpde.operator_kernel(kfn, IDENT, get="ntk_nngp")
  with pytest.raises(TypeError, match="LinearOperator"):
    ntkpde.operator_kernel(kfn, "u_xx")
  with pytest.raises(ValueError, match="different coordinates"):
    ntkpde.operator_kernel(kfn, IDENT, identity(("x", "t")))
  with pytest.raises(ValueError, match="tile must be >= 1"):
    ntkpde.operator_kernel(kfn, IDENT, tile=0)
  with pytest.raises(ValueError, match="at least one channel"):
    ntkpde.gram(kfn, [])
  with pytest.raises(ValueError, match="distinct"):
    ntkpde.gram(kfn, [("a", IDENT, points[0]), ("a", IDENT, points[1])])
  with pytest.raises(ValueError, match="same coordinates"):
    ntkpde.gram(kfn, [("a", IDENT, points[0]), ("b", identity(("x", "t")), points[1])])
  # 1-D points are accepted for a 1-D operator.
  k1 = ntkpde.operator_kernel(kfn, identity(("x",)))
  assert k1(np.linspace(0, 1, 3)).shape == (3, 3)


def test_non_finite_kernel_names_the_block(erf1, points):
  """A user kernel that is NaN wherever a point has x > 0.5 (the square root of a
  negative number), in value and derivatives."""
  def nan_kernel(x1, x2=None, get=None, **kw):
    x2 = x1 if x2 is None else x2
    mask = jnp.sqrt(0.5 - x1[:, :1]) * jnp.sqrt(0.5 - x2[None, :, 0])
    return erf1.kernel_fn.base(x1, x2, get) * mask
  init_fn, apply_fn, _ = ntkpde.architectures.stax.Erf()
  net = ntkpde.network(init_fn, apply_fn, nan_kernel)
  inside = np.array([[0.1, 0.2], [-0.3, 0.4]])
  outside = np.array([[0.9, 0.0], [0.2, 0.1]])
  assert np.all(np.isfinite(ntkpde.operator_kernel(net.kernel_fn, IDENT)(inside)))
  with pytest.raises(ntkpde.NonFiniteKernelError, match=r"2 of 4 entries are NaN or inf"):
    ntkpde.operator_kernel(net.kernel_fn, IDENT)(inside, outside)
  with pytest.raises(ntkpde.NonFiniteKernelError, match=r"block \('interior', 'boundary'\)"):
    ntkpde.gram(net.kernel_fn, [("interior", IDENT, inside), ("boundary", IDENT, outside)])


def test_float64_is_far_more_accurate_than_float32():
  """docs/precision.md: float32 gets the 4th-order Lap x Lap block to ~1e-7 (a few
  float32 roundoffs); float64 matches SymPy to ~1e-15. The float32 run is a subprocess
  (``import ntkpde`` enables float64 process-wide) and must really be float32."""
  from theory.precision import measure
  entry = measure(depth=1, names=("lap-lap",))["lap-lap"]
  assert entry["float32"] > 1e-9  # float32 (unit roundoff 6e-8) cannot do better: it ran
  assert entry["float64_vs_sympy"] < 1e-6 * entry["float32"]


def user_erf_kernel(depth=1):
  """The erf MLP's stax triple wrapped by ``ntkpde.network``: same kernel, but ntkpde
  does not know its structure, so operator kernels take the nested-jvp route."""
  stax = ntkpde.architectures.stax
  layers = []
  for _ in range(depth):
    layers += [stax.Dense(512, 1.5, 0.1), stax.Erf()]
  return ntkpde.network(*stax.serial(*layers, stax.Dense(1, 1.5, 0.1))).kernel_fn


def test_high_total_order_warns_before_compiling():
  """On the nested-jvp route, total order >= 6 warns about compile time at construction
  (nothing is compiled here); order 4 (Lap x Lap) does not."""
  import warnings
  from ntkpde.operator_kernels import SLOW_COMPILE_ORDER
  kfn = user_erf_kernel()
  u3 = parse("u_xxx", ("x",))
  assert u3.order + u3.order == SLOW_COMPILE_ORDER
  with pytest.warns(UserWarning, match="total order 6"):
    k = ntkpde.operator_kernel(kfn, u3, u3, get="nngp")
  assert k.method == "nested-jvp"
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    lap = parse("u_xx + u_yy", XY)
    ntkpde.operator_kernel(kfn, lap, lap, get="nngp")
