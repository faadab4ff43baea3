"""The Taylor engine (ntkpde.taylor_engine) against routes that share no code with it.

* ``F(p, q, r)`` in plain ``jnp`` vs neural-tangents' ``kernel_fn``: both evaluate the
  same closed forms with ~10^2 float64 operations per layer, so they agree to a few
  hundred eps (measured <= 1.1e-15 relative at depth 4); ``RTOL_PLAIN = 1e-13``.
* Operator kernels vs nested ``jvp`` of neural-tangents' ``kernel_fn`` (the generic
  route): two roundings of the same derivatives; at order <= 6 each carries ~10^4
  operations, so ``1e-12`` relative to the block's largest entry (measured <= 2e-14).
* SymPy closed forms: tests/test_operator_kernels.py runs them through ``operator_kernel``,
  which takes this engine for ``ntkpde.mlp`` networks (asserted below).
* Order 8 vs finite differences of the engine's own order-4 result, with Richardson's
  error bound (theory/finite_differences.py): ``D^8 K = D^4_FD (D^4 K)``; at depth >= 2,
  where that bound is too loose, vs JAX's univariate Taylor mode on neural-tangents'
  ``kernel_fn`` with mixed coefficients by polarization (theory/jet_reference.py).
"""
import logging
import warnings

import jax
import numpy as np
import pytest
import sympy

import ntkpde
from ntkpde import _compat, jets, operator_kernels, taylor_engine
from ntkpde.input_maps import box_normalization, fourier_features, periodic_embedding
from ntkpde.operators import identity, parse
from theory.finite_differences import richardson_check
from theory.jet_reference import directional_operator_kernel

XY = ("x", "y")
RTOL_PLAIN = 1e-13
RTOL_ROUTES = 1e-12
MAPS = {"none": None, "box": box_normalization([0, 0], [2, 1]),
        "periodic": periodic_embedding([0], period=2.0), "fourier": fourier_features(2, 3)}


def max_rel(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("activation", taylor_engine.SUPPORTED)
def test_plain_structure_equals_neural_tangents(activation, points):
  x1, x2 = points
  for depth in (1, 2, 3, 4):
    for parameterization in ("ntk", "standard"):
      for name, input_map in MAPS.items():
        if name != "none" and (depth, parameterization) != (2, "ntk"):
          continue
        net = ntkpde.mlp(depth, width=64, activation=activation, W_std=1.3, b_std=0.2,
                         parameterization=parameterization, input_map=input_map)
        ours = taylor_engine.plain_kernel(net.kernel_fn.structure, input_map)
        for get in ("ntk", "nngp"):
          err = max_rel(ours(x1, x2, get), net.kernel_fn(x1, x2, get))
          assert err < RTOL_PLAIN, (depth, parameterization, name, get, err)


@pytest.mark.parametrize("get", ["ntk", "nngp"])
def test_identity_operator_is_the_plain_kernel(get, points):
  x1, x2 = points
  net = ntkpde.mlp(3, activation="gelu")
  k = ntkpde.operator_kernel(net.kernel_fn, identity(XY), get=get)
  assert k.method == "taylor"
  assert max_rel(k(x1, x2), net.kernel_fn(x1, x2, get)) < RTOL_PLAIN


LAP = parse("u_xx + u_yy", XY)
UX = parse("u_x", XY)
UY = parse("u_y", XY)
MIXED = parse("x*u_x", XY) + parse("u_xy", XY) + parse("y*u", XY)  # variable coefficients
U3 = parse("u_xxx", ("x",))
PAIRS = {"ux-ux": (UX, UX), "lap-lap": (LAP, LAP), "lap-uy": (LAP, UY),
         "mixed-lap": (MIXED, LAP), "u3-u3": (U3, U3)}


@pytest.mark.parametrize("activation, depth, map_name", [
    ("erf", 1, "none"), ("erf", 3, "none"), ("gelu", 1, "box"), ("sin", 2, "periodic"), ("gaussian", 1, "fourier"),
    ("cos", 1, "none"), ("sigmoid_like", 1, "none")])
def test_matches_nested_jvp_up_to_order_6(activation, depth, map_name):
  net = ntkpde.mlp(depth, activation=activation, input_map=MAPS[map_name])
  rng = np.random.default_rng(5)
  for name, (T, S) in PAIRS.items():
    if name == "u3-u3" and (depth, activation) != (1, "erf"):
      continue  # order 6 through the nested route compiles slowly (10-80 s): once
    x1 = rng.uniform(0.1, 0.9, (5, T.dim))
    x2 = rng.uniform(0.1, 0.9, (4, T.dim))
    engine = ntkpde.operator_kernel(net.kernel_fn, T, S, method="taylor")
    assert engine.method == "taylor"
    if T.order + S.order >= operator_kernels.SLOW_COMPILE_ORDER:
      with pytest.warns(UserWarning, match="compiling it takes"):
        nested = operator_kernels._compiled(net.kernel_fn, T, S, "ntk")
    else:
      nested = operator_kernels._compiled(net.kernel_fn, T, S, "ntk")
    assert max_rel(engine(x1, x2), nested(x1, x2)) < RTOL_ROUTES, name


@pytest.mark.parametrize("exponent", [-2.5, -1.5, -1.0, -0.5, 0.5, 1.5, 2.5, 0.3])
def test_real_power_is_numpy_power_to_rounding(exponent):
  """Half-integer powers as integer powers of ``sqrt(x)`` (vectorised on CPU) against
  NumPy's ``pow``: each of the <= 2 |exponent| + 2 correctly rounded operations adds at
  most half an ulp, so (|exponent| + 2) eps bounds the relative error; other exponents
  fall back to ``pow``."""
  from ntkpde import jets
  x = np.random.default_rng(3).uniform(1e-3, 1e3, 4096)
  got = np.asarray(jax.jit(lambda v: jets.real_power(v, exponent))(x))
  assert np.max(np.abs(got / np.power(x, exponent) - 1)) <= (abs(exponent) + 2) * np.finfo(float).eps


def test_direction_weights_are_exact():
  """``sum_u w_u (u . grad)^k = D^alpha`` as polynomials (the symbol with grad -> z),
  with and without directions preferred by other terms."""
  z = sympy.symbols("z0:3")
  for alpha, preferred in [((1, 1, 0), ()), ((2, 1, 1), ()), ((2, 2, 0), ()), ((0, 3, 1), ()),
                           ((4, 0, 0), ()), ((1, 1, 1), ((2, 1, 0), (1, 3, 1))),
                           ((3, 2, 1), ((0, 1, 0),))]:
    k = sum(alpha)
    lhs = sum(sympy.Rational(w.numerator, w.denominator) *
              sum(ui * zi for ui, zi in zip(u, z)) ** k
              for u, w in taylor_engine._direction_weights(alpha, preferred))
    assert sympy.expand(lhs - sympy.prod([zi ** a for zi, a in zip(z, alpha)])) == 0


@pytest.mark.parametrize("text, coords, count", [
    ("u_xxxx + 2*u_xxyy + u_yyyy", XY, 3), ("u_xy + x*u_xxyy + u", XY, 4),
    ("x*(u_xxxx + 2*u_xxyy + u_yyyy) + 3*u_xx - u_xxx + u_y + u", XY, 3),
    ("u_xxxx + 2*u_xxyy + u_yyyy + u_xyy", XY, 3), ("u_xxxxxx + 3*u_xxxxyy + 3*u_xxyyyy + u_yyyyyy", XY, 4),
    ("u_xxxx + u_yyyy + u_zzzz + 2*u_xxyy + 2*u_yyzz + 2*u_xxzz", ("x", "y", "z"), 6),
    ("u_xxxx + u_yyyy + u_zzzz + 2*u_xxyy + 2*u_yyzz + 2*u_xxzz + u_xy - u_z", ("x", "y", "z"), 6),
    ("u_xxxx + u_yyyy + u_zzzz + 2*u_xxyy + 2*u_yyzz + 2*u_xxzz + u_xxx", ("x", "y", "z"), 7)])
def test_directional_form_reproduces_the_operator(text, coords, count):
  """``sum_u sum_k omega_{u,k}(x) (u . grad)^k`` equals ``T`` symbol by symbol, to rounding
  (exact where the directions are integers, test_direction_weights_are_exact), with fewer
  directions than one full set per mixed term (5, 5, 5, 5, 7, 12, 12 and 12); the symbol
  is compared at random points, coefficients included; a top-degree
  Laplacian power takes a spherical design (3 directions at 60 degrees, the icosahedron's
  6 axes, 4 at 45 degrees), lower-degree terms its directions where they span them and
  integer ones where not (``u_xxx`` beside the 3-D design: 7 directions against 9 integer ones)."""
  op = parse(text, coords)
  form = taylor_engine.directional_form(op)
  assert len(form.directions) == count
  z = sympy.symbols(f"z0:{op.dim}")  # grad -> z
  c = [t.coefficient for t in op.terms]
  lhs = sum(w * c[index] * sum(ui * zi for ui, zi in zip(u, z)) ** degree
            for u, per_u in zip(form.directions, form.weights) for degree, index, w in per_u)
  rhs = sum(c[i] * sympy.prod([zi ** a for zi, a in zip(z, term.multi_index)])
            for i, term in enumerate(op.terms))
  symbols = (*z, *sympy.symbols(coords))
  residual = sympy.lambdify(symbols, lhs - rhs)
  scale = sympy.lambdify(symbols, sum(abs(ci) * sum(abs(zi) for zi in z) ** op.order for ci in c))
  for point in np.random.default_rng(0).uniform(-2, 2, (20, len(symbols))):
    assert abs(residual(*point)) < 1e-14 * scale(*point)


BIH = parse("u_xxxx + 2*u_xxyy + u_yyyy", XY)
BEAM = parse("u_xxxx", ("x",))


@pytest.mark.parametrize("T, low, dim", [(BIH, LAP, 2), (BEAM, parse("u_xx", ("x",)), 1)],
                         ids=["biharmonic", "beam"])
def test_order_8_matches_finite_differences_of_order_4(T, low, dim):
  """``T_x T_x' K = L_x L_x' (L_x L_x' K)`` with ``T = L L`` (``Lap^2`` and
  ``d^4 = d^2 d^2``): finite differences of the engine's order-4 kernel, with
  Richardson's bound, against the engine's order-8 kernel."""
  net = ntkpde.mlp(1, activation="erf")
  rng = np.random.default_rng(3)
  x1, x2 = rng.uniform(-1, 1, (4, dim)), rng.uniform(-1, 1, (3, dim))
  order4 = ntkpde.operator_kernel(net.kernel_fn, low, low)
  got = np.asarray(ntkpde.operator_kernel(net.kernel_fn, T, T)(x1, x2))
  fd, bound = richardson_check(lambda a, b: np.asarray(order4(a, b)), low, low, x1, x2)
  assert np.max(bound) < 1e-3 * np.max(np.abs(got)), "finite-difference bound too loose to test"
  assert np.all(np.abs(got - fd) <= bound), np.max(np.abs(got - fd) / bound)


# Lap^2 = (8/9) sum_i (u_i . grad)^4 for any three unit directions 60 degrees apart (here
# rotated away from every direction the engine uses): sum_i (u_i . z)^4 = (9/8) |z|^4.
ROTATED_BIHARMONIC = tuple(((np.cos(a), np.sin(a)), 8 / 9) for a in 0.3 + np.arange(3) * np.pi / 3)
JET_ROUNDING = 1000  # |error| <= JET_ROUNDING eps magnitude (theory/jet_reference.py); measured <= 47


@pytest.mark.parametrize("activation, depth, T, terms, dim", [
    ("erf", 2, BIH, ROTATED_BIHARMONIC, 2), ("sin", 4, BEAM, (((1.0,), 1.0),), 1),
    ("gelu", 2, BEAM, (((1.0,), 1.0),), 1)],
    ids=["erf-depth2-biharmonic", "sin-depth4-beam", "gelu-depth2-beam"])
def test_order_8_matches_taylor_mode_on_neural_tangents(activation, depth, T, terms, dim):
  """``T_x T_x' K`` at total order 8 against jet's univariate series of neural-tangents'
  ``kernel_fn`` along joint directions, mixed coefficients by polarization (9 angles,
  condition number 51), within ``JET_ROUNDING eps`` times the route's rounding magnitude.
  (The layer loop, from depth ``LAYER_LOOP_MIN_DEPTH``, is checked against these unrolled
  layers below.)"""
  net = ntkpde.mlp(depth, activation=activation)
  rng = np.random.default_rng(1)
  x1, x2 = rng.uniform(-1, 1, (4, dim)), rng.uniform(-1, 1, (3, dim))
  reference, magnitude = directional_operator_kernel(net.kernel_fn, x1, x2, 4, terms, 4, terms)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # the slow-compilation notice
    got = np.asarray(ntkpde.operator_kernel(net.kernel_fn, T, T, method="taylor")(x1, x2))
  assert np.all(np.abs(got - reference) <= JET_ROUNDING * np.finfo(np.float64).eps * magnitude), \
      np.max(np.abs(got - reference) / magnitude)
  assert np.all(magnitude < 1e5 * np.abs(reference))  # the bound is tight enough to mean something


def test_layer_loop_equals_the_unrolled_layers(monkeypatch):
  """At order >= 7 and depth >= ``LAYER_LOOP_MIN_DEPTH``, where the unrolled layers would
  exceed ``LAYER_UNROLL_MAX_PRODUCTS`` products (forced here), layers 2 .. depth run in a
  ``fori_loop`` over one layer (loop carries with every coefficient broadcast); the same
  kernel with the layers unrolled (this depth-5 erf beam by default) agrees to rounding. (Finite differences cannot check
  order 8 at depth 4: Richardson's bound is 2% of the kernel there.)"""
  net = ntkpde.mlp(taylor_engine.LAYER_LOOP_MIN_DEPTH, activation="erf", W_std=1.2)
  x1 = np.random.default_rng(9).uniform(-1, 1, (4, 1))
  x2 = x1[:3] * 0.7

  def beam():
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", UserWarning)  # the slow-compilation notice
      return np.asarray(ntkpde.operator_kernel(net.kernel_fn, BEAM, BEAM, method="taylor")(x1, x2))
  loops = []
  real_loop_body = jets.loop_body
  monkeypatch.setattr(jets, "loop_body", lambda: loops.append(1) or real_loop_body())
  taylor_engine.compiled_core.cache_clear()
  unrolled = beam()
  assert not loops
  monkeypatch.setattr(taylor_engine, "LAYER_UNROLL_MAX_PRODUCTS", 0)
  taylor_engine.compiled_core.cache_clear()
  loop = beam()
  taylor_engine.compiled_core.cache_clear()
  assert loops
  assert max_rel(loop, unrolled) < RTOL_PLAIN


def test_direction_pair_layouts_give_the_same_kernel(monkeypatch, points):
  """Small programs write the direction pairs out (``PAIR_UNROLL_MAX_PRODUCTS``), large
  ones loop over them, and pairs of at least ``STACKED_MIN_PRODUCTS`` products are
  stacked and summed, on CPU in blocks of rows; all give the same kernel to rounding (the
  arithmetic is checked against nested jvp above)."""
  net = ntkpde.mlp(2, activation="sin", W_std=1.1)  # a structure no other test compiles
  x1, x2 = points
  form = taylor_engine.directional_form(LAP)

  def lap_lap():
    values = np.asarray(ntkpde.operator_kernel(net.kernel_fn, LAP, LAP, method="taylor")(x1, x2))
    return values, taylor_engine.core_for(net.kernel_fn.structure, None, form, form, "ntk")
  taylor_engine.compiled_core.cache_clear()
  written_out, core = lap_lap()
  assert core.layout == "written out" and core.pairs == 4
  monkeypatch.setattr(taylor_engine, "PAIR_UNROLL_MAX_PRODUCTS", 0)
  taylor_engine.compiled_core.cache_clear()
  looped, core = lap_lap()
  assert core.layout == "loop"
  # Lowering the same shapes again (another device) reuses JAX's trace, which counts no
  # products: the decision made on the first trace must stand.
  x = jax.numpy.zeros((8, 2))
  args = (x, x, taylor_engine.omegas(form, LAP, x), taylor_engine.omegas(form, LAP, x))
  core.lower(*args)
  assert core.layout == "loop" and core.largest > 0
  # Deciding again on those shapes (JAX's trace cached) still counts the products.
  assert core._decide(args)[:2] == ("loop", core.largest)
  taylor_engine.compiled_core.cache_clear()
  assert max_rel(written_out, looped) < RTOL_PLAIN
  monkeypatch.setattr(taylor_engine, "STACKED_MIN_PRODUCTS", 0)
  taylor_engine.compiled_core.cache_clear()
  stacked, core = lap_lap()
  taylor_engine.compiled_core.cache_clear()
  assert core.layout == "stacked" and core.older and core.hoisted
  assert max_rel(written_out, stacked) < RTOL_PLAIN
  # Stacked pairs above LOOP_INVARIANT_MOTION_MAX_PRODUCTS compile without XLA's
  # loop-invariant code motion: the same values to rounding.
  monkeypatch.setattr(taylor_engine, "LOOP_INVARIANT_MOTION_MAX_PRODUCTS", 0)
  requested = []
  real = _compat.cpu_compiler_options
  monkeypatch.setattr(_compat, "cpu_compiler_options",
                      lambda *a, **k: requested.append((a, k)) or real(*a, **k))
  taylor_engine.compiled_core.cache_clear()
  unhoisted, core = lap_lap()
  taylor_engine.compiled_core.cache_clear()
  assert core.layout == "stacked" and not core.hoisted
  assert ((), {"older_emitters": True, "hoist_loop_invariants": False}) in requested
  if jax.default_backend() == "cpu":
    assert core._options() == {"xla_cpu_use_fusion_emitters": False,
                               "xla_disable_hlo_passes": "while-loop-invariant-code-motion"}
  assert max_rel(written_out, unhoisted) < RTOL_PLAIN
  if jax.default_backend() == "cpu":
    # 8 x 8 padded tiles in blocks of at most 16 entries: 2 rows each.
    monkeypatch.setattr(taylor_engine, "ROW_BLOCK_MAX_ENTRIES", 16)
    taylor_engine.compiled_core.cache_clear()
    blocked, core = lap_lap()
    taylor_engine.compiled_core.cache_clear()
    assert core.layout == "stacked" and core.rows == 2
    assert max_rel(written_out, blocked) < RTOL_PLAIN


def test_one_trace_of_the_pair_per_kernel(monkeypatch, points):
  """The pair is traced once per shapes and the compiled program reuses that trace: at the
  full shape for ``Lap x Lap`` (written out), at a row block's shape for the biharmonic
  (total order 8, in blocks of 2 rows here)."""
  if jax.default_backend() != "cpu":
    pytest.skip("row blocks are a CPU layout")
  traces = []
  real = taylor_engine._pair_jet
  monkeypatch.setattr(taylor_engine, "_pair_jet", lambda *a: traces.append(1) or real(*a))
  monkeypatch.setattr(taylor_engine, "ROW_BLOCK_MAX_ENTRIES", 16)
  net = ntkpde.mlp(1, activation="erf", W_std=1.2)  # a structure no other test compiles
  x1, x2 = points
  for op, layout, rows in ((LAP, "written out", 8), (BIH, "loop", 2)):
    taylor_engine.compiled_core.cache_clear()
    traces.clear()
    ntkpde.operator_kernel(net.kernel_fn, op, method="taylor")(x1, x2)
    form = taylor_engine.directional_form(op)
    core = taylor_engine.core_for(net.kernel_fn.structure, None, form, form, "ntk")
    assert (core.layout, core.rows, len(traces)) == (layout, rows, 1)
  taylor_engine.compiled_core.cache_clear()


def test_large_straight_line_programs_compile_with_the_older_fusion_emitters(monkeypatch):
  """A core whose traced program has a straight-line region of at least
  ``OLDER_EMITTERS_MIN_PRODUCTS`` full-size jet products (depth-3 beam, layers unrolled)
  compiles with XLA's older CPU fusion emitters, a smaller one (depth 1) with the default
  ones; the values equal those of the default emitters to rounding (the arithmetic itself
  is checked against nested jvp and finite differences above; this checks the code
  generation)."""
  if jax.default_backend() == "cpu":
    assert _compat.cpu_compiler_options(older_emitters=True) == {"xla_cpu_use_fusion_emitters": False}
  assert _compat.cpu_compiler_options() is None
  calls = []
  real = _compat.cpu_compiler_options

  def spy(older_emitters=False, hoist_loop_invariants=True):
    if older_emitters:
      calls.append(1)
    return real(older_emitters, hoist_loop_invariants)
  monkeypatch.setattr(_compat, "cpu_compiler_options", spy)
  x1 = np.random.default_rng(8).uniform(-1, 1, (5, 1))
  x2 = x1[:4] * 0.5
  form = taylor_engine.directional_form(BEAM)

  def beam_kernel(depth):
    net = ntkpde.mlp(depth, activation="erf", W_std=1.3)  # a structure no other test compiles
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", UserWarning)  # a slow-compilation notice, if any
      values = np.asarray(ntkpde.operator_kernel(net.kernel_fn, BEAM, BEAM, method="taylor")(x1, x2))
    core = taylor_engine.core_for(net.kernel_fn.structure, None, form, form, "ntk")
    return values, core.largest

  _, small = beam_kernel(1)
  assert small < taylor_engine.OLDER_EMITTERS_MIN_PRODUCTS and not calls
  older, large = beam_kernel(3)
  assert large >= taylor_engine.OLDER_EMITTERS_MIN_PRODUCTS and calls
  monkeypatch.setattr(taylor_engine, "OLDER_EMITTERS_MIN_PRODUCTS", float("inf"))
  taylor_engine.compiled_core.cache_clear()
  default, _ = beam_kernel(3)
  taylor_engine.compiled_core.cache_clear()
  assert max_rel(older, default) < RTOL_PLAIN


def test_generic_kernel_takes_the_nested_route_and_logs(caplog, points):
  stax = ntkpde.architectures.stax
  net = ntkpde.network(*stax.serial(stax.Dense(8, 1.5, 0.1), stax.Erf(), stax.Dense(1, 1.5, 0.1)))
  mlp = ntkpde.mlp(1, activation="erf")
  with caplog.at_level(logging.INFO, logger="ntkpde"):
    generic = ntkpde.operator_kernel(net.kernel_fn, UX)
    known = ntkpde.operator_kernel(mlp.kernel_fn, UX, method="taylor")
  assert (generic.method, known.method) == ("nested-jvp", "taylor")
  # Chosen automatically: Taylor for erf, sigmoid_like, gelu and gaussian at every order;
  # for sin and cos nested jvp up to total order 4 (as fast or faster there), Taylor above.
  sin = ntkpde.mlp(1, activation="sin")
  assert ntkpde.operator_kernel(mlp.kernel_fn, UX).method == "taylor"
  assert ntkpde.operator_kernel(sin.kernel_fn, UX).method == "nested-jvp"
  assert ntkpde.operator_kernel(sin.kernel_fn, parse("u_xxx", XY)).method == "taylor"
  for activation in ("gelu", "gaussian"):
    assert ntkpde.operator_kernel(ntkpde.mlp(1, activation=activation).kernel_fn, UX).method == "taylor"
  with pytest.raises(ValueError, match="needs a kernel whose scalar structure"):
    ntkpde.operator_kernel(net.kernel_fn, UX, method="taylor")
  assert "nested-jvp route" in caplog.text and "taylor route" in caplog.text
  assert max_rel(generic(*points), known(*points)) < RTOL_ROUTES  # same kernel, two routes


def test_total_order_above_8_is_refused_unless_forced():
  u5 = parse("u_xxxxx", ("x",))
  stax = ntkpde.architectures.stax
  generic = ntkpde.network(*stax.serial(stax.Dense(8), stax.Erf(), stax.Dense(1))).kernel_fn
  for kfn, route in ((generic, "nested-jvp"), (ntkpde.mlp(1).kernel_fn, "taylor")):
    with pytest.raises(ValueError, match=f"total derivative order 10 > 8 on the {route} route.*force=True"):
      ntkpde.operator_kernel(kfn, u5)
    with pytest.raises(ValueError, match="order 10"):
      ntkpde.gram(kfn, [("a", u5, np.zeros((2, 1)))])
  forced = ntkpde.operator_kernel(ntkpde.mlp(1).kernel_fn, u5, force=True)
  assert forced.method == "taylor"  # constructed; nothing compiled here


def test_gram_larger_than_memory_is_refused(monkeypatch, points):
  monkeypatch.setattr(operator_kernels, "available_memory", lambda: 100)
  kfn = ntkpde.mlp(1).kernel_fn
  with pytest.raises(ValueError, match=r"needs about .* GiB .*large_eigen.*force=True"):
    ntkpde.gram(kfn, [("a", identity(XY), points[0])])
  g = ntkpde.gram(kfn, [("a", identity(XY), points[0])], force=True)
  assert g.matrix.shape == (6, 6)


def test_compilation_cache_setting(tmp_path):
  """``NTKPDE_COMPILATION_CACHE`` names the folder or turns the cache off (a fresh
  process each: the setting is read on import)."""
  import subprocess
  import sys
  import os
  code = "import jax, ntkpde; print(jax.config.jax_compilation_cache_dir)"
  env = dict(os.environ, NTKPDE_COMPILATION_CACHE=str(tmp_path / "c"), JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       check=True).stdout.strip()
  assert out == str(tmp_path / "c") and (tmp_path / "c").is_dir()
  env["NTKPDE_COMPILATION_CACHE"] = "off"
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       check=True).stdout.strip()
  assert out == "None"


def test_slow_taylor_compilations_warn_before_they_start():
  """Nothing is compiled here: the notice comes when the kernel function is built."""
  with pytest.warns(UserWarning, match="total order 8, erf, depth 4.*compiles"):
    ntkpde.operator_kernel(ntkpde.mlp(4).kernel_fn, BEAM)
  with pytest.warns(UserWarning, match="total order 8, gelu, depth 3.*compiles"):
    ntkpde.operator_kernel(ntkpde.mlp(3, activation="gelu").kernel_fn, BEAM)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    ntkpde.operator_kernel(ntkpde.mlp(3).kernel_fn, BEAM)  # about 3 s since 2026-12-07
    ntkpde.operator_kernel(ntkpde.mlp(2, activation="gelu").kernel_fn, BEAM)


def test_gpu_benchmark_smoke_run(tmp_path):
  """benchmarks/operator_kernel_speed.py --gpu-sizes --quick runs the Taylor engine on CPU
  at tiny sizes and records the ratios it would record on a GPU up to N = 16384."""
  import json
  import sys
  from pathlib import Path
  sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
  try:
    import operator_kernel_speed
  finally:
    sys.path.pop(0)
  out = tmp_path / "speed.json"
  assert operator_kernel_speed.main(["--gpu-sizes", "--quick", "--json", str(out)]) == 0
  report = json.loads(out.read_text())
  assert report["method"] == "taylor" and report["quick"]
  assert [r["n"] for r in report["rows"]] == list(operator_kernel_speed.QUICK_SIZES)
  assert all(np.isfinite(r["op_over_plain"]) and r["op_over_plain"] > 0 for r in report["rows"])
  assert operator_kernel_speed.GPU_SIZES[-1] == 16384
