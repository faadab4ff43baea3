"""Speed of the closed-form dynamics: 100 time points from one factorisation.

Identity channel (plain regression of sin(3x) on N points in [-1, 1] with a depth-2 erf
NTK), mean at 100 times on 64 test points:

* ours: :func:`ntkpde.predict.gradient_descent_mse_ensemble` (one ``eigh``);
* neural-tangents: ``nt.predict.gradient_descent_mse_ensemble`` (one ``eigh`` too) --
  the baseline, run in the same process;
* ODE: the training residual ``dr/dt = -(eta/n) K r`` by ``scipy.integrate.solve_ivp``
  (BDF with the constant Jacobian; the flow is stiff, cond(K) ~ 1e16), compared with
  :func:`ntkpde.predict.residual_flow` at the same 100 times. Skipped above ``--ode-max``
  points (BDF's dense LU makes it O(N^3) per refactorisation).

Prints per-stage lines and ratios; ``--append`` adds a section to docs/benchmarks.md.
Usage: ``python benchmarks/dynamics_speed.py --sizes 1024 2048 4096 --append``.
"""
import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.integrate

import ntkpde
from ntkpde import operators, reporting
from ntkpde._compat import import_neural_tangents
from ntkpde.predict import gradient_descent_mse_ensemble, residual_flow


def timed(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def bench(n, ode_max, log):
  nt = import_neural_tangents()
  net = ntkpde.mlp(2, activation="erf", W_std=1.5, b_std=0.1)
  x = np.linspace(-1, 1, n)[:, None]
  y = np.sin(3 * x[:, 0])
  x_test = np.linspace(-0.95, 0.95, 64)[:, None]
  K = np.asarray(net.kernel_fn(x, None, "ntk"))
  lam_max = np.linalg.eigvalsh(K[:256, :256]).max() * n / 256   # rough scale only
  eta = n / lam_max
  times = np.logspace(0, 6, 100)
  row = {"n": n}
  ours = gradient_descent_mse_ensemble(net.kernel_fn, [("data", operators.identity("x"), x)], [y],
                                       learning_rate=eta)
  mean, row["ours_s"] = timed(lambda: ours(times, x_test))
  log(f"N={n}: ours {row['ours_s']:.2f} s")
  ref = nt.predict.gradient_descent_mse_ensemble(net.kernel_fn.base, x, y[:, None], learning_rate=eta)
  ref_mean, row["nt_s"] = timed(lambda: np.asarray(ref(times, x_test, "ntk"))[..., 0])
  row["nt_vs_ours_max_rel_diff"] = float(np.abs(mean - ref_mean).max() / np.abs(ref_mean).max())
  log(f"N={n}: neural-tangents {row['nt_s']:.2f} s, max rel diff {row['nt_vs_ours_max_rel_diff']:.1e}")
  r0 = -y
  flow_values, row["flow_s"] = timed(lambda: residual_flow(K, r0, learning_rate=eta / n)(times))
  log(f"N={n}: residual_flow {row['flow_s']:.2f} s")
  if n <= ode_max:
    M = eta / n * K

    def solve():
      return scipy.integrate.solve_ivp(lambda _, r: -M @ r, (0, times[-1]), r0, method="BDF",
                                       jac=-M, t_eval=times, rtol=1e-8, atol=1e-10).y.T
    ode_values, row["ode_s"] = timed(solve)
    row["ode_vs_flow_max_abs_diff"] = float(np.abs(ode_values - flow_values).max() / np.abs(r0).max())
    log(f"N={n}: solve_ivp BDF {row['ode_s']:.2f} s, max diff {row['ode_vs_flow_max_abs_diff']:.1e}")
  return row


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", nargs="+", type=int, default=[1024, 2048, 4096])
  parser.add_argument("--ode-max", type=int, default=2048)
  parser.add_argument("--append", action="store_true", help="append the results to docs/benchmarks.md")
  args = parser.parse_args(argv)
  rows = [bench(n, args.ode_max, lambda m: print(m, flush=True)) for n in args.sizes]
  lines = ["", "## Closed-form dynamics: 100 time points from one factorisation (benchmarks/dynamics_speed.py)",
           "", f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {reporting.device_description()}; "
           f"numpy {np.__version__}; scipy {scipy.__version__}; Python {platform.python_version()}; "
           "machine shared with other jobs (timings noisy). Identity channel, depth-2 erf NTK, mean "
           "at 100 log-spaced times on 64 test points; ODE = training residuals by solve_ivp (BDF, "
           "rtol 1e-8) vs `residual_flow`.", "",
           "| N | ours (s) | neural-tangents (s) | nt / ours | max rel diff vs nt | residual_flow (s) | "
           "solve_ivp (s) | ODE / flow | max diff ODE vs flow (/ max r0) |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    ode = (f"{r['ode_s']:.2f} | {r['ode_s'] / r['flow_s']:.1f}x | {r['ode_vs_flow_max_abs_diff']:.1e}"
           if "ode_s" in r else "skipped | - | -")
    lines.append(f"| {r['n']} | {r['ours_s']:.2f} | {r['nt_s']:.2f} | {r['nt_s'] / r['ours_s']:.2f}x | "
                 f"{r['nt_vs_ours_max_rel_diff']:.1e} | {r['flow_s']:.2f} | {ode} |")
  text = "\n".join(lines) + "\n"
  print(text)
  if args.append:
    with open(Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md", "a") as f:
      f.write(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
