"""Empirical operator NTKs (ntkpde.finite) against routes that share no code with them.

* A plain-JAX reference: the operator by ``jax.hessian``/``jax.grad`` of a one-point
  function and the parameter Jacobian by ``jax.jacfwd`` of the raveled parameters
  (forward mode, where ntkpde.finite uses the operator's nested ``jvp``s and ``jacrev``).
  Both are exact autodiff, so they agree to round-off: relative 1e-10 allows
  ``eps * n_params`` growth of summation error (n_params ~ 1e3, eps ~ 2e-16) with margin.
* The analytic kernel (ntkpde.gram) at large width, with a tolerance from the Monte
  Carlo estimate of the fluctuation: a one-hidden-layer network in the NTK
  parameterisation has ``Theta_hat = c + (1/w) sum_j k_j`` with i.i.d. per-neuron terms
  ``k_j`` (hand-written network below), so ``Theta_hat - Theta`` has Frobenius size
  ``sqrt(E||k_j - E k||^2 / w)``, estimated from the sample variance of the ``k_j``.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import ntkpde
from ntkpde import finite, operators
from ntkpde._compat import import_neural_tangents

W_STD, B_STD = 1.5, 0.1
LAP = operators.parse("u_xx + u_yy", ("x", "y"))
NEUMANN_X = operators.normal_derivative(("x", "y"), (1, 0))
RNG = np.random.default_rng(0)
X_IN = RNG.uniform(-1, 1, (5, 2))
X_BD = np.stack([np.ones(3), RNG.uniform(-1, 1, 3)], axis=1)


@pytest.fixture(scope="module")
def small_net():
  net = ntkpde.mlp(2, 24, "erf", W_STD, B_STD)
  _, params = net.init_fn(jax.random.PRNGKey(1), (-1, 2))
  return net, params


def _reference_operator(op):
  """``(u, p, x) -> (op u)(x; p)`` for one point ``x`` (shape ``(d,)``): each term's
  derivative by nested ``jax.grad`` in ``x`` and its coefficient by SymPy's NumPy printer
  (evaluated at a concrete point), sharing no code with ``LinearOperator.__call__``."""
  import sympy
  symbols = sympy.symbols(op.coords, real=True)
  terms = [(sympy.lambdify(symbols, t.coefficient, modules="numpy"), t.multi_index)
           for t in op.terms]

  def derivative(u, alpha):
    g = u
    for axis, count in enumerate(alpha):
      for _ in range(count):
        g = (lambda h, a: lambda p, x: jax.grad(h, argnums=1)(p, x)[a])(g, axis)
    return g

  def applied(u, p, x):
    return sum(float(c(*np.asarray(x))) * derivative(u, alpha)(p, x) for c, alpha in terms)
  return applied


def _reference_gram(apply_fn, params, X1, X2, op1, op2):
  """Per-point ``jax.jacfwd`` of the raveled parameters, then ``J1 J2^T``."""
  flat, unravel = ravel_pytree(params)

  def u(p, x):
    return apply_fn(unravel(p), x[None])[0, 0]

  def jac(op, X):
    applied = _reference_operator(op)
    return jnp.stack([jax.jacfwd(lambda p, x=x: applied(u, p, x))(flat) for x in X])
  return np.asarray(jac(op1, X1) @ jac(op2, X2).T)


OPS = {"id": operators.identity(("x", "y")), "ux": operators.parse("u_x", ("x", "y")),
       "uxx": operators.parse("u_xx", ("x", "y")), "lap": LAP, "nx": NEUMANN_X,
       "var": operators.parse("(1 + x**2)*u_xx - y*u_y + 2*u", ("x", "y"))}


@pytest.mark.parametrize("pair", [("id", "id"), ("lap", "lap"), ("var", "var"), ("lap", "nx"),
                                  ("var", "id"), ("ux", "uxx")])
def test_matches_plain_jax_reference(small_net, pair):
  """Structured derivatives (neural-tangents' implementation 3 on ``T u``) against per-point
  forward-mode Jacobians, diagonal and mixed (``T != S``) blocks, several tiles."""
  net, params = small_net
  X = {"id": X_BD, "nx": X_BD}
  X1, X2 = X.get(pair[0], X_IN), X.get(pair[1], X_IN)
  got = finite.empirical_operator_ntk(net.apply_fn, params, OPS[pair[0]], OPS[pair[1]],
                                      batch_size=2)(X1, X2)
  want = _reference_gram(net.apply_fn, params, X1, X2, OPS[pair[0]], OPS[pair[1]])
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_gram_is_jacobian_gram_and_batching_does_not_matter(small_net):
  """Against ``J J^T`` with ``J`` the reverse-mode Jacobian of all stacked residuals (the
  previous implementation's route: ``jacrev`` through the operator's ``jvp``s)."""
  net, params = small_net
  chans = [("r", LAP, X_IN), ("n", NEUMANN_X, X_BD)]
  G = finite.empirical_gram(net.apply_fn, params, chans, batch_size=2)
  J = finite.jacobian_matrix(finite.residual_fn(net.apply_fn, chans), params)
  np.testing.assert_allclose(G.matrix, J @ J.T, rtol=1e-10, atol=1e-10 * np.abs(G.matrix).max())
  whole = finite.empirical_gram(net.apply_fn, params, chans)
  np.testing.assert_allclose(whole.matrix, G.matrix, rtol=1e-12, atol=1e-12 * np.abs(G.matrix).max())
  assert G.names == ("r", "n") and G.sizes == {"r": 5, "n": 3}


def _per_neuron_kernels(params, X_r, X_b):
  """Hand-written one-hidden-layer NTK-parameterised erf network
  ``u = W/sqrt(w) v . erf(W x a_j + B b_j) + B c`` (d = 1); returns the per-neuron
  contributions ``k_j`` (w, n, n) of ``[u_xx, u]`` residuals and the constant ``c``."""
  (W1, b1), _, (W2, b2) = params
  w = W1.shape[1]

  def neuron(a, b, v, x):
    return W_STD / np.sqrt(w) * v * jax.scipy.special.erf(W_STD * a * x + B_STD * b)

  def grads(fn_of_x):
    g = jax.grad(lambda a, b, v, x: fn_of_x(lambda z: neuron(a, b, v, z))(x), argnums=(0, 1, 2))
    return jax.vmap(jax.vmap(g, (0, 0, 0, None)), (None, None, None, 0))  # (n, w) each

  second = grads(lambda f: jax.grad(jax.grad(f)))
  value = grads(lambda f: f)
  b1 = b1.reshape(-1)
  parts = [second(W1[0], b1, W2[:, 0], X_r[:, 0]), value(W1[0], b1, W2[:, 0], X_b[:, 0])]
  J = jnp.concatenate([jnp.stack(p, axis=-1) for p in parts], axis=0)   # (n, w, 3)
  k = jnp.einsum("awp,bwp->wab", J, J) * w                               # (1/w) sum_j k_j
  n_r = len(X_r)
  c = np.zeros((len(J), len(J)))
  c[n_r:, n_r:] = B_STD ** 2                                              # readout bias: T 1 = 0 on u_xx
  return np.asarray(k), c


def test_converges_to_analytic_within_fluctuation_estimate():
  width = 4096
  net = ntkpde.mlp(1, width, "erf", W_STD, B_STD)
  _, params = net.init_fn(jax.random.PRNGKey(3), (-1, 1))
  uxx, ident = operators.parse("u_xx", "x"), operators.identity("x")
  X_r, X_b = np.linspace(-0.9, 0.9, 6)[:, None], np.array([[-1.0], [1.0]])
  chans = [("r", uxx, X_r), ("b", ident, X_b)]
  empirical = np.asarray(finite.empirical_gram(net.apply_fn, params, chans).matrix)
  analytic = np.asarray(ntkpde.gram(net.kernel_fn, chans).matrix)
  k, c = _per_neuron_kernels(params, X_r, X_b)
  # the hand-written network is stax's NTK parameterisation: same kernel to round-off
  np.testing.assert_allclose(k.mean(0) + c, empirical, rtol=1e-9, atol=1e-9 * np.abs(empirical).max())
  standard_error = np.sqrt(np.sum((k - k.mean(0)) ** 2) / (width * (width - 1)))
  error = np.linalg.norm(empirical - analytic)
  # ||mean - E k||_F over ~n^2 correlated entries is about one standard error; 4 leaves
  # a chance of failure far below 1e-3 for a fixed seed, and a wrong kernel (a factor,
  # a missing term) is off by many standard errors at this width.
  assert error < 4 * standard_error, (error, standard_error)
  assert standard_error / np.linalg.norm(analytic) < 0.05
  assert finite.relative_frobenius_error(empirical, analytic) < 4 * standard_error / np.linalg.norm(analytic)


def test_bad_input_is_rejected_before_work(small_net):
  net, params = small_net
  with pytest.raises(TypeError, match="LinearOperator"):
    finite.empirical_operator_ntk(net.apply_fn, params, "u_xx")
  with pytest.raises(ValueError, match="different coordinates"):
    finite.empirical_operator_ntk(net.apply_fn, params, LAP, operators.identity("x"))
  two_out = ntkpde.mlp(1, 8, "erf", out_dim=2)
  _, p2 = two_out.init_fn(jax.random.PRNGKey(0), (-1, 2))
  with pytest.raises(ValueError, match="scalar network"):
    finite.empirical_operator_ntk(two_out.apply_fn, p2, LAP)
  kernel = finite.empirical_operator_ntk(net.apply_fn, params, LAP)
  with pytest.raises(ValueError, match="shape"):
    kernel(np.zeros((3, 3)))
  with pytest.raises(ValueError, match="finite"):
    kernel(np.array([[0.0, np.nan]]))
  with pytest.raises(ValueError, match="batch_size"):
    finite.empirical_operator_ntk(net.apply_fn, params, LAP, batch_size=0)


def test_loglog_slope_and_relative_error():
  x = np.array([64, 128, 256, 512, 1024.0])
  slope, c, se = finite.loglog_slope(x, 3.0 * x ** -0.5)
  assert abs(slope + 0.5) < 1e-12 and abs(np.exp(c) - 3.0) < 1e-10 and se < 1e-10
  with pytest.raises(ValueError):
    finite.loglog_slope([1, 1], [1, 2])
  with pytest.raises(ValueError, match="zero"):
    finite.relative_frobenius_error(np.ones(2), np.zeros(2))
  assert finite.relative_frobenius_error(2 * np.eye(2), np.eye(2)) == pytest.approx(1.0)


def test_stored_gpu_results_are_read_and_marked(tmp_path):
  from ntkpde import reporting
  from verification import WEAKER, opk2, opk3
  from verification._finite_parts import stored_gpu_outcome
  widths = [128, 512, 2048, 8192]
  rms = 3.0 * np.asarray(widths, float) ** -0.5
  path = tmp_path / "finite_width.json"
  assert stored_gpu_outcome("OPK-2 depth 1", opk2._stored_measure, "e", "t", path) is None
  drift = np.outer(np.asarray(widths, float) ** -0.02, [3.0, 3.3])
  kernel = np.outer(np.asarray(widths, float) ** -0.9, [1.0, 1.1])
  record = {"device": "NVIDIA H100, jax 0.11.2", "date": "2026-11-23", "quick": False, "stages": {
      "OPK-2 depth 1": {"widths": widths, "rms": rms, "slope": -0.5, "bootstrap_slope_std": 0.05},
      "OPK-3": {"widths": widths, "kernel_change": kernel, "drift": drift, "gap_infinite": kernel,
                "gap_linearised": kernel}}}
  reporting.write_json_atomic(path, record)
  got = stored_gpu_outcome("OPK-2 depth 1", opk2._stored_measure, "e", "t", path)
  assert got.passed and got.device == "stored: NVIDIA H100, jax 0.11.2"
  assert got.measured["depth1"]["slope"] == -0.5 and "Stored GPU results" in got.notes
  got3 = stored_gpu_outcome("OPK-3", lambda st: opk3.evaluate(st["widths"], st)[0], "e", "t", path)
  assert got3.verdict == WEAKER and abs(got3.measured["kernel_change"]["slope"] + 0.9) < 1e-2
  record["stages"]["OPK-2 depth 1"]["slope"] = -0.2          # outside 3 x 0.05 of -0.5
  reporting.write_json_atomic(path, record)
  assert not stored_gpu_outcome("OPK-2 depth 1", opk2._stored_measure, "e", "t", path).passed
  record["quick"] = True                                      # smoke runs are never used
  reporting.write_json_atomic(path, record)
  assert stored_gpu_outcome("OPK-2 depth 1", opk2._stored_measure, "e", "t", path) is None


def test_gpu_script_smoke_run_feeds_the_stored_results_reader(tmp_path):
  """benchmarks/gpu_finite_width.py --quick runs on CPU and writes what ``verify --full``
  reads; a quick record is never used as stored evidence, a full one is, marked stored."""
  import json
  import sys
  from pathlib import Path
  sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
  try:
    import gpu_finite_width
  finally:
    sys.path.pop(0)
  from verification._finite_parts import stored_gpu_outcome
  from verification.opk2 import EXPECTED, TOLERANCE, _stored_measure
  assert gpu_finite_width.main(["--quick", "--out", str(tmp_path)]) == 0
  record = json.loads((tmp_path / "finite_width.json").read_text())
  assert set(record["stages"]) == {"OPK-2 depth 1", "OPK-2 depth 2", "OPK-3"}
  assert all(np.isfinite(record["stages"]["OPK-3"]["kernel_change"]).ravel())
  assert {p.name for p in tmp_path.glob("*.png")} == {"opk2_depth1.png", "opk2_depth2.png",
                                                      "opk3_training.png"}
  path = tmp_path / "finite_width.json"
  assert stored_gpu_outcome("OPK-2 depth 1", _stored_measure, EXPECTED, TOLERANCE, path) is None
  record.update(quick=False, device="NVIDIA H100 80GB HBM3, jax 0.11.2")
  path.write_text(json.dumps(record))
  outcome = stored_gpu_outcome("OPK-2 depth 1", _stored_measure, EXPECTED, TOLERANCE, path)
  assert outcome.device == "stored: NVIDIA H100 80GB HBM3, jax 0.11.2"
  assert outcome.measured["depth1"]["slope"] == round(record["stages"]["OPK-2 depth 1"]["slope"], 3)


def test_default_batch_keeps_a_tile_within_the_memory_budget():
  """A point costs ``8 D sum_k 2^|alpha_k|`` bytes per side and operator (``D`` the sum of the
  parameter arrays' dimensions), a pair of points ``16 C^2 s^2``; the default batch is the
  largest in [1, MAX_BATCH] whose tile fits the budget."""
  from ntkpde.operators import identity
  ident = identity(("x", "y"))

  def params(width):   # a depth-1 MLP on 2-D inputs: D = (2 + w) + w + (w + 1) + 1
    return [(jax.ShapeDtypeStruct((2, width), jnp.float64), jax.ShapeDtypeStruct((width,), jnp.float64)),
            (jax.ShapeDtypeStruct((width, 1), jnp.float64), jax.ShapeDtypeStruct((1,), jnp.float64))]
  assert finite.tile_bytes_per_point(params(10), LAP) == 8 * 34 * 8
  assert finite.tile_bytes_per_point(params(10), ident) == 8 * 34
  assert finite.tile_bytes(params(10), (LAP, ident), 3) == 2 * 3 * 8 * 34 * 9 + 9 * 16 * 4 * 64
  assert finite.default_batch_size(params(64), LAP) == finite.MAX_BATCH
  for w, ops in [(10 ** 6, (LAP,)), (10 ** 6, (LAP, ident)), (10 ** 5, (LAP, ident))]:
    batch = finite.default_batch_size(params(w), *ops)
    assert finite.tile_bytes(params(w), ops, batch) <= finite.MEMORY_BUDGET
    assert finite.tile_bytes(params(w), ops, batch + 1) > finite.MEMORY_BUDGET
  assert finite.default_batch_size(params(10 ** 6), LAP, ident) == 4
  assert finite.default_batch_size(params(10 ** 9), LAP) == 1


def test_compiled_blocks_are_reused():
  """Same network, operators and tile shape: one compiled function, traced once, for other
  parameters and points, and for every block of a Gram (diagonal and mixed). A network of
  its own, so that no other test's tile shapes are in the caches."""
  net = ntkpde.mlp(1, 8, "erf")
  _, params = net.init_fn(jax.random.PRNGKey(4), (-1, 2))
  kernel = finite.empirical_operator_ntk(net.apply_fn, params, LAP, batch_size=4)
  kernel(X_IN)
  block = finite._compiled_block(net.apply_fn, (LAP,))
  traced = block._cache_size()
  _, other = net.init_fn(jax.random.PRNGKey(5), (-1, 2))
  finite.empirical_operator_ntk(net.apply_fn, other, LAP, batch_size=4)(X_IN[::-1])
  assert finite._compiled_block(net.apply_fn, (LAP,)) is block
  assert block._cache_size() == traced
  finite.empirical_gram(net.apply_fn, other, [("r", LAP, X_IN), ("n", NEUMANN_X, X_BD)])
  assert finite._compiled_block(net.apply_fn, (LAP, NEUMANN_X))._cache_size() == 1


def test_shared_derivative_residuals_match_per_point_reference(small_net):
  """Channels on the same points share one derivative table (``operator_values``): the
  residuals equal the per-point ``jax.grad`` reference (no shared code) to round-off and
  the per-operator nested ``jvp`` of ``LinearOperator.__call__`` (the same operations)."""
  net, params = small_net
  names = ["id", "ux", "uxx", "lap", "var"]
  chans = [(name, OPS[name], X_IN) for name in names] + [("nx", NEUMANN_X, X_BD)]
  chs, points, groups, _ = finite.channel_data(chans)
  assert groups == (0, 0, 0, 0, 0, 1) and len(points) == 2
  r = np.asarray(finite.residual_fn(net.apply_fn, chans)(params))
  u = lambda p, x: net.apply_fn(p, x[None])[0, 0]  # noqa: E731
  ref = np.concatenate([[_reference_operator(op)(u, params, x) for x in X] for _, op, X in chans])
  np.testing.assert_allclose(r, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
  nested = np.concatenate([op(lambda z: net.apply_fn(params, z)[:, 0])(jnp.asarray(X))
                           for _, op, X in chans])
  np.testing.assert_allclose(r, nested, rtol=1e-14, atol=1e-14 * np.abs(ref).max())


def test_check_network_rejects_non_scalar_and_non_smooth_networks(small_net):
  net, params = small_net
  finite.check_network(net.apply_fn, params, (OPS["lap"],))
  two = ntkpde.mlp(1, 8, "erf", out_dim=2)
  with pytest.raises(ValueError, match="scalar network"):
    finite.check_network(two.apply_fn, two.init_fn(jax.random.PRNGKey(0), (-1, 2))[1], (OPS["id"],))
  stax = import_neural_tangents().stax
  init_fn, apply_fn, _ = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
  relu_params = init_fn(jax.random.PRNGKey(0), (-1, 2))[1]
  finite.check_network(apply_fn, relu_params, (OPS["id"],))     # order 0: allowed
  with pytest.raises(ValueError, match="non-smooth"):
    finite.check_network(apply_fn, relu_params, (OPS["id"], OPS["ux"]))


def test_empirical_gram_compiles_its_tile_shapes_side_by_side_first(compile_calls):
  """``empirical_gram`` hands its distinct programs (one per tile shape: its blocks share
  one compiled function) to ``compile_concurrently`` before evaluating a block, and the
  Gram equals its blocks computed one by one. A network of its own: no cached programs."""
  net = ntkpde.mlp(1, 6, "erf")
  _, params = net.init_fn(jax.random.PRNGKey(6), (-1, 2))
  x_bd = np.concatenate([X_BD, X_BD + [0.0, 0.1], X_BD - [0.0, 0.1]])  # 9 points: 12 padded
  chans = [("r", LAP, X_IN), ("n", NEUMANN_X, x_bd), ("m", LAP, X_IN[::-1])]
  G = finite.empirical_gram(net.apply_fn, params, chans, batch_size=16)
  # six blocks, four tile shapes: (8, 8), (8, 12), (12, 12), (12, 8); then one call per block
  assert compile_calls[0] == 4 and len(compile_calls) == 7, compile_calls
  for i, (a, op_a, xa) in enumerate(chans):
    for b, op_b, xb in chans[i:]:
      direct = finite.empirical_operator_ntk(net.apply_fn, params, op_a, op_b, batch_size=16)(xa, xb)
      np.testing.assert_allclose(G.block(a, b), direct, rtol=1e-13,  # same program; diagonal
                                 # blocks symmetrised: rounding
                                 atol=1e-13 * np.max(np.abs(direct)))
