"""Speed of finite-width cross-checks on this machine.

1. Empirical operator NTK (``ntkpde.finite.empirical_operator_ntk``, ``u_xx x u_xx``, 1-D,
   depth-2 erf MLP) against the analytic operator kernel (``ntkpde.operator_kernel``, the
   baseline in the same process): seconds per kernel entry and ratio, per width.
2. Gradient-descent steps per second of ``ntkpde.training.train`` (200 steps, the 1-D
   Poisson channels of OPK-2; its compiled loop is cached, so repeats do not compile).

Each timing is the best of 3 runs after a compiling run. Prints a markdown section; with
``--append`` it is appended to docs/benchmarks.md.
"""
import argparse
import time

import jax
import numpy as np

import ntkpde
from ntkpde import finite, operators, reporting, training


def best_of(fn, repeats=3):
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--append", action="store_true", help="append the section to docs/benchmarks.md")
  parser.add_argument("--points", type=int, default=64)
  parser.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
  args = parser.parse_args(argv)
  uxx = operators.parse("u_xx", "x")
  X = np.linspace(-1, 1, args.points)[:, None]
  widths = args.widths
  base_net = ntkpde.mlp(2, 64, "erf")
  analytic = ntkpde.operator_kernel(base_net.kernel_fn, uxx)
  t_analytic = best_of(lambda: np.asarray(analytic(X)))
  entries = args.points ** 2
  lines = [f"## Finite-width cross-checks ({time.strftime('%Y-%m-%d')}, {reporting.device_description()})",
           "", f"`benchmarks/finite_width_speed.py`: `u_xx x u_xx` Gram on {args.points} points (1-D), depth-2 "
           f"erf MLP, best of 3 after compiling. Baseline: analytic `operator_kernel` "
           f"{t_analytic * 1e3:.1f} ms ({t_analytic / entries * 1e9:.0f} ns per entry).", "",
           "| width | params | empirical NTK (ms) | ns per entry | ratio to analytic | GD steps/s (8 residuals) |",
           "|---|---|---|---|---|---|"]
  chans = [("r", uxx, np.linspace(-0.9, 0.9, 6)[:, None]),
           ("b", operators.identity("x"), np.array([[-1.0], [1.0]]))]
  targets = [np.zeros(6), np.zeros(2)]
  for width in widths:
    net = ntkpde.mlp(2, width, "erf")
    _, params = net.init_fn(jax.random.PRNGKey(0), (-1, 1))
    n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
    empirical = finite.empirical_operator_ntk(net.apply_fn, params, uxx, batch_size=32)
    t_emp = best_of(lambda: np.asarray(empirical(X)))
    steps = 200
    t_train = best_of(lambda: training.train(net.apply_fn, params, chans, targets,
                                             learning_rate=1e-3, steps=steps,
                                             checkpoints=[steps]))
    lines.append(f"| {width} | {n_params} | {t_emp * 1e3:.1f} | {t_emp / entries * 1e9:.0f} | "
                 f"{t_emp / t_analytic:.1f} | {steps / t_train:.0f} |")
    print(lines[-1], flush=True)
  section = "\n".join(lines) + "\n\n"
  print(section)
  if args.append:
    with open("docs/benchmarks.md", "a") as f:
      f.write(section)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
