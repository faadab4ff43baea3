"""``ntkpde spectrum``: eigen-decay sweep of operator-informed kernels ``T_x T_x' K``.

Configurations are the product kernel x operator x depth x activation x input
dimension x input map (x ``a`` for ``helmholtz``). Each one computes the Nystrom
spectrum of ``T_x T_x' K`` on a quadrature grid (``ntkpde.quadrature``: Gauss-
Legendre on ``[0, 1]^d``, equispaced on ``[0, 2 pi)^d`` with the periodic map) and
its summary (``ntkpde.spectrum.summary``: power-law exponent, condition number,
effective rank). Results are rewritten atomically after every configuration
(JSON with the eigenvalues, or CSV of summaries, by the extension of ``--out``),
and configurations already in the file are skipped, so an interrupted sweep
resumes where it stopped.
"""
import csv
import io
import itertools
import json
import time
from pathlib import Path

NAME = "spectrum"
HELP = "eigen-decay sweep of operator-informed kernels (resumable; JSON/CSV + log-log plot)"

OPERATORS = ("identity", "laplacian", "helmholtz")
INPUT_MAPS = ("none", "box", "periodic")
KEY = ("kernel", "operator", "a", "depth", "activation", "dim", "input_map", "points",
       "W_std", "b_std")
SUMMARY = ("n", "trace", "lambda_max", "lambda_min", "condition_number", "effective_rank",
           "alpha", "alpha_uncertainty", "k_min", "k_max", "fit_error", "error", "seconds")


def add_arguments(parser) -> None:
  parser.add_argument("--kernels", nargs="+", default=["ntk"], choices=["ntk", "nngp"])
  parser.add_argument("--operators", nargs="+", default=["identity", "laplacian"],
                      choices=OPERATORS, help="T: u, sum_i u_{x_i x_i}, or -Lap u + a u")
  parser.add_argument("--a", nargs="+", type=float, default=[1.0],
                      help="coefficients a of helmholtz (-Lap u + a u)")
  parser.add_argument("--depths", nargs="+", type=int, default=[2])
  parser.add_argument("--activations", nargs="+", default=["erf"])
  parser.add_argument("--dims", nargs="+", type=int, default=[1, 2])
  parser.add_argument("--input-maps", nargs="+", default=["none"], choices=INPUT_MAPS)
  parser.add_argument("--points", type=int, default=32,
                      help="quadrature points per axis (N = points^dim)")
  parser.add_argument("--W-std", type=float, default=1.5)
  parser.add_argument("--b-std", type=float, default=0.1)
  parser.add_argument("--out", default="spectrum_sweep.json",
                      help="results file, .json (with eigenvalues) or .csv (summaries)")
  parser.add_argument("--plot", default=None, help="log-log plot of the spectra (PNG; JSON only)")


def _configurations(args):
  for kernel, op, depth, act, dim, imap in itertools.product(
      args.kernels, args.operators, args.depths, args.activations, args.dims, args.input_maps):
    for a in (args.a if op == "helmholtz" else [None]):
      yield {"kernel": kernel, "operator": op, "a": a, "depth": depth, "activation": act,
             "dim": dim, "input_map": imap, "points": args.points, "W_std": args.W_std,
             "b_std": args.b_std}


def _key(record) -> str:
  return json.dumps([record.get(k) for k in KEY])


def _load(path: Path):
  if not path.exists():
    return []
  if path.suffix == ".json":
    return json.loads(path.read_text())
  with path.open(newline="") as f:
    rows = list(csv.DictReader(f))
  out = []
  for row in rows:  # CSV holds text: restore the key's types so keys compare equal
    rec = dict(row)
    for k in ("depth", "dim", "points"):
      rec[k] = int(rec[k])
    for k in ("W_std", "b_std"):
      rec[k] = float(rec[k])
    rec["a"] = float(rec["a"]) if rec["a"] not in ("", "None") else None
    out.append(rec)
  return out


def _save(path: Path, records) -> None:
  from ntkpde import reporting
  if path.suffix == ".json":
    reporting.write_json_atomic(path, records)
    return
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=KEY + SUMMARY, extrasaction="ignore")
  writer.writeheader()
  writer.writerows(records)
  reporting.write_atomic(path, buf.getvalue())


def _operator(name: str, dim: int, a):
  from ntkpde.operators import identity, parse
  coords = ("x", "y", "z", "w")[:dim]
  lap = " + ".join(f"u_{c}{c}" for c in coords)
  if name == "identity":
    return identity(coords)
  if name == "laplacian":
    return parse(lap, coords=coords)
  return parse(f"-({lap}) + a*u", coords=coords, params={"a": a})


def _problem(config):
  """The kernel function, operator, quadrature points and weights of one configuration."""
  import numpy as np

  import ntkpde
  from ntkpde import quadrature
  dim, n = config["dim"], config["points"]
  if config["input_map"] == "periodic":
    theta, w1 = quadrature.circle(n)
    grids = np.meshgrid(*[theta[:, 0]] * dim, indexing="ij")
    x = np.stack([g.ravel() for g in grids], axis=1)
    w = np.full(len(x), w1[0] ** dim)
    imap = ntkpde.input_maps.periodic_embedding()
  else:
    x, w = quadrature.gauss_legendre_box([0.0] * dim, [1.0] * dim, n)
    imap = ntkpde.input_maps.box_normalization([0.0] * dim, [1.0] * dim) \
        if config["input_map"] == "box" else None
  net = ntkpde.mlp(config["depth"], activation=config["activation"], W_std=config["W_std"],
                   b_std=config["b_std"], input_map=imap)
  return net.kernel_fn, _operator(config["operator"], dim, config["a"]), x, w


def _plot(records, path: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np

  from ntkpde import reporting
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  for r in records:
    lam = np.asarray(r["eigenvalues"] if r.get("eigenvalues") is not None else [])
    lam = lam[lam > 0]
    if lam.size:
      label = (f"{r['kernel']} {r['operator']}{'' if r['a'] is None else ' a=%g' % r['a']} "
               f"d{r['depth']} {r['activation']} {r['dim']}D {r['input_map']}")
      ax.loglog(np.arange(1, lam.size + 1), lam / lam[0], label=label, lw=1)
  ax.set_xlabel("k")
  ax.set_ylabel("lambda_k / lambda_1 (Nystrom)")
  if len(ax.get_lines()) <= 12:
    ax.legend(fontsize=6)
  reporting.save_figure(fig, path)


def run(args) -> int:
  out = Path(args.out)
  if out.suffix not in (".json", ".csv"):
    print(f"--out must end in .json or .csv, got {out.name!r}.")
    return 2
  if args.points < 2 or any(d < 1 or d > 4 for d in args.dims) or any(d < 1 for d in args.depths):
    print("--points must be >= 2, --dims in 1..4, --depths >= 1.")
    return 2
  from ntkpde.architectures import ACTIVATIONS
  unknown = sorted(set(args.activations) - set(ACTIVATIONS))
  if unknown:
    print(f"unknown activation(s) {unknown}; choose from {sorted(ACTIVATIONS)}.")
    return 2
  from ntkpde import operator_kernel, spectrum
  records = _load(out)
  done = {_key(r) for r in records}
  configs = list(_configurations(args))
  todo = [c for c in configs if _key(c) not in done]
  print(f"{len(todo)} configurations to run, {len(configs) - len(todo)} already done in {out}",
        flush=True)
  for i, config in enumerate(todo, 1):
    start = time.perf_counter()
    record = dict(config)
    try:
      kernel_fn, op, x, w = _problem(config)
      g = operator_kernel(kernel_fn, op, get=config["kernel"])(x)
      lam = spectrum.eigenvalues(g, weights=w)
      record.update(spectrum.summary(lam), error="", eigenvalues=lam)
    except (ValueError, FloatingPointError) as err:  # e.g. relu with a Laplacian: recorded
      record.update(error=str(err), eigenvalues=None)
    record["seconds"] = time.perf_counter() - start
    records.append(record)
    _save(out, records)
    result = record["error"][:80] or (f"alpha = {record['alpha']:.3f} +- "
                                      f"{record['alpha_uncertainty']:.3f}"
                                      if record["alpha"] is not None else "no fit")
    print(f"[{i}/{len(todo)}] {_key(config)}: {result} ({record['seconds']:.1f} s)", flush=True)
  if args.plot:
    if out.suffix == ".json":
      _plot(records, Path(args.plot))
      print(f"plot: {args.plot}")
    else:
      print("--plot needs a .json results file (CSV keeps no eigenvalues).")
  return 0
