"""Bad and hostile inputs across the API: each case must raise the stated exception with a
message naming the problem, print nothing, and return no number (issue 10, sections 2-4).

Table-driven: ``CASES`` maps an id to ``(call, exception type, message fragment)``; ``call``
receives the shared fixtures ``F``. Sizes are tiny and kernels cheap, so the whole table runs
in seconds. Operator-text cases live in ``test_hostile_text.py``; CLI cases in
``test_bad_inputs_cli.py``.
"""
import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkpde
from ntkpde import finite, operators, predict, sketch, smoothness, spectrum, training, weights
from ntkpde._compat import import_neural_tangents
from ntkpde.architectures import ACTIVATIONS, SMOOTH_ACTIVATIONS

stax = import_neural_tangents().stax
X = ("x",)


def toy_kernel(x1, x2=None, get="ntk"):
  """Smooth, positive definite, compiles fast."""
  x2 = x1 if x2 is None else x2
  return jnp.exp(-jnp.sum((x1[:, None, :] - x2[None, :, :]) ** 2, -1) / 0.18) + 0.1


@pytest.fixture(scope="module")
def F():
  ident, dx, dxx = operators.identity(X), operators.parse("u_x", X), operators.parse("u_xx", X)
  x = np.linspace(0, 1, 5)[:, None]
  xb = np.array([[0.0], [1.0]])
  channels = [("interior", dxx, x), ("boundary", ident, xb)]
  targets = [np.sin(x[:, 0]), np.zeros(2)]
  K = np.asarray(ntkpde.gram(toy_kernel, channels).matrix)
  erf = ntkpde.mlp(1, width=8, activation="erf")
  relu = ntkpde.mlp(1, width=8, activation="relu")
  two_out = ntkpde.mlp(1, width=8, activation="erf", out_dim=2)
  params = erf.init_fn(jax.random.PRNGKey(0), (-1, 1))[1]
  relu_params = relu.init_fn(jax.random.PRNGKey(0), (-1, 1))[1]
  two_params = two_out.init_fn(jax.random.PRNGKey(0), (-1, 1))[1]
  raw_relu = stax.serial(stax.Dense(8, 1.5, 0.1), stax.Relu(), stax.Dense(1, 1.5, 0.1))
  return types.SimpleNamespace(
      ident=ident, dx=dx, dxx=dxx, x=x, xb=xb, channels=channels, targets=targets, K=K,
      r0=np.ones(len(K)), erf=erf, relu=relu, two_out=two_out, params=params,
      relu_params=relu_params, two_params=two_params, raw_relu_kernel=raw_relu[2],
      ensemble=lambda **kw: predict.gradient_descent_mse_ensemble(
          toy_kernel, channels, targets, **kw),
      residuals=finite.residual_fn(erf.apply_fn, channels, targets),
      sizes={"interior": 5, "boundary": 2})


def flow(F, **kw):
  args = dict(K=F.K, r0=F.r0, weights=None, learning_rate=1.0)
  args.update(kw)
  return predict.residual_flow(**args)


def train(F, **kw):
  args = dict(apply_fn=F.erf.apply_fn, params=F.params, channels=F.channels, targets=F.targets,
              steps=2, checkpoints=[2])
  args.update(kw)
  return training.train(**args)


def adaptive(F, **kw):
  args = dict(residuals=F.residuals, params=F.params, sizes=F.sizes, learning_rate=0.1, steps=2)
  args.update(kw)
  return sketch.adaptive_training(**args)


N7 = 7  # residuals in F.channels
VE, TE, FE = ValueError, TypeError, FloatingPointError

CASES = {
    # --- operators (non-text entry points) ---
    "coords-empty": (lambda F: operators.identity(()), VE, "coords must be"),
    "coords-duplicate": (lambda F: operators.identity(("x", "x")), VE, "distinct"),
    "coords-dunder": (lambda F: operators.identity(("__x",)), VE, "alphanumeric"),
    "coords-reserved-u": (lambda F: operators.identity(("u",)), VE, "alphanumeric"),
    "direction-length": (lambda F: operators.directional_derivative(X, [1, 0]), VE, "components"),
    "direction-zero": (lambda F: operators.directional_derivative(X, [0]), VE, "zero"),
    "operator-times-operator": (lambda F: F.dx * F.dx, TE, "linearly"),
    # --- networks ---
    "mlp-depth-float": (lambda F: ntkpde.mlp(1.7), VE, "depth must be an integer"),
    "mlp-depth-zero": (lambda F: ntkpde.mlp(0), VE, ">= 1"),
    "mlp-width-negative": (lambda F: ntkpde.mlp(1, width=-3), VE, ">= 1"),
    "mlp-width-float": (lambda F: ntkpde.mlp(1, width=8.5), VE, "width must be an integer"),
    "mlp-depth-string": (lambda F: ntkpde.mlp("2"), VE, "depth must be an integer"),
    "mlp-depth-bool": (lambda F: ntkpde.mlp(True), VE, "depth must be an integer"),
    "mlp-out-dim-zero": (lambda F: ntkpde.mlp(1, out_dim=0), VE, "out_dim"),       # was: no output
    "mlp-W-std-nan": (lambda F: ntkpde.mlp(1, W_std=float("nan")), VE, "W_std"),   # was: NaN kernel
    "mlp-b-std-inf": (lambda F: ntkpde.mlp(1, b_std=float("inf")), VE, "b_std"),   # was: NaN kernel
    "mlp-W-std-negative": (lambda F: ntkpde.mlp(1, W_std=-1.5), VE, "W_std"),
    "mlp-activation-unknown": (lambda F: ntkpde.mlp(1, activation="tanhh"), VE, "unknown activation"),
    "mlp-activation-code": (lambda F: ntkpde.mlp(1, activation="__import__('os')"), VE,
                            "unknown activation"),
    # --- kernels ---
    "kernel-get": (lambda F: ntkpde.operator_kernel(toy_kernel, F.ident, get="cov"), VE, "get"),
    "kernel-relu-dx": (lambda F: ntkpde.operator_kernel(F.relu.kernel_fn, F.dx), VE, "order"),
    "kernel-relu-mixed": (lambda F: ntkpde.operator_kernel(F.relu.kernel_fn, F.ident, F.dxx), VE,
                          "order"),
    "kernel-raw-relu-lap": (lambda F: ntkpde.operator_kernel(F.raw_relu_kernel, F.dxx), VE,
                            "max_operator_order"),
    "kernel-raw-relu-dx-nngp": (lambda F: ntkpde.operator_kernel(F.raw_relu_kernel, F.dx,
                                                                 get="nngp"), VE, "|h|^3"),
    "kernel-points-shape": (lambda F: ntkpde.operator_kernel(toy_kernel, F.ident)(np.ones((3, 2))),
                            VE, "shape"),
    "kernel-points-nan": (lambda F: ntkpde.operator_kernel(toy_kernel, F.ident)(
        np.array([[np.nan]])), VE, "finite"),
    "kernel-points-strings": (lambda F: ntkpde.operator_kernel(toy_kernel, F.ident)(
        np.array([["a"]])), VE, "real numbers"),
    # --- Grams ---
    "gram-no-channels": (lambda F: ntkpde.gram(toy_kernel, []), VE, "at least one channel"),
    "gram-duplicate-names": (lambda F: ntkpde.gram(toy_kernel, [("a", F.ident, F.x),
                                                                ("a", F.ident, F.x)]), VE,
                             "distinct"),
    "gram-operator-string": (lambda F: ntkpde.gram(toy_kernel, [("a", "u_xx", F.x)]), TE,
                             "LinearOperator"),
    "gram-mixed-coords": (lambda F: ntkpde.gram(toy_kernel, [
        ("a", F.ident, F.x), ("b", operators.identity(("x", "y")), np.ones((2, 2)))]), VE,
        "same coordinates"),
    "gram-relu-channels": (lambda F: ntkpde.gram(F.relu.kernel_fn, F.channels), VE, "order"),
    "gram-points-inf": (lambda F: ntkpde.gram(toy_kernel, [("a", F.ident,
                                                            np.array([[np.inf]]))]), VE, "finite"),
    # --- residual flows ---
    "flow-K-rectangular": (lambda F: flow(F, K=np.ones((3, 4))), VE, "square"),
    "flow-K-empty": (lambda F: flow(F, K=np.zeros((0, 0))), VE, "non-empty"),
    "flow-K-nan": (lambda F: flow(F, K=np.full((7, 7), np.nan)), VE, "NaN"),
    "flow-K-zero": (lambda F: flow(F, K=np.zeros((7, 7))), VE, "zero"),
    "flow-K-strings": (lambda F: flow(F, K=[["a"]]), TE, "square matrix"),
    "flow-r0-shape": (lambda F: flow(F, r0=np.ones(3)), VE, "r0 must have shape"),
    "flow-r0-nan": (lambda F: flow(F, r0=np.full(N7, np.nan)), VE, "NaN"),
    "flow-weights-negative-scalar": (lambda F: flow(F, weights=-1), VE, "weights must be"),
    "flow-weights-negative": (lambda F: flow(F, weights=-np.ones(N7)), VE, ">= 0"),
    "flow-weights-one-negative": (lambda F: flow(F, weights=np.r_[-1.0, np.ones(6)]), VE, ">= 0"),
    "flow-weights-zero": (lambda F: flow(F, weights=np.zeros(N7)), VE, "all zero"),
    "flow-weights-nan": (lambda F: flow(F, weights=np.full(N7, np.nan)), VE, "finite"),
    "flow-weights-inf": (lambda F: flow(F, weights=np.r_[np.inf, np.ones(6)]), VE, "finite"),
    "flow-weights-shape": (lambda F: flow(F, weights=np.ones(5)), VE, "weights must be"),
    "flow-weights-indefinite-matrix": (lambda F: flow(F, weights=np.diag(np.r_[-1.0, np.ones(6)])),
                                       VE, "positive semi-definite"),
    "flow-weights-zero-matrix": (lambda F: flow(F, weights=np.zeros((N7, N7))), VE, "all zero"),
    "flow-weights-strings": (lambda F: flow(F, weights=["a"] * N7), VE, "numbers"),
    "flow-lr-zero": (lambda F: flow(F, learning_rate=0.0), VE, "learning_rate"),
    "flow-lr-negative": (lambda F: flow(F, learning_rate=-1.0), VE, "learning_rate"),
    "flow-lr-nan": (lambda F: flow(F, learning_rate=np.nan), VE, "learning_rate"),
    "flow-lr-inf": (lambda F: flow(F, learning_rate=np.inf), VE, "learning_rate"),
    "flow-t-negative": (lambda F: flow(F)(-1.0), VE, "t must be >= 0"),
    "flow-t-nan": (lambda F: flow(F)(np.nan), VE, "t must be >= 0"),
    "flow-t-2d": (lambda F: flow(F)(np.ones((2, 2))), VE, "1-D"),
    "flow-steps-float": (lambda F: flow(F).steps(1.5), VE, "k must be"),
    "flow-steps-negative": (lambda F: flow(F).steps(-1), VE, "k must be"),
    "msl-zero-kernel": (lambda F: predict.max_stable_learning_rate(np.zeros((3, 3))), VE, "zero"),
    "msl-negative-weights": (lambda F: predict.max_stable_learning_rate(F.K, -np.ones(N7)), VE,
                             ">= 0"),
    # --- weights ---
    "weights-unknown-channel": (lambda F: weights.per_residual({"nope": 1}, F.sizes), VE,
                                "unknown channel"),
    "weights-value-string": (lambda F: weights.per_residual({"interior": "abc"}, F.sizes), VE,
                             "numbers"),
    "weights-negative-channel": (lambda F: weights.per_residual({"interior": -1}, F.sizes), VE,
                                 ">= 0"),
    "weights-all-zero-channels": (lambda F: weights.per_residual({"interior": 0, "boundary": 0},
                                                                 F.sizes), VE, "all zero"),
    "weights-nan-channel": (lambda F: weights.per_residual({"boundary": np.nan}, F.sizes), VE,
                            "finite"),
    "weights-rule-unknown": (lambda F: weights.per_residual("magic", F.sizes), VE,
                             "unknown weight rule"),
    "weights-rule-needs-gram": (lambda F: weights.per_residual("trace", F.sizes), VE,
                                "needs the block Gram"),
    "weights-per-channel-negative": (lambda F: weights.per_residual([1.0, -2.0], F.sizes), VE,
                                     ">= 0"),
    "weights-trace-zero-block": (lambda F: weights.trace_weights(ntkpde.BlockGram(
        np.diag([1.0, 0.0]), ("a", "b"), {"a": 1, "b": 1})), VE, "positive trace"),
    "weights-inverse-singular": (lambda F: weights.inverse_kernel_weights(np.ones((3, 3))), VE,
                                 "singular"),
    "weights-inverse-shape": (lambda F: weights.inverse_kernel_weights(np.ones(3)), VE, "square"),
    # --- the ensemble (predict) ---
    "ens-targets-count": (lambda F: predict.gradient_descent_mse_ensemble(
        toy_kernel, F.channels, F.targets[:1]), VE, "one array per channel"),
    "ens-targets-nan": (lambda F: predict.gradient_descent_mse_ensemble(
        toy_kernel, F.channels, [np.full(5, np.nan), np.zeros(2)]), VE, "NaN"),
    "ens-lr-zero": (lambda F: F.ensemble(learning_rate=0.0), VE, "learning_rate"),
    "ens-diag-reg-negative": (lambda F: F.ensemble(diag_reg=-1e-3), VE, "diag_reg"),
    "ens-diag-reg-nan": (lambda F: F.ensemble(diag_reg=np.nan), VE, "diag_reg"),
    "ens-weights-negative": (lambda F: F.ensemble(weights={"interior": -1}), VE, ">= 0"),
    "ens-weights-zero": (lambda F: F.ensemble(weights={"interior": 0, "boundary": 0}), VE,
                         "all zero"),
    "ens-weights-rule": (lambda F: F.ensemble(weights="magic"), VE, "unknown weight rule"),
    "ens-weights-channel": (lambda F: F.ensemble(weights={"nope": 2}), VE, "unknown channel"),
    "ens-zero-kernel": (lambda F: predict.gradient_descent_mse_ensemble(
        lambda a, b=None, get=None: jnp.zeros((len(a), len(a if b is None else b))),
        [("u", F.ident, F.x)], [np.ones(5)])(1.0), VE, "is zero"),
    "ens-get": (lambda F: F.ensemble()(1.0, get="cov"), VE, "get must be"),
    "ens-t-negative": (lambda F: F.ensemble()(-1.0), VE, "t must be"),
    "ens-test-operator-no-x": (lambda F: F.ensemble()(1.0, test_operator=F.dx), VE,
                               "test_operator needs x_test"),
    "ens-test-operator-no-x-inf": (lambda F: F.ensemble()(None, test_operator=F.dxx), VE,
                                   "needs x_test"),
    "ens-test-operator-string": (lambda F: F.ensemble()(1.0, F.x, test_operator="u_x"), TE,
                                 "LinearOperator"),
    "ens-test-operator-coords": (lambda F: F.ensemble()(1.0, F.x,
                                                        test_operator=operators.identity("y")),
                                 VE, "acts on"),
    "ens-x-test-shape": (lambda F: F.ensemble()(1.0, np.ones((3, 2))), VE, "x_test"),
    "ens-x-test-nan": (lambda F: F.ensemble()(1.0, np.array([[np.nan]])), VE, "x_test"),
    # --- spectra ---
    "spec-not-square": (lambda F: spectrum.eigenvalues(np.ones((2, 3))), VE, "square"),
    "spec-nan": (lambda F: spectrum.eigenvalues(np.full((2, 2), np.nan)), VE, "NaN"),
    "spec-asymmetric": (lambda F: spectrum.eigenvalues(np.array([[1.0, 2.0], [0.0, 1.0]])), VE,
                        "symmetric"),
    "spec-weights-shape": (lambda F: spectrum.eigenvalues(np.eye(2), weights=np.ones(3)), VE,
                           "weights"),
    "spec-weights-negative": (lambda F: spectrum.eigenvalues(np.eye(2), weights=-np.ones(2)), VE,
                              "> 0"),
    "spec-strings": (lambda F: spectrum.eigenvalues("abc"), TE, "square matrix"),
    # --- smoothness ---
    "smooth-apply-relu": (lambda F: smoothness.check_apply_fn(F.relu.apply_fn, F.relu_params, 1, 2,
                                                              "u_xx"), VE, "non-smooth"),
    "smooth-kernel-raw-relu": (lambda F: smoothness.check_kernel_fn(F.raw_relu_kernel, "ntk", 1, 1,
                                                                    "u_x"), VE, "|h|^1.0"),
    # --- finite width ---
    "finite-relu-lap": (lambda F: finite.empirical_operator_ntk(F.relu.apply_fn, F.relu_params,
                                                                F.dxx), VE, "non-smooth"),
    "finite-relu-dx": (lambda F: finite.empirical_operator_ntk(F.relu.apply_fn, F.relu_params,
                                                               F.ident, F.dx), VE, "non-smooth"),
    "finite-relu-gram": (lambda F: finite.empirical_gram(F.relu.apply_fn, F.relu_params,
                                                         F.channels), VE, "non-smooth"),
    "finite-two-outputs": (lambda F: finite.empirical_operator_ntk(F.two_out.apply_fn,
                                                                   F.two_params, F.ident), VE,
                           "scalar network"),
    "finite-residual-fn-two-outputs": (lambda F: finite.residual_fn(
        F.two_out.apply_fn, F.channels, F.targets)(F.two_params), VE, "scalar network"),
    "finite-wrong-params": (lambda F: finite.empirical_operator_ntk(
        F.erf.apply_fn, F.erf.init_fn(jax.random.PRNGKey(0), (-1, 3))[1], F.ident), VE,
        "init_fn"),
    "finite-batch-zero": (lambda F: finite.empirical_operator_ntk(F.erf.apply_fn, F.params,
                                                                  F.ident, batch_size=0), VE,
                          "batch_size"),
    # --- training ---
    "train-optimizer": (lambda F: train(F, optimizer="sgd"), VE, "optimizer"),
    "train-lr-negative": (lambda F: train(F, learning_rate=-1.0), VE, "learning_rate"),
    "train-steps-float": (lambda F: train(F, steps=1.5), VE, "steps"),
    "train-checkpoints": (lambda F: train(F, checkpoints=[5]), VE, "checkpoints"),
    "train-weights-negative": (lambda F: train(F, weights={"interior": -1}), VE, ">= 0"),
    "train-weights-zero": (lambda F: train(F, weights=[0.0, 0.0]), VE, "all zero"),
    "train-weights-indefinite": (lambda F: train(F, weights=-np.eye(N7)), VE, "semi-definite"),
    "train-two-outputs": (lambda F: train(F, apply_fn=F.two_out.apply_fn, params=F.two_params), VE,
                          "scalar network"),
    "train-relu-lap": (lambda F: train(F, apply_fn=F.relu.apply_fn, params=F.relu_params), VE,
                       "non-smooth"),
    # 10 is 50x max_stable_learning_rate of this network's empirical Gram (0.199)
    "train-gd-diverges": (lambda F: train(F, learning_rate=10.0, steps=200,
                                          checkpoints=[100, 200]), FE, "times its start"),
    "train-adam-diverges": (lambda F: train(F, optimizer="adam", learning_rate=1e6, steps=50,
                                            checkpoints=[50]), FE, "training diverged"),
    "train-x-test-shape": (lambda F: train(F, x_test=np.ones((3, 2))), VE, "x_test"),
    # --- sketches ---
    "sketch-dt-zero": (lambda F: sketch.sketch_ntk(F.residuals, F.params, jax.random.PRNGKey(0),
                                                   0.0), VE, "dt"),
    "sketch-dt-nan": (lambda F: sketch.sketch_ntk(F.residuals, F.params, jax.random.PRNGKey(0),
                                                  np.nan), VE, "dt"),
    "sketch-samples-zero": (lambda F: sketch.sketch_ntk(F.residuals, F.params,
                                                        jax.random.PRNGKey(0), 1e-3, 0), VE,
                            "num_samples"),
    "sketch-samples-fraction": (lambda F: sketch.sketch_ntk(F.residuals, F.params,   # was: 2
                                                            jax.random.PRNGKey(0), 1e-3, 2.5),
                                VE, "num_samples must be an integer"),
    "adaptive-weights-rule": (lambda F: adaptive(F, weights="magic"), VE, "weights must be"),
    "adaptive-lr": (lambda F: adaptive(F, learning_rate=0.0), VE, "learning_rate"),
    "adaptive-steps": (lambda F: adaptive(F, steps=0), VE, "steps"),
    "adaptive-alpha": (lambda F: adaptive(F, alpha=2.0), VE, "alpha"),
    "adaptive-sizes": (lambda F: adaptive(F, sizes={"interior": 5}), VE, "shape"),
    "adaptive-sizes-zero": (lambda F: adaptive(F, sizes={"interior": 0, "boundary": 7}), VE,
                            "positive count"),
    "adaptive-track": (lambda F: adaptive(F, weights="sketch", track_exact=-1), VE, "track_exact"),
    # K = [[1, -1], [-1, 1]]: a one-probe sketch's block trace g_c (K g)_c is often < 0
    "adaptive-sketch-negative-trace": (lambda F: sketch.adaptive_training(
        lambda p: jnp.stack([p[0], -p[0]]), jnp.array([0.5]), {"a": 1, "b": 1}, 0.1, 3,
        weights="sketch", init_samples=1, alpha=1.0, key=jax.random.PRNGKey(1)), VE,
        "kernel trace <= 0 in the sketch kernel estimate at step 0"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_clearly(case, F, capsys):
  call, exc, fragment = CASES[case]
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    with pytest.raises(exc) as info:
      call(F)
  assert fragment in str(info.value), str(info.value)
  assert len(str(info.value).splitlines()) == 1
  captured = capsys.readouterr()
  assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("kind", ["kernel_fn", "apply_fn"])
def test_smoothness_refuses_exactly_the_relu_family(activation, kind):
  """Every smooth activation passes, relu/abs/abrelu are refused, for a raw stax kernel_fn
  (undeclared smoothness) under u_x x u_x' and for apply_fn under u_xx."""
  factory, _ = ACTIVATIONS[activation]
  init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(8, 1.5, 0.1), factory(),
                                             stax.Dense(8, 1.5, 0.1), factory(),
                                             stax.Dense(1, 1.5, 0.1))
  if kind == "kernel_fn":
    check = lambda: smoothness.check_kernel_fn(kernel_fn, "ntk", 2, 2, "u_x")
  else:
    params = init_fn(jax.random.PRNGKey(0), (-1, 2))[1]
    check = lambda: smoothness.check_apply_fn(apply_fn, params, 2, 2, "u_xx")
  if activation in SMOOTH_ACTIVATIONS:
    check()
  else:
    with pytest.raises(ValueError, match="smooth"):
      check()


def test_declared_smoothness_skips_the_probe(F):
  """A kernel declared with max_operator_order is trusted (the probe runs only for kernels of
  unknown smoothness), and an ntkpde ReLU kernel is refused by its declaration."""
  declared = ntkpde.network(*stax.serial(stax.Dense(8, 1.5, 0.1), stax.Relu(),
                                         stax.Dense(1, 1.5, 0.1)), max_operator_order=0)
  with pytest.raises(ValueError, match="differentiable to order 0"):
    ntkpde.operator_kernel(declared.kernel_fn, F.dx)
  smoothness.check_kernel_fn(declared.kernel_fn, "ntk", 1, 4, "u_xx")  # declared: no probe


@pytest.mark.parametrize("activation, get, exponent", [
    ("relu", "ntk", 1.0), ("relu", "nngp", 3.0), ("abs", "ntk", 1.0), ("erf", "ntk", 4.0),
    ("erf", "nngp", 4.0), ("gelu", "ntk", 4.0)])
def test_diagonal_exponent_is_that_of_the_closed_form(activation, get, exponent):
  """The probe measures the known non-analytic terms: the arc-cosine kernels of ReLU-family
  networks have |h| (NTK, from the arccos derivative term) and |h|^3 (NNGP, sin t - t cos t
  ~ t^3/3); smooth kernels show the h^4 of the probe's own remainder."""
  _, _, kernel_fn = stax.serial(stax.Dense(8, 1.5, 0.1), ACTIVATIONS[activation][0](),
                                stax.Dense(1, 1.5, 0.1))
  assert smoothness.diagonal_exponent(kernel_fn, get, 2) == pytest.approx(exponent, abs=0.1)


def test_learning_rate_above_the_limit_warns_with_the_value(F):
  limit = predict.max_stable_learning_rate(F.K)
  with pytest.warns(RuntimeWarning, match=f"max_stable_learning_rate = {limit / len(F.K):.6g}"):
    flow(F, learning_rate=1.5 * limit / len(F.K)).steps(10)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    flow(F, learning_rate=0.5 * limit / len(F.K)).steps(10)
    with pytest.warns(RuntimeWarning, match="max_stable_learning_rate"):
      training.kernel_residuals(F.K, F.r0, [5], learning_rate=1.5 * limit)
