"""Numerical verifications of the claims catalogued in ``docs/claims.md``.

Each module here defines ``CLAIMS``: a list of :class:`Claim`. ``ntkpde verify``
discovers every module of this package, runs each claim's ``run(ctx)`` and
writes ``report.md`` (rendered by :mod:`verification.report`) and ``results.json``.

A claim's ``run`` returns an :class:`Outcome` with a graded ``verdict`` (one of
:data:`VERDICTS`) and a one-sentence ``reason``; ``passed`` is true only for
:data:`HOLDS`. A claim that does not hold is a result, not an error. ``quantities``
are the named numbers behind the verdict (value, uncertainty, unit, and the paper's or
the stated value beside it). The tolerance of every claim is justified in its module.
"""
import dataclasses
import importlib
import pkgutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

HOLDS = "holds as stated"
WEAKER = "holds in a weaker or different form"
FAILS = "does not hold"
INCONCLUSIVE = "inconclusive"
VERDICTS = (HOLDS, WEAKER, FAILS, INCONCLUSIVE)


@dataclasses.dataclass
class Quantity:
  """A named measured number: ``value +- uncertainty`` in ``unit`` (``""``: dimensionless),
  with ``reference``, the paper's or the stated value, and ``source`` saying which
  (e.g. ``"paper"``, ``"stated"``, ``"bound"``)."""
  name: str
  value: Any
  uncertainty: Optional[float] = None
  unit: str = ""
  reference: Any = None
  source: str = ""


@dataclasses.dataclass
class Outcome:
  """What a claim's ``run`` returns. Give ``verdict`` (one of :data:`VERDICTS`) and
  ``reason``; ``passed`` follows from the verdict (true only for :data:`HOLDS`). A bare
  ``passed`` without a verdict means holds / does not hold. The first of ``quantities``
  is the claim's key number in the report's summary."""
  measured: Any
  expected: str
  tolerance: str
  passed: Optional[bool] = None
  figures: List[str] = dataclasses.field(default_factory=list)
  notes: str = ""
  device: Optional[str] = None  # set when the numbers come from elsewhere (stored GPU run)
  verdict: Optional[str] = None
  reason: str = ""
  quantities: List[Quantity] = dataclasses.field(default_factory=list)

  def __post_init__(self):
    if self.verdict is None:
      if self.passed is None:
        raise ValueError("an Outcome needs a verdict (or passed).")
      self.verdict = HOLDS if self.passed else FAILS
    if self.verdict not in VERDICTS:
      raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}.")
    if self.passed is not None and bool(self.passed) != (self.verdict == HOLDS):
      raise ValueError(f"passed={self.passed} contradicts the verdict {self.verdict!r}.")
    self.passed = self.verdict == HOLDS


def rate_verdict(slope: float, spread: float, stated: float, what: str,
                 k: float = 3.0) -> Tuple[str, str]:
  """``(verdict, reason)`` for a fitted log-log ``slope`` with standard deviation ``spread``
  against the ``stated`` rate, two-sided with a ``k``-sigma band ``b = k spread``.

  The stated rate's sign says where the quantity vanishes: ``stated < 0`` as ``x -> inf``
  (an error against width), ``stated > 0`` as ``x -> 0`` (a bias against a step). With
  ``a = slope * sign(stated)`` and ``p = |stated|``:

  * ``b >= p``: inconclusive (the fit cannot tell the rate from no decay);
  * ``|a - p| <= b``: holds as stated if ``b < p / 2`` (the test tells the stated rate
    from one 50 % faster or slower), else inconclusive (consistent, but without power);
  * ``a > p + b``: a faster rate -- a different form, not a pass;
  * ``b < a < p - b``: vanishes, but slower -- a weaker form;
  * otherwise (no resolved decay): does not hold.
  """
  if not np.isfinite(spread):
    return INCONCLUSIVE, f"{what}: slope {slope:.2f} has no uncertainty estimate (too few points)."
  band, p = k * spread, abs(stated)
  a = slope * np.sign(stated)
  fit = f"{what}: slope {slope:.2f} +- {spread:.2f}"
  if band >= p:
    return INCONCLUSIVE, (f"{fit} cannot resolve the stated {stated:g} from no decay at {k:g} "
                          f"sigma; more draws or a wider range would decide.")
  if abs(a - p) <= band:
    if band >= p / 2:
      return INCONCLUSIVE, (f"{fit} is consistent with the stated {stated:g}, but its {k:g}-sigma "
                            f"band also holds rates 50 % off; more draws would decide.")
    return HOLDS, f"{fit} agrees with the stated {stated:g} within {k:g} sigma."
  if a > p + band:
    return WEAKER, f"{fit} is faster than the stated {stated:g}: a different (sharper) rate."
  if a > band:
    return WEAKER, f"{fit} vanishes, but slower than the stated {stated:g}."
  return FAILS, f"{fit} shows no resolved decay (stated {stated:g})."


def combine_verdicts(verdicts) -> str:
  """The verdict of a claim made of parts: does not hold if any part fails; else
  inconclusive if any part is; else a weaker form if any part is; else holds."""
  for v in (FAILS, INCONCLUSIVE, WEAKER):
    if v in verdicts:
      return v
  return HOLDS


W_STD, B_STD = 1.5, 0.1  # weight / bias standard deviations of the claims' erf networks


@dataclasses.dataclass
class Check:
  """One computed block compared with one independent route; errors relative to the block."""
  label: str
  route: str
  error: float
  tolerance: float
  passed: bool


@dataclasses.dataclass
class PartResult:
  """One part of a claim (e.g. a route, the finite-width half, a training run).

  A part made of :class:`Check` s holds when every check passes (``verdict`` may be left
  out); any other part gives its ``verdict`` and ``reason``. :func:`combine_parts` makes
  the claim's :class:`Outcome` from its parts."""
  name: str
  checks: List[Check] = dataclasses.field(default_factory=list)
  quantities: List[Quantity] = dataclasses.field(default_factory=list)
  verdict: Optional[str] = None
  reason: str = ""
  figures: List[str] = dataclasses.field(default_factory=list)
  notes: str = ""

  def __post_init__(self):
    if self.verdict is None:
      if not self.checks:
        raise ValueError(f"part {self.name!r} has neither checks nor a verdict.")
      self.verdict = HOLDS if all(c.passed for c in self.checks) else FAILS
    if self.verdict not in VERDICTS:
      raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}.")
    if self.checks:
      worst = max(self.checks, key=lambda c: c.error / c.tolerance)
      self.quantities = [Quantity(f"{self.name}: worst error / tolerance ({worst.label})",
                                  worst.error / worst.tolerance, reference=1.0,
                                  source="bound")] + self.quantities
      if not self.reason:
        self.reason = (f"{sum(c.passed for c in self.checks)}/{len(self.checks)} blocks within "
                       f"tolerance, worst {worst.label} error {worst.error:.1e} vs tolerance "
                       f"{worst.tolerance:.1e}")

  @property
  def passed(self) -> bool:
    return self.verdict == HOLDS

  def summary(self) -> str:
    return f"{self.name}: {self.reason}"


def combine_parts(parts: List[PartResult], expected: str, tolerance: str,
                  figures: List[str] = ()) -> "Outcome":
  """The :class:`Outcome` of a claim made of ``parts``: the verdict by
  :func:`combine_verdicts`, the reasons of the parts that decide it, all quantities,
  ``figures`` followed by the parts' figures, the parts' notes."""
  verdict = combine_verdicts([p.verdict for p in parts])
  deciding = [p for p in parts if p.verdict == verdict]
  return Outcome(
      measured={p.name: p.summary() for p in parts}, expected=expected, tolerance=tolerance,
      verdict=verdict, reason=" ".join(f"{p.name}: {p.reason.rstrip('.')}." for p in deciding),
      quantities=[q for p in parts for q in p.quantities],
      figures=list(figures) + [f for p in parts for f in p.figures],
      notes="\n\n".join(p.notes for p in parts if p.notes))


@dataclasses.dataclass
class Context:
  """What a claim gets: problem sizes (``quick``), where to put figures, a logger."""
  quick: bool
  out_dir: Path
  log: Callable[[str], None] = print

  def figure(self, name: str) -> Path:
    (self.out_dir / "figures").mkdir(parents=True, exist_ok=True)
    return self.out_dir / "figures" / name

  def save_figure(self, fig, name: str, dpi: int = 120) -> str:
    """Writes ``fig`` as ``figures/name`` (atomically), closes it, returns the path."""
    from ntkpde.reporting import save_figure
    return save_figure(fig, self.figure(name), dpi)


@dataclasses.dataclass
class Claim:
  id: str
  paper: str
  statement: str
  run: Callable[[Context], Outcome]


def all_claims() -> Dict[str, Claim]:
  """Every claim of every module in this package, by id."""
  claims: Dict[str, Claim] = {}
  for info in pkgutil.iter_modules(__path__):
    module = importlib.import_module(f"{__name__}.{info.name}")
    for claim in getattr(module, "CLAIMS", []):
      if claim.id in claims:
        raise RuntimeError(f"claim id {claim.id} is defined twice.")
      claims[claim.id] = claim
  return dict(sorted(claims.items()))
