"""First calls with programs compiled side by side, against one compile thread.

Each measurement is a fresh process (JAX's in-memory caches empty) with the persistent
compilation cache off. The process builds ``ntkpde.mlp(depth, activation)`` and a problem's
default sample (``problems.get(name).sample()``), then times the first ``ntkpde.gram`` of its
channels, or with ``--predict`` the first ``predict.gradient_descent_mse_ensemble(...)`` call with
covariance at 50 test points. The baseline is the same code with one compile thread
(``operator_kernels._cpus`` set to 1: the jobs run one after the other, lowering still
overlapping them), so the ratio isolates compiling side by side. Runs alternate baseline and
side by side; medians over ``--repeats``. Prints JSON lines and a Markdown table for
docs/benchmarks.md with the machine, versions and date.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
import ntkpde
from ntkpde import operator_kernels, predict, problems
name, activation, depth, threads, what = sys.argv[1:6]
if threads == "1":
  operator_kernels._cpus = lambda: 1
problem = problems.get(name)
sample = problem.sample()
net = ntkpde.mlp(int(depth), activation=activation)
start = time.perf_counter()
if what == "gram":
  ntkpde.gram(net.kernel_fn, sample.channels)
else:
  x_test = np.random.default_rng(3).uniform(0, 1, (50, len(problem.coords)))
  predict.gradient_descent_mse_ensemble(net.kernel_fn, sample.channels, sample.targets)(
      x_test=x_test, compute_cov=True)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

CASES = (("poisson2d", "erf", 3), ("wave1d", "erf", 2), ("wave1d", "sin", 2),
         ("heat1d", "gelu", 2), ("helmholtz2d", "gaussian", 2))


def first_call(name, activation, depth, threads, what):
  env = dict(os.environ, NTKPDE_COMPILATION_CACHE="off")
  out = subprocess.run([sys.executable, "-c", CHILD, name, activation, str(depth), threads, what],
                       env=env, check=True, capture_output=True, text=True).stdout
  return json.loads(out.strip().splitlines()[-1])["seconds"]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--predict", action="store_true", help="time a first prediction, not a Gram")
  parser.add_argument("--smoke", action="store_true", help="one case, one repeat")
  args = parser.parse_args(argv)
  what = "predict" if args.predict else "gram"
  cases = CASES[:1] if args.smoke else CASES
  repeats = 1 if args.smoke else args.repeats
  import jax
  print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax "
        f"{jax.__version__}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}")
  rows = []
  for name, activation, depth in cases:
    times = {"1": [], "all": []}
    for _ in range(repeats):
      for threads in times:
        times[threads].append(first_call(name, activation, depth, threads, what))
    row = {"what": what, "problem": name, "activation": activation, "depth": depth,
           "one_thread_s": float(np.median(times["1"])),
           "side_by_side_s": float(np.median(times["all"])),
           "one_thread_runs": times["1"], "side_by_side_runs": times["all"]}
    row["ratio"] = row["side_by_side_s"] / row["one_thread_s"]
    rows.append(row)
    print(json.dumps(row), flush=True)
  print("\n| problem | network | one compile thread | side by side | ratio |\n|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['problem']} | {r['activation']} depth {r['depth']} | {r['one_thread_s']:.2f} s | "
          f"{r['side_by_side_s']:.2f} s | {r['ratio']:.2f} |")


if __name__ == "__main__":
  main()
