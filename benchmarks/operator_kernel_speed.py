"""Speed of ``ntkpde.operator_kernel`` for ``Lap_x Lap_x' Theta`` against two baselines.

Kernel: depth-2 erf NTK (``ntkpde.mlp(2, activation="erf")``), d = 2, float64,
points uniform in [-1, 1]^2. In one process, for each N, times (median of
repeats after a first call whose time, compilation included, is reported; the
methods take turns so that all see the same load; wall and process CPU time):

* ``operator_kernel``: ``ntkpde.operator_kernel(kernel_fn, Lap)(X, X)``;
* ``plain``: the jitted plain kernel ``kernel_fn(X, X, "ntk")``;
* ``naive``: per-pair nested autodiff, ``tr H_x tr H_x' k(x, x')`` with
  ``jax.hessian`` of the scalar kernel, vmapped over pairs and jitted. Its
  intermediates for all N^2 pairs at once need ~8 GB at N = 1024, so it runs
  on ``--naive-chunk`` pairs per call (same compiled function for every chunk);
  it is measured only for N <= ``--naive-max`` (nothing is extrapolated).

and reports the ratios and the agreement ``max|A - B| / max|B|``. ``--large N``
runs one ``operator_kernel`` evaluation at that N in a child process and reports
its peak resident memory (``resource.getrusage``). Results go to stdout (a
Markdown table) and, after every N, atomically to ``--json``.

  .venv/bin/python benchmarks/operator_kernel_speed.py --json /tmp/ok_speed.json
  .venv/bin/python benchmarks/operator_kernel_speed.py --large 16384
  .venv/bin/python benchmarks/operator_kernel_speed.py --gpu-sizes   # on a GPU

``--gpu-sizes`` runs N up to 16384 on the Taylor engine (``--method`` changes the route;
the default elsewhere is ``operator_kernel``'s own choice). ``--quick`` is a smoke run at
tiny sizes (no naive baseline, 2 repeats, ``"quick": true`` in the JSON) that a test runs
on CPU, so the GPU script is known to work before a GPU is lent.

``--orders`` instead measures the Taylor engine (``.method == "taylor"``) over
operator pairs of total order 0-8, depths and activations: first call (compilation
included), StableHLO lines of the compiled body, steady state against the plain kernel
(interleaved medians), and flops per entry from XLA's cost analysis (the direction-pair
loop body counted once per pair). ``--fused`` compares ``Lap_x Lap_x'`` of the
one-layer erf NTK against a fused (SymPy-derived, CSE'd, jitted) closed form.

``--emitters`` compares, per case of ``--orders``, the Taylor engine compiled with XLA's
default CPU fusion emitters and with the older ones (``_compat.cpu_compiler_options``):
first call and steady state of each, in one process (fresh compilations, interleaved
steady-state medians), the count that decides between them (the full-size jet products of
the largest straight-line region of the traced program, ``taylor_engine.CompiledCore.largest``),
the pair layout and the choice ``operator_kernel`` makes. The emitters are forced only where
the pairs are written out; stacked and looped pairs keep the engine's choice.

  .venv/bin/python benchmarks/operator_kernel_speed.py --orders --n 256 --json /tmp/orders.json
  .venv/bin/python benchmarks/operator_kernel_speed.py --emitters --depths 2 3 \
      --pairs "biharmonic x biharmonic" --n 256
  .venv/bin/python benchmarks/operator_kernel_speed.py --fused --sizes 256 1024
"""
import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

# First calls are measured with compilation: no persistent cache (ntkpde/__init__.py).
os.environ.setdefault("NTKPDE_COMPILATION_CACHE", "off")
import ntkpde  # noqa: E402  (first: enables float64)
import jax
import jax.numpy as jnp
from ntkpde import _compat, reporting
from ntkpde._compat import import_neural_tangents

DEFAULT_SIZES = (256, 512, 1024, 2048, 4096)
GPU_SIZES = (256, 512, 1024, 2048, 4096, 8192, 16384)
QUICK_SIZES = (16, 24)


def setup():
  kernel_fn = ntkpde.mlp(2, activation="erf").kernel_fn
  lap = ntkpde.operators.parse("u_xx + u_yy", ("x", "y"))
  return kernel_fn, lap


def points(n):
  return np.random.default_rng(0).uniform(-1.0, 1.0, (n, 2))


def naive_laplap(kernel_fn, chunk):
  """``(x1, x2) -> Lap_x Lap_x' k`` pair by pair: ``jax.hessian`` twice, vmapped."""
  def k(x, xp):
    return kernel_fn(x[None], xp[None], "ntk")[0, 0]

  def lap_xp(x, xp):
    return jnp.trace(jax.hessian(k, argnums=1)(x, xp))

  def laplap(x, xp):
    return jnp.trace(jax.hessian(lap_xp, argnums=0)(x, xp))
  pairs = jax.jit(jax.vmap(laplap))

  def evaluate(x1, x2):
    i, j = np.divmod(np.arange(len(x1) * len(x2)), len(x2))
    pad = -len(i) % chunk
    i, j = np.pad(i, (0, pad)), np.pad(j, (0, pad))
    out = [pairs(x1[i[s:s + chunk]], x2[j[s:s + chunk]]) for s in range(0, len(i), chunk)]
    return jnp.concatenate(out)[:len(x1) * len(x2)].reshape(len(x1), len(x2))
  return evaluate


def _clock(fn, *args):
  """(wall seconds, this process's CPU seconds, result) of one call."""
  wall, cpu = time.perf_counter(), time.process_time()
  result = jax.block_until_ready(fn(*args))
  return time.perf_counter() - wall, time.process_time() - cpu, result


def timed_interleaved(methods, args, repeats):
  """``methods``: name -> (fn, number of repeats). Each is called once (first
  call: compilation included), then the methods take turns, so that all see the
  same load of a shared machine. Returns name -> (first wall s, median wall s,
  median CPU s, result)."""
  first, results, walls, cpus = {}, {}, {}, {}
  for name, (fn, _) in methods.items():
    print(f"  {name}: first call ...", flush=True)
    first[name], _, results[name] = _clock(fn, *args)
    walls[name], cpus[name] = [], []
  for r in range(repeats):
    for name, (fn, count) in methods.items():
      if r < count:
        wall, cpu, _ = _clock(fn, *args)
        walls[name].append(wall)
        cpus[name].append(cpu)
  return {name: (first[name], float(np.median(walls[name])), float(np.median(cpus[name])),
                 results[name]) for name in methods}


def rel_diff(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def machine():
  model = "unknown"
  try:
    with open("/proc/cpuinfo") as f:
      model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  nt = import_neural_tangents()
  return {
      "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "device": reporting.device_description(),
      "cpu_model": model, "cpu_cores": os.cpu_count(),
      "load_average_at_start": os.getloadavg(),
      "python": platform.python_version(), "jax": jax.__version__,
      "jaxlib": __import__("jaxlib").__version__,
      "neural_tangents": getattr(nt, "__version__", "0.6.5"), "numpy": np.__version__,
  }


ORDER_PAIRS = {  # name -> (T, S, coordinates)
    "I x I": ("u", "u", ("x", "y")),
    "Lap x Lap": ("u_xx + u_yy", "u_xx + u_yy", ("x", "y")),
    "Lap x u_xxx": ("u_xx + u_yy", "u_xxx", ("x", "y")),
    "u_xxx x u_xxx": ("u_xxx", "u_xxx", ("x", "y")),
    "beam u_xxxx x u_xxxx (1-d)": ("u_xxxx", "u_xxxx", ("x",)),
    "biharmonic x biharmonic": ("u_xxxx + 2*u_xxyy + u_yyyy", "u_xxxx + 2*u_xxyy + u_yyyy",
                                ("x", "y")),
}


def engine_program(kernel_fn, T, S, n, d):
  """(StableHLO lines, flops per entry) of the program the Taylor engine compiles at n x n
  (the pairs written out, or one pair on one block of rows: XLA's cost analysis counts a
  loop's body once)."""
  from ntkpde import taylor_engine as te
  f1, f2 = te.directional_form(T), te.directional_form(S)
  core = te.core_for(kernel_fn.structure, kernel_fn.input_map, f1, f2, "ntk")
  x = jnp.zeros((n, d))
  lowered = core.lower(x, x, te.omegas(f1, T, x), te.omegas(f2, S, x))
  options = _compat.cpu_compiler_options(older_emitters=True, hoist_loop_invariants=core.hoisted)
  cost = lowered.compile(options).cost_analysis()  # the older emitters compile fast
  cost = cost[0] if isinstance(cost, list) else cost
  pairs = 1 if core.layout == "written out" else len(f1.directions) * len(f2.directions)
  return lowered.as_text().count("\n"), float(cost.get("flops", 0.0)) * pairs / (core.rows * n)


def _cases(activations, depths, pairs, n):
  """``(activation, depth, net, jitted plain kernel, pair name, T, S, points)`` for every
  case of ``--orders`` / ``--emitters``."""
  for activation in activations:
    for depth in depths:
      net = ntkpde.mlp(depth, activation=activation)
      plain = jax.jit(lambda a, b, k=net.kernel_fn: k(a, b, "ntk"))
      for name in pairs:
        t_text, s_text, coords = ORDER_PAIRS[name]
        T, S = (ntkpde.operators.parse(t, coords) for t in (t_text, s_text))
        x = np.random.default_rng(0).uniform(-1.0, 1.0, (n, len(coords)))
        yield activation, depth, net, plain, name, T, S, x


def orders_table(activations, depths, pairs, n, repeats, json_path, report):
  """Rows of the ``--orders`` table (module docstring)."""
  for activation, depth, net, plain, name, T, S, x in _cases(activations, depths, pairs, n):
    op = ntkpde.operator_kernel(net.kernel_fn, T, S, method="taylor")
    timings = timed_interleaved({"plain": (plain, repeats), "op": (op, repeats)}, (x, x),
                                repeats)
    lines, flops = engine_program(net.kernel_fn, T, S, n, T.dim)
    plain_lines, plain_flops = _plain_program(plain, x)
    row = {"activation": activation, "depth": depth, "pair": name,
           "order": T.order + S.order, "method": op.method, "n": n,
           "first_s": timings["op"][0], "steady_s": timings["op"][1],
           "plain_s": timings["plain"][1], "ratio": timings["op"][1] / timings["plain"][1],
           "hlo_lines": lines, "flops_per_entry": flops, "plain_flops_per_entry": plain_flops,
           "ns_per_flop": 1e9 * timings["op"][1] / (flops * n * n) if flops else None}
    print(json.dumps(row), flush=True)
    report["orders"].append(row)
    if json_path:
      reporting.write_json_atomic(json_path, report)


def _with_threshold(op, minimum):
  """``op`` compiling (on its first call per shape) with ``OLDER_EMITTERS_MIN_PRODUCTS``
  set to ``minimum``: 0 forces the older fusion emitters, infinity the default ones, where
  the pairs are written out (stacked and looped pairs follow ``STACKED_*_PRODUCTS``)."""
  from ntkpde import taylor_engine

  def call(a, b):
    saved = taylor_engine.OLDER_EMITTERS_MIN_PRODUCTS
    taylor_engine.OLDER_EMITTERS_MIN_PRODUCTS = minimum
    try:
      return op(a, b)
    finally:
      taylor_engine.OLDER_EMITTERS_MIN_PRODUCTS = saved
  return call


def emitters_table(activations, depths, pairs, n, repeats, json_path, report):
  """Rows of the ``--emitters`` table (module docstring)."""
  from ntkpde import taylor_engine
  threshold = taylor_engine.OLDER_EMITTERS_MIN_PRODUCTS
  for activation, depth, net, plain, name, T, S, x in _cases(activations, depths, pairs, n):
    f1, f2 = (taylor_engine.directional_form(op) for op in (T, S))
    ops, cores = {}, {}
    for label, minimum in (("default", float("inf")), ("older", 0)):
      taylor_engine.compiled_core.cache_clear()
      op = ntkpde.operator_kernel(net.kernel_fn, T, S, method="taylor")
      cores[label] = taylor_engine.core_for(net.kernel_fn.structure, net.kernel_fn.input_map,
                                            f1, f2, "ntk")
      ops[label] = _with_threshold(op, minimum)
    taylor_engine.compiled_core.cache_clear()
    timings = timed_interleaved({"plain": (plain, repeats), **{k: (op, repeats)
                                 for k, op in ops.items()}}, (x, x), repeats)
    core = cores["default"]
    older = (core.largest >= threshold if core.layout == "written out"
             else core.older)
    row = {"activation": activation, "depth": depth, "pair": name,
           "order": T.order + S.order, "n": n, "plain_s": timings["plain"][1],
           "layout": core.layout, "largest_region_products": core.largest,
           "engine_takes": "older" if older else "default",
           "rel_diff": rel_diff(timings["older"][3], timings["default"][3])}
    for label in ops:
      row[f"{label}_first_s"], row[f"{label}_steady_s"] = timings[label][:2]
    print(json.dumps(row), flush=True)
    report["emitters"].append(row)
    if json_path:
      reporting.write_json_atomic(json_path, report)


def _plain_program(plain, x):
  lowered = plain.lower(x, x)
  cost = lowered.compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return lowered.as_text().count("\n"), float(cost.get("flops", 0.0)) / len(x) ** 2


def fused_laplap():
  """``Lap_x Lap_x' Theta`` of the one-hidden-layer erf NTK (W = 1.5, b = 0.1, d = 2) as
  one jitted expression: SymPy differentiates theory/erf_ntk_closed_form.py's closed
  form, common subexpressions are eliminated, and ``jnp`` evaluates it (XLA fuses it)."""
  import sympy
  from theory.erf_ntk_closed_form import apply_operator, erf_kernels, input_symbols
  x, y = input_symbols(2)
  _, ntk = erf_kernels(2, 1, sympy.Rational(3, 2), sympy.Rational(1, 10))
  lap = [(sympy.Integer(1), (2, 0)), (sympy.Integer(1), (0, 2))]
  expr = apply_operator(apply_operator(ntk, lap, y), lap, x)
  fn = sympy.lambdify(x + y, expr, modules="jax", cse=True)
  return jax.jit(lambda a, b: jnp.broadcast_to(fn(a[:, :1], a[:, 1:], b[None, :, 0], b[None, :, 1]),
                                               (len(a), len(b))))


def fused_table(sizes, repeats, json_path, report):
  net = ntkpde.mlp(1, activation="erf")
  lap = ntkpde.operators.parse("u_xx + u_yy", ("x", "y"))
  methods = {"plain": (jax.jit(lambda a, b: net.kernel_fn(a, b, "ntk")), repeats),
             "fused": (fused_laplap(), repeats),
             "taylor": (ntkpde.operator_kernel(net.kernel_fn, lap, method="taylor"), repeats)}
  for n in sizes:
    t = timed_interleaved(methods, (points(n), points(n)), repeats)
    row = {"n": n, **{f"{k}_s": v[1] for k, v in t.items()},
           "taylor_over_fused": t["taylor"][1] / t["fused"][1],
           "taylor_over_plain": t["taylor"][1] / t["plain"][1],
           "fused_over_plain": t["fused"][1] / t["plain"][1],
           "taylor_vs_fused_rel_diff": rel_diff(t["taylor"][3], t["fused"][3])}
    print(json.dumps(row), flush=True)
    report["fused"].append(row)
    if json_path:
      reporting.write_json_atomic(json_path, report)


def large_run(n, tile):
  """Child process: one operator_kernel evaluation at ``n``; prints JSON."""
  kernel_fn, lap = setup()
  x = points(n)
  small = points(8)
  op = ntkpde.operator_kernel(kernel_fn, lap, tile=tile)
  plain = jax.jit(lambda a, b: kernel_fn(a, b, "ntk"))
  # Compile on small / tile-sized inputs first, so the peak below is the big call's.
  op(points(min(n, tile)))
  jax.block_until_ready(plain(small, small))
  rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  with open("/proc/self/statm") as f:
    rss_now = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
  t0 = time.perf_counter()
  values = op(x)
  seconds = time.perf_counter() - t0
  rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  print(json.dumps({"n": n, "tile": tile, "operator_kernel_s": seconds,
                    "peak_rss_bytes": rss_peak, "peak_rss_before_bytes": rss_before,
                    "rss_before_bytes": rss_now,
                    "output_bytes": int(np.asarray(values).nbytes),
                    "all_finite": bool(np.all(np.isfinite(np.asarray(values))))}))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES)
  parser.add_argument("--gpu-sizes", action="store_true",
                      help=f"sizes {GPU_SIZES}, Taylor engine unless --method says otherwise")
  parser.add_argument("--method", choices=["auto", "taylor", "nested-jvp"], default=None,
                      help="operator_kernel's route (default: taylor with --gpu-sizes, else auto)")
  parser.add_argument("--quick", action="store_true",
                      help=f"smoke run: sizes {QUICK_SIZES}, 2 repeats, no naive baseline")
  parser.add_argument("--naive-max", type=int, default=1024)
  parser.add_argument("--naive-chunk", type=int, default=65536)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--naive-repeats", type=int, default=3)
  parser.add_argument("--tile", type=int, default=ntkpde.operator_kernels.DEFAULT_TILE)
  parser.add_argument("--large", type=int, default=None, metavar="N",
                      help="also one evaluation at N (e.g. 16384), with peak RSS, in a child "
                           "process")
  parser.add_argument("--json", default=None, metavar="PATH")
  parser.add_argument("--child-large", type=int, default=None, help=argparse.SUPPRESS)
  parser.add_argument("--orders", action="store_true", help="the Taylor engine's order table")
  parser.add_argument("--activations", nargs="+", default=["erf"])
  parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3, 4])
  parser.add_argument("--pairs", nargs="+", default=list(ORDER_PAIRS), choices=list(ORDER_PAIRS))
  parser.add_argument("--n", type=int, default=256, help="points per side for --orders")
  parser.add_argument("--emitters", action="store_true",
                      help="the Taylor engine with XLA's default and older CPU fusion emitters")
  parser.add_argument("--fused", action="store_true",
                      help="Lap x Lap, one-layer erf: Taylor engine vs fused SymPy closed form")
  args = parser.parse_args(argv)
  if args.orders or args.fused or args.emitters:
    report = {"machine": machine(), "orders": [], "fused": [], "emitters": []}
    print(json.dumps(report["machine"]), flush=True)
    if args.fused:
      fused_table(GPU_SIZES if args.gpu_sizes else args.sizes, args.repeats, args.json, report)
    if args.orders:
      orders_table(args.activations, args.depths, args.pairs, args.n, args.repeats, args.json,
                   report)
    if args.emitters:
      emitters_table(args.activations, args.depths, args.pairs, args.n, args.repeats, args.json,
                     report)
    return 0
  if args.child_large:
    large_run(args.child_large, args.tile)
    return 0
  sizes = GPU_SIZES if args.gpu_sizes else tuple(args.sizes)
  if args.quick:
    sizes, args.repeats, args.naive_max = QUICK_SIZES, 2, 0
  method = args.method or ("taylor" if args.gpu_sizes else "auto")
  kernel_fn, lap = setup()
  op = ntkpde.operator_kernel(kernel_fn, lap, tile=args.tile,
                              method=None if method == "auto" else method)
  report = {"machine": machine(), "tile": args.tile, "naive_chunk": args.naive_chunk,
            "method": op.method, "quick": args.quick, "rows": []}
  print(json.dumps(report["machine"]), flush=True)
  plain = jax.jit(lambda a, b: kernel_fn(a, b, "ntk"))
  naive = naive_laplap(kernel_fn, args.naive_chunk)
  for n in sizes:
    x = points(n)
    row = {"n": n}
    methods = {"plain": (plain, args.repeats), "op": (op, args.repeats)}
    if n <= args.naive_max:
      methods["naive"] = (naive, args.naive_repeats)
    print(f"[N={n}] timing {', '.join(methods)} (interleaved) ...", flush=True)
    timings = timed_interleaved(methods, (x, x), args.repeats)
    for name, (first, wall, cpu, _) in timings.items():
      row[f"{name}_first_s"], row[f"{name}_s"], row[f"{name}_cpu_s"] = first, wall, cpu
    row["op_over_plain"] = row["op_s"] / row["plain_s"]
    row["op_over_plain_cpu"] = row["op_cpu_s"] / row["plain_cpu_s"]
    if "naive" in timings:
      row["naive_over_op"] = row["naive_s"] / row["op_s"]
      row["naive_over_op_cpu"] = row["naive_cpu_s"] / row["op_cpu_s"]
      row["op_vs_naive_rel_diff"] = rel_diff(timings["op"][3], timings["naive"][3])
    print(f"[N={n}] {json.dumps(row)}", flush=True)
    report["rows"].append(row)
    if args.json:
      reporting.write_json_atomic(args.json, report)
  if args.large:
    print(f"[N={args.large}] operator_kernel in a child process ...", flush=True)
    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--child-large",
                            str(args.large), "--tile", str(args.tile)],
                           capture_output=True, text=True, check=True)
    report["large"] = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"[N={args.large}] {json.dumps(report['large'])}", flush=True)
  report["machine"]["load_average_at_end"] = os.getloadavg()
  if args.json:
    reporting.write_json_atomic(args.json, report)
  print(markdown(report))
  return 0


def markdown(report):
  lines = [f"operator_kernel route: {report['method']}", "",
           "| N | operator_kernel s (CPU s) | plain s (CPU s) | naive per-pair s (CPU s) "
           "| op / plain: wall (CPU) | naive / op: wall (CPU) | first call op / plain / naive s "
           "| max rel. diff op vs naive |",
           "|---|---|---|---|---|---|---|---|"]
  for r in report["rows"]:
    if "naive_s" in r:
      naive = f"{r['naive_s']:.3g} ({r['naive_cpu_s']:.3g})"
      ratio = f"{r['naive_over_op']:.0f} ({r['naive_over_op_cpu']:.0f})"
      first, diff = f"{r['naive_first_s']:.1f}", f"{r['op_vs_naive_rel_diff']:.1e}"
    else:
      naive, ratio, first, diff = "not run", "-", "-", "-"
    lines.append(f"| {r['n']} | {r['op_s']:.3g} ({r['op_cpu_s']:.3g}) | {r['plain_s']:.3g} "
                 f"({r['plain_cpu_s']:.3g}) | {naive} | {r['op_over_plain']:.2f} "
                 f"({r['op_over_plain_cpu']:.2f}) | {ratio} | {r['op_first_s']:.2f} / "
                 f"{r['plain_first_s']:.2f} / {first} | {diff} |")
  if "large" in report:
    g = report["large"]
    lines.append(f"\nN = {g['n']}: operator_kernel {g['operator_kernel_s']:.1f} s "
                 f"(tile {g['tile']}), "
                 f"peak RSS {g['peak_rss_bytes'] / 2**30:.2f} GiB (output matrix "
                 f"{g['output_bytes'] / 2**30:.2f} GiB; before the call: RSS "
                 f"{g['rss_before_bytes'] / 2**30:.2f} GiB, peak so far (compilation) "
                 f"{g['peak_rss_before_bytes'] / 2**30:.2f} GiB), all finite: {g['all_finite']}.")
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main())
