"""Peak memory of ``ntkpde.gram`` and wall time of the tiled kernels over 1 vs several devices.

Memory: each N in its own process (``ru_maxrss`` is a process-lifetime peak). The process
imports ntkpde, compiles the tile shape on a small Gram, reads its resident memory
(``VmRSS``), builds the ``N x N`` NTK Gram of a depth-2 erf MLP (identity operator, points
uniform in [-1, 1]^2), and reports the growth of its peak (``VmHWM``) over that, in units of
the finished matrix ``8 N^2`` bytes: what ``operator_kernels.GRAM_PEAK_FACTOR`` must cover.

Devices: the Gram of ``T x T`` (``--operator``, default the Laplacian) and ``large_eigen.top_eigenvalues`` (k = 10, no
tile cache) in processes started with ``XLA_FLAGS=--xla_force_host_platform_device_count=D``,
D = 1 and 4 alternating (medians over ``--repeats`` processes), with the largest
difference of the results from the 1-device ones (0 means bitwise identical). Host
"devices" share the machine's cores, so this shows that the work is spread and the values
do not change, not a speed-up; on several GPUs each device has its own compute.

``--smoke`` runs tiny sizes (what tests/test_gram_memory.py runs). Prints a Markdown section
for docs/benchmarks.md; run each process on an otherwise quiet machine (load average is
printed).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

CHILD = r"""
import json, sys, time
import numpy as np
import jax, ntkpde
from ntkpde import large_eigen
from ntkpde.operators import identity, parse

def status(field):
  with open("/proc/self/status") as f:
    return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field + ":"))

mode, n, tile, out, text = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
kernel_fn = ntkpde.mlp(2, activation="erf").kernel_fn
x = np.random.default_rng(0).uniform(-1, 1, (n, 2))
op = identity(("x", "y")) if mode == "memory" else parse(text, ("x", "y"))
ntkpde.gram(kernel_fn, [("u", op, x[:tile + 1])], tile=tile)  # compile outside the timing
before = status("VmRSS")
start = time.perf_counter()
matrix = ntkpde.gram(kernel_fn, [("u", op, x)], tile=tile).matrix
seconds = time.perf_counter() - start
record = {"n": n, "devices": len(jax.local_devices()), "gram_s": seconds,
          "growth": status("VmHWM") - before, "rss_before": before, "peak": status("VmHWM")}
if mode == "devices":
  lap = ntkpde.operator_kernel(kernel_fn, op, tile=tile)
  start = time.perf_counter()
  top = large_eigen.top_eigenvalues(lap, x, 10, tile=tile, cache_bytes=0, max_passes=3)
  record["eigen_s"] = time.perf_counter() - start
  np.savez(out, gram=matrix, eigen=top.values)
print(json.dumps(record))
"""


def run_child(mode: str, n: int, tile: int, devices: int, out: str, operator: str = "u") -> dict:
  flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                   if not f.startswith("--xla_force_host_platform_device_count"))
  env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"),
             XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count={devices}".strip())
  import ntkpde
  here = os.path.dirname(os.path.dirname(os.path.abspath(ntkpde.__file__)))
  run = subprocess.run([sys.executable, "-c", CHILD, mode, str(n), str(tile), out, operator],
                       env=env,
                       cwd=here, capture_output=True, text=True)  # the parent's ntkpde
  if run.returncode != 0:
    raise RuntimeError(f"{mode} N={n} devices={devices} failed:\n{run.stderr[-2000:]}")
  return json.loads(run.stdout.strip().splitlines()[-1])


def load_average() -> str:
  return " ".join(f"{v:.2f}" for v in os.getloadavg())


def memory_rows(sizes, tile):
  rows = ["| N | matrix (MiB) | RSS before (MiB) | peak growth (MiB) | growth / matrix "
          "| peak / matrix | gram (s) | load before |", "|---|---|---|---|---|---|---|---|"]
  factors = []
  for n in sizes:
    load = load_average()
    r = run_child("memory", n, tile, 1, os.devnull)
    matrix = 8.0 * n * n
    factors.append(r["growth"] / matrix)
    rows.append(f"| {n} | {matrix / 2**20:.0f} | {r['rss_before'] / 2**20:.0f} | "
                f"{r['growth'] / 2**20:.0f} | {r['growth'] / matrix:.3f} | "
                f"{r['peak'] / matrix:.2f} | {r['gram_s']:.1f} | {load} |")
    print(rows[-1], file=sys.stderr, flush=True)
  return rows, factors


def device_rows(n, tile, counts, repeats, operator):
  runs = {d: [] for d in counts}
  with tempfile.TemporaryDirectory() as folder:
    loads = [load_average()]
    for rep in range(repeats):
      for d in counts:
        path = os.path.join(folder, f"{d}_{rep}.npz")
        runs[d].append((run_child("devices", n, tile, d, path, operator), np.load(path)))
    loads.append(load_average())
  reference = runs[counts[0]][0][1]
  rows = [f"N = {n}, tile {tile}, `T x T` NTK of a depth-2 erf MLP, T = `{operator}`; medians over "
          f"{repeats} processes per device count, alternating; load average before / after: "
          f"{loads[0]} / {loads[1]}.", "",
          "| devices | gram (s) | top-10 eigenvalues, 3 passes (s) | max abs diff of the Gram vs "
          "1 device | max abs diff of the eigenvalues |", "|---|---|---|---|---|"]
  diffs = []
  for d in counts:
    gram_s = np.median([r["gram_s"] for r, _ in runs[d]])
    eigen_s = np.median([r["eigen_s"] for r, _ in runs[d]])
    diff = max(float(np.max(np.abs(v["gram"] - reference["gram"]))) for _, v in runs[d])
    diff_eigen = max(float(np.max(np.abs(v["eigen"] - reference["eigen"]))) for _, v in runs[d])
    diffs.append(max(diff, diff_eigen))
    rows.append(f"| {d} | {gram_s:.2f} | {eigen_s:.2f} | {diff:.1e} | {diff_eigen:.1e} |")
  return rows, diffs


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[8192, 16384])
  parser.add_argument("--tile", type=int, default=1024)
  parser.add_argument("--device-n", type=int, default=4096)
  parser.add_argument("--devices", type=int, nargs="+", default=[1, 4])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--operator", default="u_xx + u_yy", help="T of the device part")
  parser.add_argument("--only", choices=["memory", "devices"], help="run one part")
  parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs")
  args = parser.parse_args(argv)
  if args.smoke:
    args.sizes, args.tile, args.device_n, args.devices, args.repeats = [200], 64, 150, [1, 2], 1
    args.operator = "u_x"
  if min(args.sizes + [args.tile, args.device_n, args.repeats]) < 1 or args.devices[0] != 1:
    raise ValueError("sizes, tile, device-n and repeats must be >= 1 and --devices must start "
                     "with 1 (the reference).")
  import ntkpde
  from ntkpde import reporting
  print(f"## Gram memory and devices (benchmarks/gram_memory.py)\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {reporting.device_description()}; "
        f"{os.cpu_count()} cores shared with other jobs; numpy "
        f"{np.__version__}, Python {platform.python_version()}; ntkpde from "
        f"{os.path.dirname(ntkpde.__file__)}.\n")
  factors, diffs = [], [0.0]
  if args.only != "devices":
    rows, factors = memory_rows(args.sizes, args.tile)
    print("\n".join(rows) + "\n")
  if args.only != "memory":
    rows, diffs = device_rows(args.device_n, args.tile, args.devices, args.repeats, args.operator)
    print("\n".join(rows))
  return 0 if all(np.isfinite(factors)) and max(diffs) == 0 else 1


if __name__ == "__main__":
  sys.exit(main())
