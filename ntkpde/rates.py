"""Convergence rates: log-log slopes and their sampling spread.

A rate statement ``y ~ C x^p`` (an error against width, a mean squared error against the
number of samples, a bias against a step) is judged by the least-squares slope of
``log y`` against ``log x``. When every ``y`` is a statistic of repeated random draws
(seeds, Monte Carlo repetitions), the slope's uncertainty is the standard deviation of
the slope over bootstrap resamples of the draws (Efron & Tibshirani 1993, ch. 6): the
draws of heavy-tailed errors are resampled, not assumed normal.
"""
from typing import Tuple

import numpy as np

from ntkpde import _checks

BOOTSTRAP_RESAMPLES = 200


def loglog_slope(x, y) -> Tuple[float, float, float]:
  """Least-squares fit ``log y = slope * log x + c``: returns ``(slope, c, stderr)`` with the
  standard error of the slope from the residuals (``nan`` with only two distinct ``x``)."""
  lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
  if lx.shape != ly.shape or lx.size < 2 or np.ptp(lx) == 0:
    raise ValueError("loglog_slope needs at least two distinct x and one y per x.")
  if not (np.all(np.isfinite(lx)) and np.all(np.isfinite(ly))):
    raise ValueError("loglog_slope needs positive finite x and y.")
  A = np.stack([lx, np.ones_like(lx)], axis=1)
  (slope, c), *_ = np.linalg.lstsq(A, ly, rcond=None)
  dof = lx.size - 2
  if dof <= 0:
    return float(slope), float(c), float("nan")
  s2 = np.sum((ly - A @ np.array([slope, c])) ** 2) / dof
  return float(slope), float(c), float(np.sqrt(s2 / np.sum((lx - lx.mean()) ** 2)))


_REDUCERS = {"rms": lambda v: np.sqrt(np.mean(v ** 2, axis=1)), "mean": lambda v: np.mean(v, axis=1)}


def bootstrap_slope(x, samples, reduce: str = "rms", resamples: int = BOOTSTRAP_RESAMPLES,
                    seed: int = 0) -> Tuple[float, float]:
  """``(slope, spread)`` of ``log reduce(samples) ~ slope log x``.

  ``samples`` has shape ``(len(x), n_draws)``: column ``j`` is draw ``j`` (a seed, a Monte
  Carlo repetition) at every ``x``; ``reduce`` is ``"rms"`` (root mean square over draws,
  for errors whose square has the stated rate's mean) or ``"mean"``. ``spread`` is the
  standard deviation of the slope over ``resamples`` resamples of the draws with
  replacement (the same draw columns at every ``x``), generator seeded by ``seed``.
  """
  _checks.integer(resamples, "resamples", 2, "the spread is a standard deviation over them")
  if reduce not in _REDUCERS:
    raise ValueError(f"reduce must be one of {sorted(_REDUCERS)}, got {reduce!r}.")
  values = np.asarray(samples, float)
  if values.ndim != 2 or values.shape[0] != len(x) or values.shape[1] < 2:
    raise ValueError(f"samples must have shape (len(x), n_draws >= 2) = ({len(x)}, n), got "
                     f"{values.shape}.")
  stat = _REDUCERS[reduce]
  slope = loglog_slope(x, stat(values))[0]
  rng = np.random.default_rng(seed)
  n = values.shape[1]
  boot = [loglog_slope(x, stat(values[:, rng.integers(0, n, n)]))[0] for _ in range(resamples)]
  return slope, float(np.std(boot))
