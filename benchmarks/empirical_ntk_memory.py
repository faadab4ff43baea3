"""Peak memory of one empirical operator-NTK tile, against the bound behind the default
batch size (``ntkpde.finite.tile_bytes_per_parameter``).

Each configuration runs in a fresh process (peak RSS is per process): a depth-2 erf MLP on
2-D inputs, ``finite.empirical_operator_ntk(apply_fn, params, T)(X)`` with ``X`` of
``batch`` points and ``batch_size=batch`` (one tile, both Jacobians). Prints the peak RSS
growth per (point x parameter x side) and the bound, whose ratio must stay >= 1.

    python benchmarks/empirical_ntk_memory.py
"""
import json
import resource
import subprocess
import sys

CONFIGS = [(1024, 32, "u"), (1024, 16, "u_x"), (1024, 16, "u_xx"), (1024, 16, "u_xxx"),
           (1024, 16, "u_xx + u_yy"), (1024, 32, "u_xx + u_yy"), (1024, 16, "u_xx + u_xy + u_yy"),
           (2048, 8, "u_xx + u_yy")]


def measure(width: int, batch: int, expr: str) -> dict:
  import jax
  import numpy as np

  import ntkpde
  from ntkpde import finite
  net = ntkpde.mlp(2, width, "erf")
  _, params = net.init_fn(jax.random.PRNGKey(0), (-1, 2))
  n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
  T = ntkpde.operators.parse(expr, ("x", "y"))
  X = np.random.default_rng(0).uniform(-1, 1, (batch, 2))
  before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  np.asarray(finite.empirical_operator_ntk(net.apply_fn, params, T, batch_size=batch)(X))
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  per_side = (peak - before) / (2 * batch * n_params)
  return {"width": width, "params": n_params, "batch": batch, "operator": expr,
          "peak_gib": peak / 2 ** 30, "bytes_per_point_param_side": per_side,
          "bound": finite.tile_bytes_per_parameter(T)}


def main() -> int:
  if len(sys.argv) == 4:
    print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])))
    return 0
  print("| width | params | batch | operator | peak RSS (GiB) | bytes / (point x param x side) "
        "| bound | bound / measured |")
  print("|---|---|---|---|---|---|---|---|")
  for width, batch, expr in CONFIGS:
    out = subprocess.run([sys.executable, __file__, str(width), str(batch), expr],
                         capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    r = json.loads(out)
    print(f"| {width} | {r['params']} | {batch} | `{expr}` | {r['peak_gib']:.2f} | "
          f"{r['bytes_per_point_param_side']:.0f} | {r['bound']} | "
          f"{r['bound'] / r['bytes_per_point_param_side']:.2f} |", flush=True)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
