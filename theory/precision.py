"""Float32 versus float64 for operator kernels: why ntkpde computes in float64.

``python -m theory.precision`` measures, for a depth-``d`` erf network, the relative
error ``max|K32 - K64| / max|K64|`` of ``T_x S_x' Theta`` computed with JAX's float32
(x64 disabled, in a subprocess, since ``import ntkpde`` enables float64 for the whole
process) against the same computation in float64. The points are multiples of 1/16,
exact in both precisions, so the error is that of the kernel computation alone.
For depth 1 it also reports float64 against the SymPy closed form.

Entry errors hide what float32 costs: the spectrum of a ``Lap x Lap`` Gram matrix
decays fast, so its small eigenvalues drown in the float32 entry error. On an
16 x 16 grid (256 points, spacing 1/8) the measurement also reports how many eigenvalues of the
float32 Gram matrix are within 10 % of the float64 ones (both diagonalised in
float64, so only the kernel's precision differs), and the eigenvalue ratio
``lambda_k / lambda_max`` where float32 stops being accurate.
"""
import argparse
import json
import subprocess
import sys

import numpy as np

POINTS = (np.array([[-0.75, 0.5], [0.25, -0.125], [0.5, 0.625], [-0.3125, -0.875], [0.0, 0.25],
                    [0.875, -0.5]]),
          np.array([[0.125, 0.75], [-0.5, -0.25], [0.6875, 0.0625], [-0.9375, 0.375], [0.3125, -0.6875]]))
_g = np.arange(-0.9375, 1.0, 0.125)
GRID = np.stack(np.meshgrid(_g, _g), -1).reshape(-1, 2)
PAIRS = {"identity": ("u", "u"), "u_x": ("u_x", "u_x"), "lap-id": ("u_xx + u_yy", "u"),
         "lap-lap": ("u_xx + u_yy", "u_xx + u_yy")}


GRAM = "lap-lap-gram"


def _kernels(depth: int, float32: bool, names) -> dict:
  import jax
  import ntkpde
  if float32:
    jax.config.update("jax_enable_x64", False)
  net = ntkpde.mlp(depth=depth, activation="erf", W_std=1.5, b_std=0.1)
  out = {}
  for name in names:
    if name == GRAM:
      lap = ntkpde.operators.parse("u_xx + u_yy", ("x", "y"))
      k = ntkpde.gram(net.kernel_fn, [("interior", lap, GRID)]).matrix
    else:
      T, S = (ntkpde.operators.parse(e, ("x", "y")) for e in PAIRS[name])
      k = ntkpde.operator_kernel(net.kernel_fn, T, S, "ntk")(*POINTS)
    out[name] = {"dtype": str(k.dtype), "values": np.asarray(k, dtype=np.float64).tolist()}
  return out


def measure(depth: int = 2, names=tuple(PAIRS) + (GRAM,)) -> dict:
  """``{name: {"float32": rel. error vs float64, "float64_vs_sympy": ... (depth 1)}}``
  for the ``names`` among ``PAIRS`` and ``GRAM``."""
  names = tuple(names)
  k64 = _kernels(depth, False, names)
  run = subprocess.run([sys.executable, "-m", "theory.precision", "--float32-json",
                        "--depth", str(depth), "--names", *names],
                       capture_output=True, text=True, check=True)
  k32 = json.loads(run.stdout)
  result = {}
  for name in names:
    if k32[name]["dtype"] != "float32" or k64[name]["dtype"] != "float64":
      raise RuntimeError(f"precision measurement ran in {k32[name]['dtype']} / {k64[name]['dtype']}.")
    a, b = np.array(k32[name]["values"]), np.array(k64[name]["values"])
    entry = {"float32": float(np.max(np.abs(a - b)) / np.max(np.abs(b)))}
    if name == GRAM:
      ev32, ev64 = (np.sort(np.linalg.eigvalsh(m))[::-1] for m in (a, b))
      good = np.abs(ev32 - ev64) <= 0.1 * np.abs(ev64)
      k_bad = int(np.argmin(good)) if not good.all() else len(good)
      entry.update(eigenvalues_within_10pct=k_bad, of=len(good),
                   lambda_ratio_at_first_bad=float(ev64[min(k_bad, len(good) - 1)] / ev64[0]),
                   float32_min_eigenvalue_ratio=float(ev32[-1] / ev32[0]))
    elif depth == 1:
      from ntkpde.operators import parse
      from theory.erf_ntk_closed_form import operator_kernel_closed_form
      T, S = (parse(e, ("x", "y")) for e in PAIRS[name])
      exact = operator_kernel_closed_form(T, S, "ntk", 1, 1.5, 0.1)(*POINTS)
      entry["float64_vs_sympy"] = float(np.max(np.abs(b - exact)) / np.max(np.abs(exact)))
    result[name] = entry
  return result


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--depth", type=int, default=2)
  parser.add_argument("--names", nargs="+", default=list(PAIRS) + [GRAM],
                      choices=list(PAIRS) + [GRAM])
  parser.add_argument("--float32-json", action="store_true",
                      help="internal: print the float32 kernels as JSON")
  args = parser.parse_args(argv)
  if args.float32_json:
    print(json.dumps(_kernels(args.depth, True, args.names)))
    return
  for name, entry in measure(args.depth, args.names).items():
    print(f"depth {args.depth} {name:12s} " + "  ".join(f"{k} {v:.3g}" for k, v in entry.items()))


if __name__ == "__main__":
  main()
