"""Numerical verifications of the claims catalogued in ``docs/claims.md``.

Each module here defines ``CLAIMS``: a list of :class:`Claim`. ``ntkpde verify``
discovers every module of this package, runs each claim's ``run(ctx)`` and
writes ``report.md`` (table and figures) and ``results.json``.

A claim's ``run`` returns an :class:`Outcome`. ``passed`` says whether the claim,
as the paper states it, holds numerically within the tolerance; a claim that
does not hold is reported with ``passed=False`` and its numbers, which is a
result, not an error. The tolerance of every claim is justified in its module.
"""
import dataclasses
import importlib
import pkgutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional


@dataclasses.dataclass
class Outcome:
  measured: Any
  expected: str
  tolerance: str
  passed: bool
  figures: List[str] = dataclasses.field(default_factory=list)
  notes: str = ""
  device: Optional[str] = None  # set when the numbers come from elsewhere (stored GPU run)


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
