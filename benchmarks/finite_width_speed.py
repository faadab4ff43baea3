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
3. ``--section training-step`` (instead of 1-2): DLAB-5's full-batch gradient-descent step
   (depth-3 erf MLP, channels ``f`` and ``d_1 f`` on the same 8 points) per width, the
   current ``training`` step against the previous one (each channel's operator applied on
   its own, so the primal forward pass ran twice; no donation; XLA's default copy
   insertion), interleaved in one process, with the same iterates checked; and the
   memory-traffic bound ``4 x 8 bytes x (weights)`` per step (read the weights forward,
   read them backward, read and write them in the update) at the bandwidth measured here.

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


def _operator_applied(apply_fn, T):
  """``(params, X) -> (T u)(X; params)``."""
  return lambda params, x: finite.operator_values(apply_fn, params, (T,), x)[0]


# (a) The previous implementation: jacrev of T u over each tile, J_T J_S^T per tile.
def _old_flat_jacobian(tu, params, x):
  jac = jax.jacrev(tu)(params, x)
  return jnp.concatenate([leaf.reshape(x.shape[0], -1) for leaf in jax.tree_util.tree_leaves(jac)],
                         axis=1)


@functools.lru_cache(maxsize=None)
def _old_block(apply_fn, T):
  tu = _operator_applied(apply_fn, T)
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
  tu = _operator_applied(apply_fn, T)

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


def _previous_advance(apply_fn, chans, learning_rate):
  """The step before issue 11's last change: residuals channel by channel (``T(f)``)."""
  def loss(p, ys):
    r = jnp.concatenate([op(lambda z: apply_fn(p, z)[:, 0])(jnp.asarray(X)) - y
                         for (_, op, X), y in zip(chans, ys)])
    return jnp.sum(r ** 2) / (2 * len(r))

  @jax.jit
  def advance(p, count, ys):
    return jax.lax.fori_loop(0, count, lambda _, q: jax.tree_util.tree_map(
        lambda a, g: a - learning_rate * g, q, jax.grad(loss)(q, ys)), p)
  return advance


def bandwidth():
  """``(read, read + write)`` bytes moved per second: a sum over, and an in-place update
  of, 256 MiB."""
  a = jnp.ones(1 << 25)
  total = jax.jit(jnp.sum)
  total(a).block_until_ready()
  read = 8 * a.size / median_of(lambda: total(a).block_until_ready(), 5)
  bump = jax.jit(lambda x: x + 1.0, donate_argnums=0)
  a = bump(a)
  times = []
  for _ in range(5):
    start = time.perf_counter()
    a = bump(a).block_until_ready()
    times.append(time.perf_counter() - start)
  return read, 16 * a.size / statistics.median(times)


def training_step_section(widths, steps=20):
  """Section 3 of the module docstring."""
  g = np.random.default_rng(0).normal(size=8)
  X = np.stack([np.cos(g), np.sin(g)], axis=1)
  xy = ("x", "y")
  chans = [("f", operators.identity(xy), X), ("df", operators.parse("u_x", xy), X)]
  targets = [X[:, 0] * X[:, 1], X[:, 1]]
  rate = max(bandwidth())
  lines = [f"## DLAB-5 training step ({time.strftime('%Y-%m-%d')}, {reporting.device_description()})",
           "", "`benchmarks/finite_width_speed.py --section training-step`: full-batch gradient "
           "descent of a depth-3 erf MLP on `f` and `d_1 f` at the same 8 points (DLAB-5's "
           f"setting), ms per step, medians of 3 runs of {steps} steps, the previous and the "
           f"current step interleaved in one process (same iterates, checked to 1e-12). Bound: 4 "
           f"passes over the weights per step (forward read, backward read, update read and "
           f"write), 32 P bytes, at the best streaming rate measured here (a sum over, or an "
           f"in-place update of, 256 MiB): {rate / 1e9:.1f} GB/s.", "",
           "| width | params P | previous (ms) | current (ms) | previous / current | bound (ms) "
           "| current / bound |", "|---|---|---|---|---|---|---|"]
  print("\n".join(lines), flush=True)
  for width in widths:
    net = ntkpde.mlp(3, width, "erf", 1.5, 0.1)
    _, params = net.init_fn(jax.random.PRNGKey(0), (-1, 2))
    eta = 0.05
    old = _previous_advance(net.apply_fn, chans, eta)
    ys = tuple(jnp.asarray(y) for y in targets)
    chs, points, groups, ys_new = finite.channel_data(chans, targets)
    _, new, _, _ = training._compiled_advance(net.apply_fn, tuple(c.operator for c in chs),
                                              groups, "gd", eta)
    data = (points, ys_new, jnp.ones(16))
    fresh = lambda: jax.tree_util.tree_map(jnp.array, params)  # noqa: E731 (new donates)
    want = old(params, steps, ys)
    got = new(fresh(), (), steps, data)[0]
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
      assert np.abs(np.asarray(a - b)).max() <= 1e-12 * np.abs(np.asarray(b)).max(), "steps differ"
    t_old, t_new = [], []
    for _ in range(3):
      t_old.append(seconds(lambda: jax.block_until_ready(old(params, steps, ys))))
      p = fresh()
      jax.block_until_ready(p)
      t_new.append(seconds(lambda: jax.block_until_ready(new(p, (), steps, data))))
    P = n_params(params)
    bound = 32 * P / rate
    o, c = statistics.median(t_old) / steps, statistics.median(t_new) / steps
    lines.append(f"| {width} | {P} | {1e3 * o:.1f} | {1e3 * c:.1f} | {o / c:.2f} | "
                 f"{1e3 * bound:.1f} | {c / bound:.1f} |")
    print(lines[-1], flush=True)
  return lines


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--append", action="store_true", help="append the section to docs/benchmarks.md")
  parser.add_argument("--points", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--widths", type=int, nargs="+",
                      help="default 64 .. 4096 (grams), 1024 2048 4096 (training-step)")
  parser.add_argument("--baseline-seconds", type=float, default=40.0)
  parser.add_argument("--section", choices=("grams", "training-step"), default="grams",
                      help="grams: sections 1-2 of the docstring (default); training-step: 3")
  args = parser.parse_args(argv)
  if args.section == "training-step":
    lines = training_step_section(args.widths or [1024, 2048, 4096])
    if args.append:
      with open("docs/benchmarks.md", "a") as f:
        f.write("\n".join(lines) + "\n\n")
    return 0
  args.widths = args.widths or [64, 128, 256, 512, 1024, 2048, 4096]
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
