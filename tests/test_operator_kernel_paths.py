"""The speed devices inside ``operator_kernel`` change no value.

``operator_kernel`` jits the kernel once per ``(kernel_fn, get)`` and
differentiates that program, pads inputs to a few bucket sizes and assembles
big matrices from padded tiles, and counts non-finite entries tile by tile.
Here each is checked against a route that does not use it: tiled vs a single
block, the operator kernel vs per-pair ``jax.grad`` / ``jax.hessian`` of the scalar
kernel (shares only ``kernel_fn``), the NaN count (flagged on the device) vs NumPy, the
matrix written into a caller's array, gram's memory, and 4 devices vs 1.

Tolerances: every entry is the same float64 arithmetic on the same row pair
whatever the tiling, up to the order XLA vectorises it in, so tiled and single
block differ by rounding only; a 2nd derivative of the NTK runs through ~10^3
floating-point operations, so rounding is below 10^3 * 2.2e-16 ~ 2e-13 of the
matrix's largest entry (seen: <= 5e-16). Per-pair reverse-mode autodiff rounds
differently but equally finely: same bound.
"""
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkpde
from ntkpde import large_eigen, operator_kernels
from ntkpde.operators import identity, parse

ROUNDING = 2e-13
COORDS = ("x", "y")


@pytest.fixture(scope="module")
def kernel_fn():
  return ntkpde.mlp(2, activation="erf").kernel_fn


def _rel(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return np.max(np.abs(a - b)) / np.max(np.abs(b))


def test_tiles_and_padding_change_no_value(kernel_fn):
  # A coefficient depending on x makes a misplaced row or column visible.
  T, S = parse("u_xx + u_yy", COORDS), parse("u_x + x*u_y", COORDS)
  rng = np.random.default_rng(0)
  x1, x2 = rng.uniform(-1, 1, (13, 2)), rng.uniform(-1, 1, (21, 2))
  whole = operator_kernel_values(kernel_fn, T, S, x1, x2, tile=1024)  # one padded block
  tiled = operator_kernel_values(kernel_fn, T, S, x1, x2, tile=8)  # 2 x 3 blocks, padded edges
  assert whole.shape == tiled.shape == (13, 21)
  assert _rel(tiled, whole) < ROUNDING


def operator_kernel_values(kernel_fn, T, S, x1, x2, tile):
  return np.asarray(ntkpde.operator_kernel(kernel_fn, T, S, tile=tile)(x1, x2))


def test_matches_per_pair_gradient(kernel_fn):
  # (u_x + x u_y) in x, pair by pair with jax.grad (reverse mode) of the scalar kernel.
  def k(x, xp):
    return kernel_fn(x[None], xp[None], "ntk")[0, 0]

  def t_x(x, xp):
    g = jax.grad(k, argnums=0)(x, xp)
    return g[0] + x[0] * g[1]
  rng = np.random.default_rng(1)
  x1, x2 = rng.uniform(-1, 1, (13, 2)), rng.uniform(-1, 1, (5, 2))
  per_pair = jax.jit(jax.vmap(jax.vmap(t_x, (None, 0)), (0, None)))(x1, x2)
  fast = operator_kernel_values(kernel_fn, parse("u_x + x*u_y", COORDS), identity(COORDS),
                                x1, x2, tile=1024)
  assert _rel(fast, per_pair) < ROUNDING


def test_bucket_sizes():
  sizes = [operator_kernels._bucket(n, 1024) for n in range(1, 1025)]
  assert all(b >= n for n, b in enumerate(sizes, 1))
  assert all(b <= max(8, 1.5 * n) for n, b in enumerate(sizes, 1))
  assert len(set(sizes)) == 15  # 8, 12, 16, ..., 768, 1024: one compilation each at most
  assert operator_kernels._bucket(700, 500) == 500


def test_non_finite_entries_counted_over_all_tiles():
  def sqrt_kernel(x1, x2, get):  # NaN wherever x . x' < 0
    return jnp.sqrt(x1 @ x2.T)
  kfn = ntkpde.KernelFn(sqrt_kernel, description="sqrt of the dot product")
  rng = np.random.default_rng(2)
  x1, x2 = rng.normal(size=(19, 2)), rng.normal(size=(11, 2))
  expected = int(np.sum(x1 @ x2.T < 0))
  assert 0 < expected < x1.shape[0] * x2.shape[0]
  with pytest.raises(ntkpde.NonFiniteKernelError,
                     match=re.escape(f"{expected} of {19 * 11} entries are NaN or inf")):
    ntkpde.operator_kernel(kfn, identity(COORDS), tile=8)(x1, x2)


def test_no_points_gives_an_empty_matrix(kernel_fn):
  out = ntkpde.operator_kernel(kernel_fn, identity(COORDS))(np.zeros((0, 2)), np.ones((3, 2)))
  assert out.shape == (0, 3)


def test_symmetric_route_matches_per_pair_gradient_and_is_exactly_symmetric(kernel_fn):
  """``operator_kernel(k, T)(x)`` computes only the upper tiles and mirrors them; against
  per-pair ``jax.hessian`` of the scalar kernel (reverse over forward, no tiling)."""
  def k(x, xp):
    return kernel_fn(x[None], xp[None], "ntk")[0, 0]

  def lap_lap(x, xp):
    inner = lambda a, b: jnp.trace(jax.hessian(k, argnums=1)(a, b))
    return jnp.trace(jax.hessian(inner, argnums=0)(x, xp))
  x = np.random.default_rng(3).uniform(-1, 1, (19, 2))
  per_pair = jax.jit(jax.vmap(jax.vmap(lap_lap, (None, 0)), (0, None)))(x, x)
  lap = parse("u_xx + u_yy", COORDS)
  tiled = ntkpde.operator_kernel(kernel_fn, lap, tile=8)(x)  # 3 x 3 tiles, 6 computed
  assert isinstance(tiled, np.ndarray) and tiled.dtype == np.float64
  np.testing.assert_array_equal(tiled, tiled.T)
  assert _rel(tiled, per_pair) < ROUNDING


def test_results_are_written_into_a_preallocated_array(kernel_fn):
  T, S = parse("u_xx + u_yy", COORDS), parse("u_x + x*u_y", COORDS)
  rng = np.random.default_rng(4)
  x1, x2 = rng.uniform(-1, 1, (13, 2)), rng.uniform(-1, 1, (21, 2))
  kernel = ntkpde.operator_kernel(kernel_fn, T, S, tile=8)
  big = np.full((20, 30), 7.0)
  assert kernel(x1, x2, out=big[2:15, 5:26]).base is big
  np.testing.assert_array_equal(big[2:15, 5:26], kernel(x1, x2))
  big[2:15, 5:26] = 7.0
  assert np.all(big == 7.0)  # nothing written outside the view
  for bad in (np.empty((13, 20)), np.empty((13, 21), np.float32), jnp.zeros((13, 21))):
    with pytest.raises(ValueError, match=r"out must be a writable float64 NumPy array of "
                                         r"shape \(13, 21\)"):
      kernel(x1, x2, out=bad)


def test_gram_holds_one_matrix_and_a_few_tiles(kernel_fn):
  """tracemalloc sees NumPy's allocations: gram's peak is its matrix plus tiles."""
  import tracemalloc
  x = np.random.default_rng(5).uniform(-1, 1, (600, 2))
  channels = [("a", identity(COORDS), x[:350]), ("b", parse("u_x", COORDS), x[350:])]
  ntkpde.gram(kernel_fn, channels, tile=64)  # compile outside the measurement
  tracemalloc.start()
  try:
    g = ntkpde.gram(kernel_fn, channels, tile=64)
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  matrix = 8 * 600 ** 2
  assert isinstance(g.matrix, np.ndarray) and g.matrix.shape == (600, 600)
  assert peak <= matrix + 16 * 8 * 64 ** 2, peak / matrix
  direct = np.asarray(ntkpde.operator_kernel(kernel_fn, identity(COORDS), parse("u_x", COORDS))(
      x[:350], x[350:]))
  np.testing.assert_array_equal(g.block("b", "a"), g.block("a", "b").T)
  assert _rel(g.block("a", "b"), direct) < ROUNDING


def test_an_overflowing_tile_sum_is_no_false_alarm():
  """The device flags a tile by its sum; 1e308-sized entries overflow it to inf, and the
  host's exact count then finds no non-finite entry."""
  kfn = ntkpde.KernelFn(lambda x1, x2, get: 1e308 * jnp.cos(x1 @ x2.T) ** 2,
                        description="huge finite kernel")
  x = np.random.default_rng(7).uniform(-1, 1, (9, 2))
  values = ntkpde.operator_kernel(kfn, identity(COORDS))(x)
  with np.errstate(over="ignore"):
    assert np.all(np.isfinite(values)) and not np.isfinite(np.sum(values))
  np.testing.assert_allclose(values, 1e308 * np.cos(x @ x.T) ** 2, rtol=1e-14)


def test_non_finite_entries_counted_on_the_symmetric_route():
  def sqrt_kernel(x1, x2, get):  # NaN wherever x . x' < 0
    return jnp.sqrt(x1 @ x2.T)
  kfn = ntkpde.KernelFn(sqrt_kernel, description="sqrt of the dot product")
  x = np.random.default_rng(6).normal(size=(19, 2))
  expected = int(np.sum(x @ x.T < 0))
  assert expected > 0
  with pytest.raises(ntkpde.NonFiniteKernelError,
                     match=re.escape(f"{expected} of {19 * 19} entries are NaN or inf")):
    ntkpde.operator_kernel(kfn, identity(COORDS), tile=8)(x)


def test_tiles_spread_over_several_devices_give_identical_values(tmp_path):
  """Four host CPU devices (a subprocess: the device count is fixed when JAX starts)
  against one: every tile is the same computation and the host combines them in a fixed
  order, so the tiled kernel, the Gram and large_eigen's subspace iteration are identical."""
  import os
  import subprocess
  import sys
  code = (
      "import numpy as np, jax, ntkpde\n"
      "from ntkpde import large_eigen\n"
      "from ntkpde.operators import parse\n"
      "assert len(jax.local_devices()) == {n}, jax.local_devices()\n"
      "x = np.random.default_rng(0).uniform(-1, 1, (21, 2))\n"
      "lap = parse('u_xx + u_yy', ('x', 'y'))\n"
      "k = ntkpde.operator_kernel(ntkpde.mlp(1).kernel_fn, lap, tile=8)\n"
      "top = large_eigen.top_eigenvalues(k, x, 3, block=5, tile=8, cache_bytes=0, max_passes=2)\n"
      "np.savez(r'{out}', mixed=k(x, x[:13]), gram=k(x), eigen=top.values)\n")
  for n in (1, 4):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
    subprocess.run([sys.executable, "-c", code.format(n=n, out=tmp_path / f"{n}.npz")],
                   env=env, check=True, capture_output=True, text=True)
  one, four = np.load(tmp_path / "1.npz"), np.load(tmp_path / "4.npz")
  for name in ("mixed", "gram", "eigen"):
    np.testing.assert_array_equal(four[name], one[name])


def test_tile_size_from_device_memory(monkeypatch):
  """CPU reports no memory: the 2 GiB budget gives 1024 (512 for the Taylor engine, whose
  looped cores keep more per entry). A device reporting memory gets the largest power of
  two whose two tiles in flight fit a quarter of its free memory. ``operator_kernel``
  takes its route's tile, and ``large_eigen`` the kernel's."""
  k = operator_kernels
  assert k.default_tile() == k.DEFAULT_TILE == 1024
  assert 2 * k.TILE_BYTES_PER_ENTRY * 1024 ** 2 <= k.CPU_TILE_BUDGET < \
      2 * k.TILE_BYTES_PER_ENTRY * 2048 ** 2
  assert k.default_tile(k.TAYLOR_TILE_BYTES_PER_ENTRY) == 512
  lap = parse("u_xx + u_yy", ("x", "y"))
  taylor = ntkpde.operator_kernel(ntkpde.mlp(1, activation="erf").kernel_fn, lap, method="taylor")
  nested = ntkpde.operator_kernel(ntkpde.mlp(1, activation="erf").kernel_fn, lap,
                                  method="nested-jvp")
  assert (taylor.tile, nested.tile) == (512, 1024)
  points = np.zeros((600, 2))
  assert large_eigen.TiledKernelMatrix(taylor, points).tile == 512
  assert large_eigen.TiledKernelMatrix(nested, points).tile == 600

  class Gpu:
    platform = "gpu"

    def __init__(self, limit, used):
      self.stats = {"bytes_limit": limit, "bytes_in_use": used}

    def memory_stats(self):
      return self.stats
  gib = 2 ** 30
  for devices, tile, taylor in (([Gpu(60 * gib, 0)], 2048, 1024),
                                ([Gpu(130 * gib, 2 * gib)], 4096, 2048),
                                ([Gpu(130 * gib, 0), Gpu(20 * gib, 12 * gib)], 1024, 512),
                                ([Gpu(gib // 64, 0)], 64, 64),
                                ([Gpu(10 ** 15, 0)], k.MAX_TILE, k.MAX_TILE)):
    monkeypatch.setattr(jax, "local_devices", lambda devices=devices: devices)
    assert k.default_tile() == tile
    assert k.default_tile(k.TAYLOR_TILE_BYTES_PER_ENTRY) == taylor


@pytest.mark.parametrize("method", ["nested-jvp", "taylor"])
def test_a_tile_makes_no_host_round_trip_and_stays_float64(kernel_fn, method):
  """GPU readiness: a tile is one pure JAX computation of the points. Tracing it with
  abstract inputs fails if anything in it reads a value back to the host (``float()``,
  ``np.asarray``, Python control flow on values); the result is float64."""
  T = parse("u_xx + x*u_yy", COORDS)
  fn = ntkpde.operator_kernel(kernel_fn, T, method=method).tile_fn
  spec = jax.ShapeDtypeStruct((16, 2), jnp.float64)
  jaxpr = jax.make_jaxpr(fn)(spec, spec)
  assert [v.dtype for v in jaxpr.out_avals] == [jnp.float64]
  assert [v.shape for v in jaxpr.out_avals] == [(16, 16)]

  def reads_back(a, b):
    return fn(a, b) * float(a[0, 0])
  with pytest.raises(jax.errors.ConcretizationTypeError):
    jax.make_jaxpr(reads_back)(spec, spec)  # such a read is what tracing rejects


def test_compile_jobs_run_side_by_side_and_errors_reach_the_caller():
  """Two jobs that each wait for the other finish only if they run at once, on threads
  other than the caller's; a job's error is raised in the caller."""
  import threading
  if operator_kernels._cpus() < 2:
    pytest.skip("one CPU: jobs run one at a time")
  barrier, ran = threading.Barrier(2, timeout=20), []

  def job():
    barrier.wait()
    ran.append(threading.get_ident())
  operator_kernels.compile_concurrently([job, None, job])
  assert len(set(ran)) == 2 and threading.get_ident() not in ran

  def broken():
    raise ValueError("no such program")
  with pytest.raises(ValueError, match="no such program"):
    operator_kernels.compile_concurrently([broken, lambda: None])

  def lowering_fails():  # the error of drawing (lowering) a job stops every thread too
    yield lambda: None
    raise RuntimeError("cannot lower")
  before = threading.active_count()
  with pytest.raises(RuntimeError, match="cannot lower"):
    operator_kernels.compile_concurrently(lowering_fails())
  for _ in range(100):
    if threading.active_count() <= before:
      break
    threading.Event().wait(0.05)
  assert threading.active_count() <= before


def _abstract(rows):
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.ShapeDtypeStruct((rows, 2), np.float64, sharding=sharding)


def test_a_prepared_program_is_not_compiled_again(kernel_fn, monkeypatch):
  """Both routes' compile jobs leave a program that later calls reuse: the Taylor core is
  not lowered again, and the nested-jvp function (JAX's own cache) compiles nothing more.
  The two routes' values agree to rounding."""
  from ntkpde import taylor_engine
  events, counting = [], [False]
  jax.monitoring.register_event_duration_secs_listener(
      lambda name, seconds, **_: events.append(name) if counting[0] and "backend_compile" in name
      else None)
  lap = parse("u_xx + u_yy", COORDS)
  taylor = ntkpde.operator_kernel(kernel_fn, lap, method="taylor").tile_fn
  nested = ntkpde.operator_kernel(kernel_fn, lap, method="nested-jvp").tile_fn
  a, b = _abstract(11), _abstract(7)  # shapes no other test compiles
  job = operator_kernels._compile_job(taylor, a, b)
  assert job is not None and operator_kernels._compile_job(taylor, a, b) is None  # pending
  operator_kernels.compile_concurrently([job, operator_kernels._compile_job(nested, a, b)])
  assert operator_kernels._compile_job(taylor, a, b) is None  # compiled
  form = taylor_engine.directional_form(lap)
  core = taylor_engine.core_for(kernel_fn.structure, kernel_fn.input_map, form, form, "ntk")
  monkeypatch.setattr(core, "lower", lambda *args: pytest.fail("lowered again"))
  rng = np.random.default_rng(8)
  x1, x2 = (jax.device_put(rng.uniform(-1, 1, (n, 2)), jax.local_devices()[0]) for n in (11, 7))
  counting[0] = True
  try:
    via_nested = np.asarray(nested(x1, x2))
  finally:
    counting[0] = False
  assert not events
  assert _rel(taylor(x1, x2), via_nested) < ROUNDING


def test_gram_compiles_every_block_before_evaluating(compile_calls):
  """``gram`` hands all six blocks' programs to ``compile_concurrently`` at once, before
  evaluating any block (whose own calls then find nothing to compile), and its blocks equal
  ``operator_kernel`` block by block."""
  kfn = ntkpde.mlp(2, activation="erf", W_std=1.1).kernel_fn  # cores no other test compiles
  rng = np.random.default_rng(9)
  ops = [parse("u_xx + u_yy", COORDS), identity(COORDS), parse("u_x", COORDS)]
  points = [rng.uniform(-1, 1, (n, 2)) for n in (19, 10, 5)]
  g = ntkpde.gram(kfn, [(name, op, x) for name, op, x in zip("abc", ops, points)], tile=16)
  assert compile_calls[0] == 6 and not any(compile_calls[1:]), compile_calls
  for i in range(3):
    for j in range(i, 3):
      k = ntkpde.operator_kernel(kfn, ops[i], ops[j], tile=16)
      assert k.method == "taylor"
      direct = k(points[i], None if i == j else points[j])
      assert _rel(g.block("abc"[i], "abc"[j]), direct) < ROUNDING


def test_cross_kernel_compiles_its_blocks_first_and_assembles_them(compile_calls):
  """``cross_kernel`` (prediction's cross blocks) hands its three programs over at once and
  writes each block where ``operator_kernel`` block by block puts it."""
  kfn = ntkpde.mlp(2, activation="erf", W_std=1.2).kernel_fn  # cores no other test compiles
  rng = np.random.default_rng(10)
  chans = [("a", parse("u_xx + u_yy", COORDS), rng.uniform(-1, 1, (7, 2))),
           ("b", identity(COORDS), rng.uniform(-1, 1, (4, 2))),
           ("c", parse("u_y", COORDS), rng.uniform(-1, 1, (3, 2)))]
  x = rng.uniform(-1, 1, (6, 2))
  lap = parse("u_xx + u_yy", COORDS)
  got = operator_kernels.cross_kernel(kfn, lap, chans, x)
  assert compile_calls[0] == 3 and not any(compile_calls[1:]), compile_calls
  blocks = [ntkpde.operator_kernel(kfn, lap, op)(x, pts) for _, op, pts in chans]
  np.testing.assert_array_equal(got, np.concatenate(blocks, axis=1))


def test_compile_side_by_side_benchmark_smoke(capsys):
  """benchmarks/compile_side_by_side.py --smoke: one case, both ways, a table row."""
  import importlib.util
  import pathlib
  path = pathlib.Path(__file__).parents[1] / "benchmarks" / "compile_side_by_side.py"
  spec = importlib.util.spec_from_file_location("compile_side_by_side", path)
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  bench.main(["--smoke"])
  rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
  assert len(rows) == 1 and rows[0]["one_thread_s"] > 0 and rows[0]["side_by_side_s"] > 0
