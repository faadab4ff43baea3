"""Top-200 eigenvalues of a large NTK Gram matrix without forming it.

Kernel: NTK of a depth-2 erf MLP (ntkpde.mlp defaults), points uniform in
[-1, 1]^2 (seed 0). Baseline in the same process: at N = --baseline-n the dense
route (form G with ntkpde.operator_kernel, numpy eigvalsh) against
ntkpde.large_eigen.top_eigenvalues (block subspace iteration over kernel tiles,
no cache), with the agreement of the top eigenvalues. Then the tiled method
alone at each N of --sizes (matrix-free: 65536^2 float64 would be 32 GiB).

Prints a Markdown section (time, peak RSS from resource.getrusage, machine,
versions, date); append it to docs/benchmarks.md with
``python benchmarks/spectrum_large_n.py | tee /tmp/out.md`` and
``cat /tmp/out.md >> docs/benchmarks.md``.
"""
import argparse
import platform
import resource
import sys
import time

import numpy as np

import ntkpde
from ntkpde import large_eigen, reporting, spectrum
from ntkpde.operators import identity


def peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--baseline-n", type=int, default=4096)
  parser.add_argument("--sizes", type=int, nargs="*", default=[16384, 65536])
  parser.add_argument("--k", type=int, default=200)
  parser.add_argument("--tile", type=int, default=1024)
  args = parser.parse_args(argv)

  def log(msg):
    print(f"# {msg}", file=sys.stderr, flush=True)

  net = ntkpde.mlp(2, activation="erf")
  kernel = ntkpde.operator_kernel(net.kernel_fn, identity(("x", "y")), tile=args.tile)
  rng = np.random.default_rng(0)
  lines = [f"## Spectrum: top-{args.k} eigenvalues at large N (benchmarks/spectrum_large_n.py)", "",
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {reporting.device_description()}; "
           f"numpy {np.__version__}; Python {platform.python_version()}; machine shared with "
           f"other jobs (timings noisy). Depth-2 erf NTK, points uniform in [-1, 1]^2, tile "
           f"{args.tile}, block {args.k + max(10, args.k // 4)} vectors, tol 1e-10.", "",
           "| N | method | seconds | passes | kernel tiles | peak RSS so far (MiB) | "
           "max abs err / lambda_1 vs dense | max residual / lambda_1 |",
           "|---|---|---|---|---|---|---|---|"]

  n = args.baseline_n
  x = rng.uniform(-1, 1, (n, 2))
  kernel(x[:args.tile], x[:args.tile])  # compile once, outside the timings
  log(f"dense baseline N={n}")
  t = time.perf_counter()
  dense = spectrum.eigenvalues(kernel(x))[:args.k]
  t_dense = time.perf_counter() - t
  lines.append(f"| {n} | dense: form G + eigvalsh | {t_dense:.1f} | - | - | {peak_rss_mib():.0f} | "
               f"0 | - |")
  log(f"tiled N={n}")
  res = large_eigen.top_eigenvalues(kernel, x, args.k, tile=args.tile, cache_bytes=0, log=log)
  err = np.max(np.abs(res.values - dense)) / dense[0]
  lines.append(f"| {n} | tiled subspace iteration | {res.seconds:.1f} | {res.passes} | "
               f"{res.tiles_evaluated} | {peak_rss_mib():.0f} | {err:.1e} | "
               f"{res.residuals.max() / res.values[0]:.1e} |")
  ratio = t_dense / res.seconds
  for n in args.sizes:
    x = rng.uniform(-1, 1, (n, 2))
    log(f"tiled N={n}")
    res = large_eigen.top_eigenvalues(kernel, x, args.k, tile=args.tile, cache_bytes=0, log=log)
    lines.append(f"| {n} | tiled subspace iteration | {res.seconds:.1f} | {res.passes} | "
                 f"{res.tiles_evaluated} | {peak_rss_mib():.0f} | - | "
                 f"{res.residuals.max() / res.values[0]:.1e} |")
    print("\n".join(lines[-1:]), file=sys.stderr, flush=True)
  lines += ["", f"Ratio dense / tiled at N = {args.baseline_n}: {ratio:.2f}x "
            f"(dense time includes forming G). Dense memory would be N^2 * 8 bytes: "
            + ", ".join(f"{m}: {m * m * 8 / 2**30:.1f} GiB" for m in [args.baseline_n] + args.sizes)
            + ".", ""]
  print("\n".join(lines))
  return 0


if __name__ == "__main__":
  sys.exit(main())
