"""Memory of one empirical operator-NTK tile, against the bound behind the default batch
size (``ntkpde.finite.tile_bytes``: ``8 D sum_k 2^|alpha_k|`` bytes per point, side and
operator, ``D`` the sum of the parameter arrays' dimensions, plus ``16 C^2 s^2`` per point
pair), reported per point and side.

Each configuration runs in a fresh process: a depth-2 erf MLP on 2-D inputs, one tile of
``batch`` points on both sides (``finite._compiled_block``, the function every
``empirical_operator_ntk`` call runs; a mixed block's network has both outputs). Reported: XLA's run-time working memory of the
compiled tile (``memory_analysis``: temporaries plus output) and the peak RSS growth of the
process over the call (which also holds compilation), both per point and side, and the
bound's ratio to the working memory, which must stay >= 1.

    python benchmarks/empirical_ntk_memory.py
"""
import json
import resource
import subprocess
import sys

CONFIGS = [(1024, 256, "u", None), (1024, 256, "u_x", None), (1024, 256, "u_xx", None),
           (1024, 256, "u_xxx", None), (1024, 256, "u_xx + u_yy", None),
           (1024, 1024, "u_xx + u_yy", None), (1024, 256, "u_xx + u_xy + u_yy", None),
           (4096, 256, "u_xx + u_yy", None), (1024, 256, "u_xx + u_yy", "u")]


def measure(width: int, batch: int, expr: str, other: str) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np

  import ntkpde
  from ntkpde import finite
  net = ntkpde.mlp(2, width, "erf")
  _, params = net.init_fn(jax.random.PRNGKey(0), (-1, 2))

  def op(text):
    return ntkpde.operators.identity(("x", "y")) if text == "u" else \
        ntkpde.operators.parse(text, ("x", "y"))
  T = op(expr)
  S = T if other is None else op(other)
  ops = tuple(dict.fromkeys((T, S)))
  block = finite._compiled_block(net.apply_fn, ops)
  X = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch, 2)))
  analysis = block.lower(params, X, X, 0, len(ops) - 1).compile().memory_analysis()
  working = analysis.temp_size_in_bytes + analysis.output_size_in_bytes
  before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  np.asarray(block(params, X, X, 0, len(ops) - 1))
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  bound = finite.tile_bytes(params, ops, batch) / (2 * batch)
  return {"width": width, "batch": batch, "operator": expr, "other": other,
          "working_per_point_side": working / (2 * batch), "peak_gib": peak / 2 ** 30,
          "rss_per_point_side": (peak - before) / (2 * batch), "bound": bound}


def main() -> int:
  if len(sys.argv) == 5:
    other = None if sys.argv[4] == "-" else sys.argv[4]
    print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], other)))
    return 0
  print("| width | batch | T | S | working memory / (point x side) (KB) | RSS growth / (point x "
        "side) (KB) | peak RSS (GiB) | bound (KB) | bound / working |")
  print("|---|---|---|---|---|---|---|---|---|")
  for width, batch, expr, other in CONFIGS:
    out = subprocess.run([sys.executable, "-W", "ignore", __file__, str(width), str(batch), expr,
                          other or "-"], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.splitlines()[-1])
    print(f"| {width} | {batch} | `{expr}` | `{other or expr}` | "
          f"{r['working_per_point_side'] / 1e3:.0f} | {r['rss_per_point_side'] / 1e3:.0f} | "
          f"{r['peak_gib']:.2f} | {r['bound'] / 1e3:.0f} | "
          f"{r['bound'] / r['working_per_point_side']:.2f} |", flush=True)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
