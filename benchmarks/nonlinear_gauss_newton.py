"""Gauss-Newton kernel collocation (ntkpde.nonlinear.solve) on the nonlinear problems.

Sections (``--section``):

* ``elliptic``: ``-Lap u + u^3 = f`` (problem ``nonlinear_elliptic2d``) at N interior Sobol
  points and ``4 sqrt(N)`` boundary points, depth-2 erf NTK vs the Gaussian kernel
  (length scale 0.2, Chen et al. 2021): iterations, relative L2 error on 2,500 uniform
  test points, condition estimate of the last linear system, seconds (Gram included).
* ``kernels``: the same problem at one N for NTK/NNGP kernels of several depths and
  activations and Gaussian kernels: error and condition estimate (the figure of
  docs/nonlinear.md).
* ``others``: Burgers (both viscosities), steady Allen-Cahn, regularised Eikonal.
* ``rate``: the elliptic problem at ``--n`` interior points: the observed ratios of successive
  updates of plain Gauss-Newton (``second_order=False``) against the spectral radius of the
  Jacobian of the Gauss-Newton map ``z -> G(z)`` (eq. (1) of ntkpde.nonlinear) at the
  converged ``z``, by central differences (the local linear rate of the iteration), and the
  updates of the default solve (Newton steps (2) once Gauss-Newton is slow).
* ``output-map``: steady Allen-Cahn with the boundary values as measurements and with the
  output map ``u = u*(1) x + (1 - x^2) N`` (boundary channel dropped), same interior points.

Each row is printed when done and all rows go to ``--out`` (JSON, written atomically after
every row). Usage: ``python benchmarks/nonlinear_gauss_newton.py --section elliptic
--sizes 100 400 900 1600 --out nl.json``.
"""
import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import ntkpde
from ntkpde import input_maps, nonlinear, operator_kernels, output_maps, problems, reporting


def _test_points(problem, n, seed=12345):
  lo, hi = np.array(problem.domain).T
  return lo + (hi - lo) * np.random.default_rng(seed).uniform(size=(n, len(lo)))


def _kernel(spec, problem):
  """``gauss:L`` / ``gauss:Lx,Lt`` or ``ACT:DEPTH:GET[:S1,S2]`` (e.g. ``erf:2:ntk``;
  ``erf:2:ntk:3,1``: the domain box mapped onto ``[-3, 3] x [-1, 1]`` instead of
  ``[-1, 1]^2``, i.e. the inputs scaled per coordinate)."""
  kind, _, rest = spec.partition(":")
  if kind == "gauss":
    return nonlinear.gaussian_kernel([float(v) for v in rest.split(",")]), "ntk"
  parts = rest.split(":")
  depth, get, scale = parts + ["ntk", "1"][len(parts) - 1:]
  lo, hi = np.array(problem.domain, dtype=float).T
  half = (hi - lo) / 2 / np.array([float(v) for v in scale.split(",")])
  centre = (lo + hi) / 2
  net = ntkpde.mlp(int(depth), activation=kind,
                   input_map=input_maps.box_normalization(centre - half, centre + half))
  return net.kernel_fn, get


def run_one(name, spec, sizes, nugget, n_test=2500, seed=0, output=None):
  """One solve; with ``output`` (an output map ``(A, B)`` as text) only the first channel
  (the PDE) is kept."""
  problem = problems.get(name)
  kernel_fn, get = _kernel(spec, problem)
  sample = problem.sample(sizes, sampler="sobol", seed=seed)
  channels, targets = sample.channels, sample.targets
  row = {"problem": name, "kernel": spec, "sizes": sample.sizes, "nugget": nugget}
  if output is not None:
    channels, targets = channels[:1], targets[:1]
    row.update(sizes={channels[0].name: len(channels[0].points)}, output_map=output)
    output = output_maps.output_map(problem.coords, *output)
  x_test = _test_points(problem, n_test)
  exact = problem.exact_fn()(x_test)
  start = time.perf_counter()
  try:
    sol = nonlinear.solve(kernel_fn, channels, targets, get=get, nugget=nugget,
                          x_test=x_test, exact=exact, output=output)
    row.update(iterations=len(sol.history), error=sol.history[-1].error,
               residual=sol.history[-1].residual, condition=sol.condition_number,
               errors=[s.error for s in sol.history])
  except (nonlinear.GaussNewtonDivergence, ValueError) as err:
    row.update(failed=str(err).split(".")[0])
  row["seconds"] = time.perf_counter() - start
  return row


def _update_ratios(solution):
  updates = np.array([s.update for s in solution.history])
  return (updates[1:] / updates[:-1]).tolist()


def gauss_newton_rate(spec, n, nugget=1e-10):
  """Observed update ratios of plain Gauss-Newton, the spectral radius of
  ``dG/dz`` at its solution (one central difference per measurement, step ``1e-6`` of the
  mean measurement), and the updates of the default solve."""
  problem = problems.get("nonlinear_elliptic2d")
  kernel_fn, get = _kernel(spec, problem)
  sample = problem.sample({"interior": n, "boundary": 4 * int(round(np.sqrt(n)))},
                          sampler="sobol")
  sol = nonlinear.solve(kernel_fn, sample.channels, sample.targets, get=get, nugget=nugget,
                        second_order=False, max_iterations=40)
  newton = nonlinear.solve(kernel_fn, sample.channels, sample.targets, get=get, nugget=nugget)
  equations = nonlinear._check_equations(sample.channels, sample.targets)
  measures, index = nonlinear._measurements(equations)
  theta = np.asarray(operator_kernels.gram(kernel_fn, measures, get).matrix)
  f = np.concatenate(sample.targets)

  def gauss_newton_map(z):
    values, grads = nonlinear._linearise(equations, index, z)
    M = nonlinear._sparse_rows(grads, index, len(z))
    system = np.asarray((M @ theta) @ M.T)
    system = nonlinear._symmetric(system) + np.diag(nonlinear._nugget(
        np.diag(system), [len(eq[2]) for eq in equations], nugget))
    gamma = nonlinear._solve_psd(system, f - values + M @ z)[0]
    return theta @ (M.T @ gamma), gamma

  z = sol.measurements
  h = 1e-6 * np.linalg.norm(z) / np.sqrt(len(z))
  jac = np.stack([(gauss_newton_map(z + h * e)[0] - gauss_newton_map(z - h * e)[0]) / (2 * h)
                  for e in np.eye(len(z))], axis=1)
  return {"problem": "nonlinear_elliptic2d", "kernel": spec, "interior": n,
          "iterations_gauss_newton": len(sol.history), "update_ratios_gauss_newton":
          _update_ratios(sol), "iterations": len(newton.history),
          "updates": [s.update for s in newton.history],
          "spectral_radius": float(np.max(np.abs(np.linalg.eigvals(jac)))),
          "max_abs_u": float(np.abs(z[:n]).max()),      # u at the interior points
          "max_abs_multiplier": float(np.abs(gauss_newton_map(z)[1]).max())}


def plot(results_json, png):
  """Bar chart of the ``kernels`` section: relative L2 error and condition estimate."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  rows = [r for r in json.loads(Path(results_json).read_text())["rows"] if "error" in r]
  labels = [r["kernel"].replace(":", " ") for r in rows]
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for ax, key, title in zip(axes, ["error", "condition"],
                            ["relative L2 error", "condition estimate (last system)"]):
    colours = ["tab:orange" if r["kernel"].startswith("gauss") else "tab:blue" for r in rows]
    ax.bar(range(len(rows)), [r[key] for r in rows], color=colours)
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_title(title)
  n = rows[0]["sizes"]["interior"]
  fig.suptitle(f"-Lap u + u^3 = f, Gauss-Newton, {n} interior points: NTK/NNGP (blue) vs "
               f"Gaussian (orange)", fontsize=9)
  fig.tight_layout()
  reporting.save_figure(fig, png)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--section", choices=("elliptic", "kernels", "others", "rate", "output-map",
                                             "plot"),
                      required=True)
  parser.add_argument("--figure", default=None, help="plot: PNG written from --out's JSON")
  parser.add_argument("--sizes", type=int, nargs="*", default=[100, 400, 900, 1600])
  parser.add_argument("--kernels", nargs="*", default=None)
  parser.add_argument("--n", type=int, default=400, help="interior points (kernels, rate)")
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  header = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{reporting.device_description()}; Python {platform.python_version()}; "
                       f"machine shared with other jobs"}
  rows = []
  out = Path(args.out)
  if args.section == "plot":
    plot(out, args.figure)
    return

  def record(row):
    rows.append(row)
    print(json.dumps({k: v for k, v in row.items() if k != "errors"}), flush=True)
    reporting.write_json_atomic(out, {**header, "rows": rows})

  if args.section == "elliptic":
    for n in args.sizes:
      nb = 4 * int(round(np.sqrt(n)))
      for spec in args.kernels or ["gauss:0.2", "erf:2:ntk"]:
        record(run_one("nonlinear_elliptic2d", spec, {"interior": n, "boundary": nb}, 1e-10))
  elif args.section == "kernels":
    nb = 4 * int(round(np.sqrt(args.n)))
    for spec in args.kernels or ["gauss:0.2", "gauss:0.1", "erf:1:ntk", "erf:1:nngp",
                                 "erf:2:ntk", "erf:2:nngp", "erf:3:ntk", "sin:2:ntk"]:
      record(run_one("nonlinear_elliptic2d", spec, {"interior": args.n, "boundary": nb}, 1e-10))
  elif args.section == "rate":
    for spec in args.kernels or ["gauss:0.2", "erf:2:ntk"]:
      record(gauss_newton_rate(spec, args.n))
  elif args.section == "output-map":
    problem = problems.get("allen_cahn1d")
    edge = float(np.tanh(1 / (np.sqrt(2) * problem.params["eps"])))
    for spec in args.kernels or ["gauss:0.1", "erf:2:ntk"]:
      for output in (None, (f"{edge!r}*x", "1 - x**2")):
        record(run_one("allen_cahn1d", spec, {"interior": 64}, 1e-10, output=output))
  else:
    burgers = {"interior": 2048, "boundary": 64, "initial": 64}
    for name, spec, sizes in [
        ("burgers1d_mild", "gauss:0.1,0.2", burgers),
        ("burgers1d_mild", "erf:2:ntk", {"interior": 1024, "boundary": 64, "initial": 64}),
        ("burgers1d_mild", "erf:2:ntk:3,1", {"interior": 1024, "boundary": 64, "initial": 64}),
        ("burgers1d", "gauss:0.05,0.1", burgers),
        ("allen_cahn1d", "gauss:0.1", {"interior": 64}),
        ("allen_cahn1d", "erf:2:ntk", {"interior": 64}),
        ("eikonal2d", "gauss:0.2", {"interior": 900, "boundary": 120}),
        ("eikonal2d", "erf:2:ntk", {"interior": 900, "boundary": 120})]:
      record(run_one(name, spec, sizes, 1e-10))


if __name__ == "__main__":
  main()
