"""Top-k eigenvalues: LAPACK's subset driver on the formed Gram against large_eigen.

For each N: the NTK Gram of a depth-2 erf MLP (identity operator, points uniform in
[-1, 1]^2) is formed with ``ntkpde.gram`` (timed), then diagonalised fully
(``spectrum.eigenvalues``, numpy ``eigvalsh``) and for each k through
``spectrum.eigenvalues(G, k=k)`` (scipy ``eigh(subset_by_index, driver="evr")``); and
``large_eigen.top_eigenvalues`` (matrix-free subspace iteration, default tile cache, its own
kernel evaluations included) for each k. Errors are against the full spectrum, relative to
lambda_1 and to lambda_k. One process, one run each (minutes per N): timings are noisy on a
shared machine; the load average is printed.
"""
import argparse
import os
import sys
import time

import numpy as np


def timed(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
  parser.add_argument("--ks", type=int, nargs="+", default=[10, 100])
  args = parser.parse_args(argv)
  if min(args.ks) < 1 or min(args.sizes) <= max(args.ks):
    raise ValueError("need 1 <= k < N for every k and N.")
  import ntkpde
  from ntkpde import large_eigen, reporting, spectrum
  from ntkpde.operators import identity
  kernel_fn = ntkpde.mlp(2, activation="erf").kernel_fn
  op = identity(("x", "y"))
  kernel = ntkpde.operator_kernel(kernel_fn, op)
  print(f"## Top-k eigenvalues: LAPACK subset driver vs large_eigen (benchmarks/eigen_topk.py)\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {reporting.device_description()}; "
        f"numpy {np.__version__}; machine shared with other jobs.\n\n"
        f"| N | route | k | seconds | max err / lambda_1 | err at k / lambda_k | load |\n"
        f"|---|---|---|---|---|---|---|", flush=True)

  def row(n, route, k, seconds, values, full):
    err = np.abs(values[:k] - full[:k]) if values is not None else None
    text = "-" if err is None else f"{err.max() / full[0]:.1e} | {err[k - 1] / full[k - 1]:.1e}"
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"| {n} | {route} | {k if k else 'all'} | {seconds:.1f} | {text if k else '- | -'} "
          f"| {load} |", flush=True)

  for n in args.sizes:
    x = np.random.default_rng(0).uniform(-1, 1, (n, 2))
    kernel(x[:1025])  # compile the tile shape outside the timings
    G, t = timed(lambda: ntkpde.gram(kernel_fn, [("u", op, x)]).matrix)
    row(n, "form the Gram (`gram`)", 0, t, None, None)
    full, t = timed(lambda: spectrum.eigenvalues(G))
    row(n, "full `eigvalsh`", 0, t, None, None)
    for k in args.ks:
      top, t = timed(lambda: spectrum.eigenvalues(G, k=k))
      row(n, "`eigenvalues(G, k=)` (dsyevr subset)", k, t, top, full)
    for k in args.ks:
      res, t = timed(lambda: large_eigen.top_eigenvalues(kernel, x, k))
      row(n, f"`large_eigen` ({res.passes} passes, kernel included)", k, t, res.values, full)
    del G
  return 0


if __name__ == "__main__":
  sys.exit(main())
