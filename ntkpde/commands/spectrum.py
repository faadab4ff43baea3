"""``ntkpde spectrum``: eigen-decay sweep of operator-informed kernels ``T_x T_x' K``.

Configurations are the product kernel x operator x depth x activation x input
dimension x input map (x ``a`` for ``helmholtz``). Each one computes the Nystrom
spectrum of ``T_x T_x' K`` on a quadrature grid (``ntkpde.quadrature``: Gauss-
Legendre on ``[0, 1]^d``, equispaced on ``[0, 2 pi)^d`` with the periodic map) and
its summary (``ntkpde.spectrum.summary``: power-law exponent, condition number,
effective rank). Results are rewritten atomically after every configuration
(JSON with the eigenvalues, or CSV of summaries, by the extension of ``--out``),
and configurations already in the file are skipped, so an interrupted sweep
resumes where it stopped. An existing ``--out`` that is not a sweep file is refused
before any work; the file is locked while the sweep runs; Ctrl-C stops after
keeping every finished configuration (exit code 130).
"""
import csv
import io
import itertools
import json
import time
from pathlib import Path

from ntkpde.commands import (UsageError, finite_float, nonnegative_float, positive_float,
                             positive_int, writable_file)

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
  parser.add_argument("--a", nargs="+", type=finite_float, default=[1.0],
                      help="coefficients a of helmholtz (-Lap u + a u)")
  parser.add_argument("--depths", nargs="+", type=positive_int, default=[2])
  parser.add_argument("--activations", nargs="+", default=["erf"])
  parser.add_argument("--dims", nargs="+", type=positive_int, default=[1, 2])
  parser.add_argument("--input-maps", nargs="+", default=["none"], choices=INPUT_MAPS)
  parser.add_argument("--points", type=positive_int, default=32,
                      help="quadrature points per axis (N = points^dim)")
  parser.add_argument("--W-std", type=positive_float, default=1.5)
  parser.add_argument("--b-std", type=nonnegative_float, default=0.1)
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
  """The records of an existing sweep file (``[]`` if there is none); :class:`UsageError`
  naming the file if it is not one (truncated JSON, another structure, other CSV columns)."""
  if not path.exists():
    return []
  try:
    if path.suffix == ".json":
      records = json.loads(path.read_text())
      if not isinstance(records, list) or not all(
          isinstance(r, dict) and set(KEY) <= set(r) for r in records):
        raise ValueError(f"expected a list of records with the fields {list(KEY)}")
      return records
    with path.open(newline="") as f:
      reader = csv.DictReader(f)
      if not set(KEY) <= set(reader.fieldnames or ()):
        raise ValueError(f"expected the columns {list(KEY)}, got {reader.fieldnames}")
      rows = list(reader)
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
  except (ValueError, TypeError, KeyError, UnicodeDecodeError) as err:
    raise UsageError(f"--out {path}: exists and is not a spectrum sweep file ({err}); move it "
                     f"away or choose another --out.") from None


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


def _check_size(points: int, dim: int) -> None:
  """Refuses a sweep whose largest Gram (``N = points^dim``) and the dense eigensolver's
  copy of it (``2 * 8 N^2`` bytes) do not fit in the available memory."""
  from ntkpde.operator_kernels import available_memory
  n = points ** dim
  need, have = 16.0 * n * n, available_memory()
  if have is not None and need > have:
    raise UsageError(f"--points {points} with --dims {dim}: N = {points}^{dim} = {n} points; the "
                     f"Gram matrix and the eigensolver's copy need {need / 2**30:.3g} GiB, only "
                     f"{have / 2**30:.1f} GiB is available. Use fewer --points or smaller --dims "
                     f"(ntkpde.large_eigen.top_eigenvalues gives the top of a larger spectrum).")


def run(args) -> int:
  out = writable_file(args.out, (".json", ".csv"))
  if args.points < 2:
    raise UsageError(f"--points {args.points}: expected an integer >= 2.")
  if any(d > 4 for d in args.dims):
    raise UsageError(f"--dims {' '.join(map(str, args.dims))}: dimensions must be in 1..4.")
  _check_size(args.points, max(args.dims))
  from ntkpde.architectures import ACTIVATIONS
  unknown = sorted(set(args.activations) - set(ACTIVATIONS))
  if unknown:
    raise UsageError(f"--activations {' '.join(args.activations)}: unknown {unknown}; choose "
                     f"from {sorted(ACTIVATIONS)}.")
  if args.plot is not None:
    if out.suffix != ".json":
      raise UsageError(f"--plot {args.plot}: needs a .json --out (CSV keeps no eigenvalues).")
    writable_file(args.plot, (".png",), "--plot")
  records = _load(out)
  from ntkpde import reporting
  with reporting.output_lock(out), reporting.Interrupt() as stop:
    try:
      _sweep(args, out, records, stop)
    except KeyboardInterrupt:
      stop.requested = True
    if stop.requested:
      print(f"interrupted: {len(records)} configurations kept in {out}; run the same command "
            f"again to resume.", flush=True)
      return 130
  if args.plot:
    _plot(records, Path(args.plot))
    print(f"plot: {args.plot}")
  return 0


def _sweep(args, out: Path, records: list, stop) -> None:
  """Runs the configurations not yet in ``records``, appending and saving after each one;
  returns early when ``stop.requested`` (Ctrl-C)."""
  from ntkpde import operator_kernel, spectrum
  done = {_key(r) for r in records}
  configs = list(_configurations(args))
  todo = [c for c in configs if _key(c) not in done]
  print(f"{len(todo)} configurations to run, {len(configs) - len(todo)} already done in {out}",
        flush=True)
  for i, config in enumerate(todo, 1):
    if stop.requested:
      return
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
    _save(out, records + [record])
    records.append(record)
    result = record["error"][:80] or (f"alpha = {record['alpha']:.3f} +- "
                                      f"{record['alpha_uncertainty']:.3f}"
                                      if record["alpha"] is not None else "no fit")
    print(f"[{i}/{len(todo)}] {_key(config)}: {result} ({record['seconds']:.1f} s)", flush=True)
