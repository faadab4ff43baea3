"""The verification report: ``results.json`` records and ``report.md``, for a referee.

A record is the JSON form of a claim's :class:`verification.Outcome` (:func:`record_fields`):
the graded ``verdict`` and its ``reason``, ``passed`` (true only for "holds as stated"),
``quantities`` (name, value, uncertainty, unit, the paper's or stated ``reference`` and its
``source``), plus ``measured`` (free-form details), ``expected``, ``tolerance``, figures
and notes. :func:`markdown` renders records: counts per verdict and one line per claim at
the top (id, verdict, key number vs the paper's or the stated one), then per claim its
statement, verdict, a table of quantities, its criterion, notes and figures.
"""
import dataclasses
import time
from typing import List

from verification import FAILS, HOLDS, INCONCLUSIVE, VERDICTS, WEAKER

_BADGE = {HOLDS: "holds", WEAKER: "**weaker / different form**", FAILS: "**does not hold**",
          INCONCLUSIVE: "*inconclusive*", None: "**error**"}


def record_fields(outcome, figures: List[str], device: str) -> dict:
  """The fields of a ``results.json`` record that a claim's outcome gives (JSON types)."""
  return {"measured": outcome.measured, "expected": outcome.expected,
          "tolerance": outcome.tolerance, "passed": bool(outcome.passed),
          "verdict": outcome.verdict, "reason": outcome.reason,
          "quantities": [_jsonable_quantity(q) for q in outcome.quantities],
          "figures": figures, "notes": outcome.notes, "device": outcome.device or device}


def _jsonable_quantity(q) -> dict:
  d = dataclasses.asdict(q)
  for key in ("value", "uncertainty", "reference"):
    v = d[key]
    if hasattr(v, "item"):
      d[key] = v.item()
  return d


def verdict_of(record) -> str:
  """A record's verdict; records written before verdicts existed have only ``passed``."""
  if record.get("verdict") in VERDICTS:
    return record["verdict"]
  return {True: HOLDS, False: FAILS}.get(record.get("passed"))


def cell(value) -> str:
  """A Markdown table cell: one line, ``|`` escaped (norms like ``||r||`` stay readable)."""
  return str(value).replace("\n", " ").replace("|", "\\|")


def number(value) -> str:
  """Four significant digits for floats, element-wise for lists; anything else as text."""
  if isinstance(value, bool) or value is None:
    return "" if value is None else str(value)
  if isinstance(value, float):
    return f"{value:.4g}"
  if isinstance(value, (list, tuple)):
    return "[" + ", ".join(number(v) for v in value) + "]"
  return str(value)


def _with_uncertainty(q: dict) -> str:
  unc = q.get("uncertainty")
  return number(q["value"]) + (f" +- {number(unc)}" if unc is not None else "")


def _key_number(record) -> str:
  qs = record.get("quantities") or []
  if not qs:
    return ""
  q = qs[0]
  text = f"{q['name']}: {_with_uncertainty(q)}"
  if q.get("reference") is not None:
    text += f" vs {number(q['reference'])} ({q.get('source') or 'reference'})"
  return text


def _flatten(measured, prefix=""):
  """``(name, value)`` rows of a nested ``measured`` dict (one level of names joined by /)."""
  if isinstance(measured, dict):
    rows = []
    for k, v in measured.items():
      rows += _flatten(v, f"{prefix}{k} / " if isinstance(v, dict) else f"{prefix}{k}")
    return rows
  return [(prefix.rstrip(" /") or "measured", measured)]


def markdown(records, quick: bool, device: str) -> str:
  """``report.md`` for ``records`` (in order)."""
  verdicts = [verdict_of(r) for r in records]
  counts = ", ".join(f"{sum(v == name for v in verdicts)} {name}" for name in VERDICTS)
  errors = sum(v is None for v in verdicts)
  lines = [f"# ntkpde verification report ({'quick' if quick else 'full'})", "",
           f"Device: {device}. Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.", "",
           f"**{len(records)} claims: {counts}" + (f", {errors} errors" if errors else "") + ".**",
           "", "Verdicts: *holds as stated*; *holds in a weaker or different form* (a different "
           "rate, only for some parameters, or the paper's number not reproduced); *does not "
           "hold*; *inconclusive* (the test lacks power). Catalogue: docs/claims.md.", "",
           "| id | verdict | key number vs paper / stated | reason | seconds |",
           "|---|---|---|---|---|"]
  for r, v in zip(records, verdicts):
    lines.append("| " + " | ".join(cell(c) for c in (
        r["id"], _BADGE[v], _key_number(r), r.get("reason", "") if v else "see the error below",
        f"{r.get('seconds', 0):.1f}")) + " |")
  for r, v in zip(records, verdicts):
    lines += ["", f"## {r['id']} ({r['paper']}): {v or 'error'}", "", r["statement"], ""]
    if r.get("reason"):
      lines += [f"**Verdict: {v}.** {r['reason']}", ""]
    if r.get("quantities"):
      lines += ["| quantity | ours | unit | paper / stated |", "|---|---|---|---|"]
      for q in r["quantities"]:
        ref = "" if q.get("reference") is None else f"{number(q['reference'])} ({q.get('source', '')})"
        lines.append("| " + " | ".join(cell(c) for c in (q["name"], _with_uncertainty(q),
                                                          q.get("unit", ""), ref)) + " |")
      lines.append("")
    if v is not None:
      if not r.get("quantities"):
        lines += ["| measured | value |", "|---|---|"]
        lines += ["| " + cell(k) + " | " + cell(number(val)) + " |" for k, val in _flatten(r["measured"])]
        lines.append("")
      lines += [f"Expected: {r.get('expected', '')}. Criterion: {r.get('tolerance', '')}. "
                f"Device: {r.get('device', '')}; {r.get('seconds', 0):.1f} s.", ""]
    if r.get("notes"):
      lines += [r["notes"], ""]
    if r.get("error"):
      lines += ["```", r["error"], "```", ""]
    for fig in r.get("figures", []):
      lines.append(f"![{r['id']}]({fig})")
  return "\n".join(lines) + "\n"
