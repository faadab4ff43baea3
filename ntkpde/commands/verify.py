"""``ntkpde verify``: run the claim verifications and write a report with figures.

``report.md`` and ``results.json`` are rewritten (atomically) after every claim, so an
interrupted run keeps what it computed; ``--resume`` then skips the claims already in
``results.json`` for the same mode (quick or full) and runs the rest.
"""
import json
import time
import traceback
from pathlib import Path

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


def _previous_records(path: Path, mode: str, claims) -> dict:
  """Records of ``path`` (a ``results.json``) to keep under ``--resume``: same mode, a
  verdict (not an error), a claim that still exists."""
  if not path.exists():
    return {}
  try:
    records = json.loads(path.read_text())
  except json.JSONDecodeError as err:
    raise SystemExit(f"--resume: {path} is not valid JSON ({err}); delete it or choose another --out.")
  return {r["id"]: r for r in records
          if r.get("mode") == mode and r.get("passed") is not None and r.get("id") in claims}


def run(args) -> int:
  from ntkpde import reporting
  from verification import Context, all_claims, report
  claims = all_claims()
  if args.list:
    for cid, c in claims.items():
      print(f"{cid:8s} {c.paper:30s} {c.statement[:80]}")
    return 0
  if args.only:
    unknown = sorted(set(args.only) - set(claims))
    if unknown:
      print(f"unknown claim id(s) {unknown}; known: {sorted(claims)}")
      return 2
    claims = {cid: c for cid, c in claims.items() if cid in args.only}
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  quick = not args.full
  mode = "quick" if quick else "full"
  kept = _previous_records(out / "results.json", mode, claims) if args.resume else {}
  device = reporting.device_description()
  ctx = Context(quick=quick, out_dir=out, log=lambda m: print(f"    {m}", flush=True))
  records, errors = [], 0
  for k, (cid, claim) in enumerate(claims.items(), 1):
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
    # Written after every claim: an interrupted run keeps what it has computed.
    reporting.write_json_atomic(out / "results.json", records)
    reporting.write_atomic(out / "report.md", report.markdown(records, quick, device))
  held = sum(r["passed"] is True for r in records)
  print(f"{held} of {len(records)} claims hold, {errors} errors; report: {out / 'report.md'}")
  return 1 if errors else 0
