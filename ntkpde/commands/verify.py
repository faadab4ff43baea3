"""``ntkpde verify``: run the claim verifications and write a report with figures.

``report.md`` and ``results.json`` are rewritten (atomically) after every claim, with the
new records merged by claim id into those already there (the newest record of a claim
wins), so ``--only`` and an interrupted run (Ctrl-C: exit code 130) keep every finished
claim; ``--resume`` skips the claims already in ``results.json`` for the same mode (quick
or full, without an error) and runs the rest. The output folder is locked while a run
writes to it; a bad ``--out`` or ``results.json`` is refused before any work.
"""
import json
import time
import traceback
from pathlib import Path

from ntkpde.commands import UsageError, writable_folder

NAME = "verify"
HELP = "run the numerical verifications of the papers' claims and write a report"


def add_arguments(parser) -> None:
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--quick", action="store_true", help="small sizes (default)")
  size.add_argument("--full", action="store_true", help="paper-sized problems (slow)")
  parser.add_argument("--only", action="append", metavar="ID",
                      help="run only this claim id (repeatable), e.g. --only DLAB-1")
  parser.add_argument("--out", default="reports", help="output folder (default: reports/)")
  parser.add_argument("--list", action="store_true", help="list claim ids and exit")
  parser.add_argument("--resume", action="store_true",
                      help="keep the claims already in OUT/results.json (same mode, no error) "
                           "and run only the others")


def _read_records(path: Path) -> list:
  """The records of an existing ``results.json`` (``[]`` if none); :class:`UsageError` naming
  the file if it is not a results file, before any work."""
  if not path.exists():
    return []
  try:
    records = json.loads(path.read_text())
    if not isinstance(records, list) or not all(isinstance(r, dict) and "id" in r
                                                for r in records):
      raise ValueError("expected a list of claim records with an 'id'")
  except (ValueError, UnicodeDecodeError) as err:
    raise UsageError(f"--out {path.parent}: {path} is not a verify results file ({err}); move it "
                     f"away or choose another --out.") from None
  return records


def _merge(previous, new, order) -> list:
  """Records by claim id, the newest (``new``) winning; claims in registry ``order``, then
  ids the registry no longer has, in their previous order."""
  by_id = {r["id"]: r for r in previous}
  by_id.update({r["id"]: r for r in new})
  rank = {cid: k for k, cid in enumerate(order)}
  return sorted(by_id.values(), key=lambda r: rank.get(r["id"], len(rank)))


def run(args) -> int:
  from ntkpde import reporting
  from verification import all_claims
  claims = all_claims()
  if args.list:
    for cid, c in claims.items():
      print(f"{cid:8s} {c.paper:30s} {c.statement[:80]}")
    return 0
  order = list(claims)
  if args.only:
    unknown = sorted(set(args.only) - set(claims))
    if unknown:
      raise UsageError(f"--only {' '.join(unknown)}: unknown claim id(s); known: {sorted(claims)}.")
    claims = {cid: c for cid, c in claims.items() if cid in args.only}
  out = writable_folder(args.out)
  _read_records(out / "results.json")  # a bad file is refused before any work
  out.mkdir(parents=True, exist_ok=True)
  with reporting.output_lock(out), reporting.Interrupt() as stop:
    try:
      return _verify(args, claims, order, out, stop)
    except KeyboardInterrupt:
      print(f"interrupted: every finished claim is kept in {out / 'results.json'}; rerun with "
            f"--resume to continue.", flush=True)
      return 130


def _verify(args, claims, order, out: Path, stop) -> int:
  """Runs ``claims``, merging each new record into ``out/results.json`` and ``report.md``
  (atomically, after every claim); stops between claims when ``stop.requested``."""
  from ntkpde import reporting
  from verification import Context, report
  quick = not args.full
  mode = "quick" if quick else "full"
  previous = _read_records(out / "results.json")   # re-read under the lock
  kept = {r["id"]: r for r in previous if args.resume and r.get("mode") == mode
          and r.get("passed") is not None and r["id"] in claims}
  device = reporting.device_description()
  ctx = Context(quick=quick, out_dir=out, log=lambda m: print(f"    {m}", flush=True))
  records, errors = [], 0
  for k, (cid, claim) in enumerate(claims.items(), 1):
    if stop.requested:
      raise KeyboardInterrupt
    print(f"[{k}/{len(claims)}] {cid}: {claim.statement[:70]}", flush=True)
    if cid in kept:
      records.append(kept[cid])
      print("    -> kept from the previous run (--resume)", flush=True)
      continue
    start = time.perf_counter()
    record = {"id": cid, "paper": claim.paper, "statement": claim.statement, "mode": mode}
    try:
      o = claim.run(ctx)
      figures = [str(Path(f).relative_to(out)) if Path(f).is_absolute() or str(f).startswith(str(out))
                 else str(f) for f in o.figures]
      record.update(report.record_fields(o, figures, device))
    except Exception:  # a crash is reported, not hidden; the run goes on
      errors += 1
      record.update(measured="error", expected="", tolerance="", passed=None, figures=[],
                    device=device, error=traceback.format_exc(limit=6))
    record["seconds"] = time.perf_counter() - start
    records.append(record)
    verdict = record.get("verdict", "ERROR")
    print(f"    -> {verdict} ({record['seconds']:.1f} s): {record['measured']}", flush=True)
    # Written after every claim, merged with the other claims' records by id: an interrupted
    # run, or one with --only, keeps everything finished before.
    merged = _merge(previous, records, order)
    reporting.write_json_atomic(out / "results.json", merged)
    reporting.write_atomic(out / "report.md", report.markdown(merged, quick, device))
  held = sum(r["passed"] is True for r in records)
  print(f"{held} of {len(records)} claims hold, {errors} errors; report: {out / 'report.md'}")
  return 1 if errors else 0
