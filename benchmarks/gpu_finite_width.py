"""Finite-width cross-checks at GPU sizes: width sweep of the empirical operator NTK (OPK-2,
up to width 16384) and training against infinite-width predictions (OPK-3).

The same package code as on the CPU (``ntkpde.finite.width_sweep``,
``verification.opk3.training_sweep``: structured-derivative operator NTKs in 2 GiB tiles);
the target is the full run on one H100 in minutes.

    python benchmarks/gpu_finite_width.py --out docs/gpu_results            # GPU sizes
    python benchmarks/gpu_finite_width.py --quick --out /tmp/gpu_quick      # CPU smoke run

Writes ``finite_width.json`` (device, versions, date, all numbers) and PNG plots into
``--out``; the JSON is rewritten atomically after every stage, so an interrupted run
keeps what it has. ``ntkpde verify --full`` can show stored GPU results from
``docs/gpu_results/finite_width.json`` when no GPU is present (see docs/finite_width.md).
"""
import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import ntkpde  # noqa: E402
from ntkpde import finite, reporting  # noqa: E402
from verification.opk2 import B_STD, W_STD, poisson_channels  # noqa: E402
from verification.opk3 import training_sweep  # noqa: E402


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke test)")
  parser.add_argument("--out", default="docs/gpu_results", help="output folder")
  args = parser.parse_args(argv)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  if args.quick:
    widths, seeds, train_widths, train_seeds, steps = [16, 32, 64], [0, 1], [16, 64], [0, 1], 10
  else:
    widths = [128, 256, 512, 1024, 2048, 4096, 8192, 16384]
    seeds, train_widths, train_seeds, steps = list(range(16)), [128, 512, 2048, 8192, 16384], [0, 1, 2], 1000
  record = {"device": reporting.device_description(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "quick": args.quick, "stages": {}}
  path = out / "finite_width.json"
  for depth in (1, 2):
    start = time.perf_counter()
    print(f"[width sweep] depth {depth}, widths {widths}, {len(seeds)} seeds", flush=True)
    res = finite.width_sweep(lambda w: ntkpde.mlp(depth, w, "erf", W_STD, B_STD), poisson_channels(),
                             widths, seeds, log=lambda m: print("   ", m, flush=True))
    record["stages"][f"OPK-2 depth {depth}"] = {
        "widths": widths, "errors": res["errors"], "rms": res["rms"], "slope": res["slope"],
        "bootstrap_slope_std": res["bootstrap_slope_std"], "seconds": time.perf_counter() - start}
    reporting.write_json_atomic(path, record)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.loglog(widths, res["rms"], "o-", label=f"slope {res['slope']:.3f}")
    ax.set_xlabel("width")
    ax.set_ylabel("rms relative Frobenius error")
    ax.legend()
    reporting.save_figure(fig, out / f"opk2_depth{depth}.png")
  start = time.perf_counter()
  print(f"[training] widths {train_widths}, {steps} steps", flush=True)
  sweep, _, eta = training_sweep(train_widths, train_seeds, steps, log=lambda m: print("   ", m, flush=True))
  record["stages"]["OPK-3"] = {"widths": train_widths, "eta": eta, "steps": steps,
                               **{k: v for k, v in sweep.items()},
                               "seconds": time.perf_counter() - start}
  reporting.write_json_atomic(path, record)
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for key, label in (("kernel_change", "max_t ||K_t - K_0|| / ||K_0||"),
                     ("gap_infinite", "residual gap to infinite width"),
                     ("gap_prediction", "prediction gap to infinite width")):
    ax.loglog(train_widths, (sweep[key] ** 2).mean(axis=1) ** 0.5, "o-", label=label)
  ax.set_xlabel("width")
  ax.set_title(f"training, {steps} steps, seed rms", fontsize=9)
  ax.legend(fontsize=7)
  reporting.save_figure(fig, out / "opk3_training.png")
  print(f"results: {path}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
