"""Speed of finite-width operator NTKs on this machine.

1. Empirical Grams ``u_xx x u_xx`` (1-D) and ``Lap x Lap`` (2-D) of depth-2 erf MLPs,
   ``ntkpde.finite.empirical_operator_ntk`` (structured derivatives), per width and number of
   points, against, in the same process:

   (a) the previous implementation (reverse-mode ``jacrev`` of each tile's ``T u`` and a
       matmul per tile, with its 2 GiB tile rule), kept here only as the baseline; it is run
       where it takes at most ``--baseline-seconds`` (estimated from the previous timing
       by ``n^2 P`` scaling), as it took 110 s at width 1024 and 64 points;
   (b) the materialised ``J_T J_T^T``: ``J_T`` by vmapped per-point reverse mode, one matmul
       (run where ``J_T`` takes at most 1/4 of the 2 GiB budget);
   (c) the flop bound of (b): ``2 n^2 P`` for the matmul plus ``6 s n P`` for the Jacobian
       (forward and reverse pass of the ``s = sum_k 2^|alpha_k|`` jvp streams), divided by the
       float64 matmul rate measured in this process.

   Times are medians of 3 warm calls (the first call, with compilation, is reported apart).
2. ``ntkpde.training.train(..., record_kernel=True)``: width 1024, the OPK-2 channels
   (6 ``u_xx`` + 2 boundary points), 100 steps, 4 checkpoints; first and repeated call.

Prints a markdown section; with ``--append`` it is appended to docs/benchmarks.md. The
numbers are noisy on a shared machine: compare ratios, not absolute times.
"""
import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import ntkpde
from ntkpde import finite, operators, reporting, training
from ntkpde.operator_kernels import tiled_evaluator

OLD_SECONDS_1024_64 = 110.0   # previous implementation, width 1024, 64 u_xx points (issue 11)


def seconds(fn):
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def median_of(fn, repeats=3):
  return statistics.median(seconds(fn) for _ in range(repeats))


def n_params(params):
  return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))


# (a) The previous implementation: jacrev of T u over each tile, J_T J_S^T per tile.
def _old_flat_jacobian(tu, params, x):
  jac = jax.jacrev(tu)(params, x)
  return jnp.concatenate([leaf.reshape(x.shape[0], -1) for leaf in jax.tree_util.tree_leaves(jac)],
                         axis=1)


@functools.lru_cache(maxsize=None)
def _old_block(apply_fn, T):
  tu = finite.operator_applied(apply_fn, T)
  return jax.jit(lambda params, x1, x2: _old_flat_jacobian(tu, params, x1)
                 @ _old_flat_jacobian(tu, params, x2).T)


def old_gram(apply_fn, params, T, X):
  per_param = 2 * (8 + sum(16 * 2 ** t.order for t in T.terms))
  batch = int(max(1, min(64, finite.MEMORY_BUDGET // (n_params(params) * per_param))))
  block = _old_block(apply_fn, T)
  return tiled_evaluator(lambda a, b: block(params, a, b), T, T, batch, "old")(X)


# (b) The materialised Jacobian: vmapped per-point reverse mode, one matmul.
@functools.lru_cache(maxsize=None)
def _materialised(apply_fn, T):
  tu = finite.operator_applied(apply_fn, T)

  def gram(params, X):
    J = jax.vmap(lambda x: jax.grad(lambda p: tu(p, x[None])[0])(params))(X)
    return sum(leaf.reshape(len(X), -1) @ leaf.reshape(len(X), -1).T
               for leaf in jax.tree_util.tree_leaves(J))
  return jax.jit(gram)


def matmul_rate():
  """float64 GEMM flop rate of this process (``2 m^3`` flops per ``m x m`` product)."""
  a = jnp.asarray(np.random.default_rng(0).normal(size=(1536, 1536)))
  mm = jax.jit(lambda x: x @ x)
  mm(a).block_until_ready()
  return 2 * 1536 ** 3 / median_of(lambda: mm(a).block_until_ready(), 5)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--append", action="store_true", help="append the section to docs/benchmarks.md")
  parser.add_argument("--points", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048, 4096])
  parser.add_argument("--baseline-seconds", type=float, default=40.0)
  args = parser.parse_args(argv)
  rate = matmul_rate()
  cases = [("u_xx", operators.parse("u_xx", "x"), 1),
           ("Lap", operators.parse("u_xx + u_yy", ("x", "y")), 2)]
  lines = [f"## Finite-width operator NTK speed ({time.strftime('%Y-%m-%d')}, "
           f"{reporting.device_description()})", "",
           f"`benchmarks/finite_width_speed.py`: empirical Grams of depth-2 erf MLPs; medians of 3 "
           f"warm calls; float64 matmul rate measured in the same process: {rate / 1e9:.1f} GFLOP/s. "
           f"Bound = (2 n^2 P + 6 s n P) / rate (materialised `J J^T`, s jvp streams). "
           f"Baseline = previous implementation (per-tile `jacrev`), run where its estimated time "
           f"<= {args.baseline_seconds:.0f} s.", "",
           "| Gram | points | width | params P | first call (s) | per call (s) | materialised J J^T (s) "
           "| flop bound (s) | per call / bound | previous (s) | previous / per call |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  print("\n".join(lines), flush=True)
  for name, T, dim in cases:
    streams = sum(2 ** t.order for t in T.terms)
    for n in args.points:
      X = np.random.default_rng(0).uniform(-1, 1, (n, dim))
      for width in args.widths:
        net = ntkpde.mlp(2, width, "erf")
        _, params = net.init_fn(jax.random.PRNGKey(0), (-1, dim))
        P = n_params(params)
        kernel = finite.empirical_operator_ntk(net.apply_fn, params, T)
        first = seconds(lambda: np.asarray(kernel(X)))
        new = median_of(lambda: np.asarray(kernel(X)))
        bound = (2 * n * n * P + 6 * streams * n * P) / rate
        mat = "-"
        if 4 * 8 * n * P <= finite.MEMORY_BUDGET // 4:
          gram = _materialised(net.apply_fn, T)
          want = np.asarray(gram(params, jnp.asarray(X)))
          got = np.asarray(kernel(X))
          assert np.abs(got - want).max() <= 1e-10 * np.abs(want).max(), "routes disagree"
          mat = f"{median_of(lambda: np.asarray(gram(params, jnp.asarray(X)))):.3f}"
        old, ratio = "-", "-"
        estimate = OLD_SECONDS_1024_64 * (n / 64) ** 2 * P / 1_053_697 * (streams / 4)
        if estimate <= args.baseline_seconds:
          old_gram(net.apply_fn, params, T, X)        # compile
          t_old = seconds(lambda: np.asarray(old_gram(net.apply_fn, params, T, X)))
          old, ratio = f"{t_old:.2f}", f"{t_old / new:.0f}"
        lines.append(f"| {name} | {n} | {width} | {P} | {first:.2f} | {new:.3f} | {mat} | "
                     f"{bound:.3f} | {new / bound:.2f} | {old} | {ratio} |")
        print(lines[-1], flush=True)
  chans = [("r", operators.parse("u_xx", "x"), np.linspace(-0.9, 0.9, 6)[:, None]),
           ("b", operators.identity("x"), np.array([[-1.0], [1.0]]))]
  net = ntkpde.mlp(2, 1024, "erf")
  _, params = net.init_fn(jax.random.PRNGKey(0), (-1, 1))

  def run():
    return training.train(net.apply_fn, params, chans, learning_rate=1e-2, steps=100,
                          checkpoints=[33, 66, 100], record_kernel=True)
  lines += ["", f"`train(..., record_kernel=True)`, width 1024, 8 residuals, 100 steps, 4 checkpoints: "
            f"first call {seconds(run):.1f} s, repeated {seconds(run):.1f} s."]
  print(lines[-1], flush=True)
  section = "\n".join(lines) + "\n\n"
  if args.append:
    with open("docs/benchmarks.md", "a") as f:
      f.write(section)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
