"""Finite-width parts of claims whose analytic parts live in other modules.

* :func:`opk1_finite_part` -- OPK-1, finite half: the empirical residual block Gram of
  finite networks approaches the analytic one as the width grows (a part of
  ``verification.opk1.PARTS``).
* :func:`dlab3_training_part` -- DLAB-3, training half: convergence of the value residual
  with and without derivative labels (a part of ``verification.dlab3.PARTS``).
* :func:`stored_gpu_outcome` -- results of ``benchmarks/gpu_finite_width.py`` stored in
  ``docs/gpu_results/finite_width.json``, used by ``--full`` runs without a GPU.
"""
import json
from pathlib import Path

import jax
import numpy as np

import ntkpde
from ntkpde import finite, operators, training
from verification import (B_STD, FAILS, HOLDS, INCONCLUSIVE, W_STD, PartResult, Quantity,
                          rate_verdict)


def opk1_finite_part(ctx) -> PartResult:
  """2-D Laplacian interior + Neumann boundary channels (a mixed block), one-hidden-layer
  erf MLP (quick) or two hidden layers (full).

  Check: the log-log slope of the seed-rms relative Frobenius error over the widths against
  the ``width^-1/2`` law (OPK-2), two-sided with the bootstrap spread over seeds
  (:func:`verification.rate_verdict`)."""
  coords = ("x", "y")
  rng = np.random.default_rng(0)
  angle = rng.uniform(0, 2 * np.pi, 4)
  chans = [("r", operators.parse("u_xx + u_yy", coords), rng.uniform(-0.7, 0.7, (6, 2))),
           ("n", operators.normal_derivative(coords, ("x", "y")),
            np.stack([np.cos(angle), np.sin(angle)], 1))]
  widths = [64, 256, 1024] if ctx.quick else [64, 256, 1024, 4096]
  seeds = list(range(8))       # 3 seeds left the slope's band wider than half the rate
  depth = 1 if ctx.quick else 2
  res = finite.width_sweep(lambda w: ntkpde.mlp(depth, w, "erf", W_STD, B_STD), chans, widths,
                           seeds, log=ctx.log)
  slope, spread = res["slope"], res["bootstrap_slope_std"]
  verdict, reason = rate_verdict(slope, spread, -0.5, "empirical block Gram error vs width")
  return PartResult(
      "finite width (empirical block Gram -> analytic)", verdict=verdict, reason=reason,
      quantities=[Quantity("finite-width error slope in width", slope, spread, "", -0.5, "stated"),
                  Quantity(f"rms relative Frobenius error at width {widths[-1]}",
                           float(res["rms"][-1]))],
      notes=f"Finite half: seed-rms relative Frobenius errors {np.round(res['rms'], 4).tolist()} "
            f"at widths {widths} ({len(seeds)} seeds, depth {depth}; Laplacian and Neumann "
            f"channels in 2-D); slope {slope:.2f} +- {spread:.2f}.")


def dlab3_training_part(ctx) -> PartResult:
  """Trains the paper's DLAB-3 problem (``x1 x2`` on the unit circle, labels ``d_1 f = x2``,
  3 hidden erf layers, NTK parameterisation) twice from the same initialisation: on the
  value channel alone (derivative weight 0) and with the derivative labels (weight 1), same
  loss normalisation ``1/(2n)`` and step ``eta = n / lambda_max`` of the analytic block Gram.
  Measured: the value loss ``1/(2n) ||f - y||^2`` after the run, per seed, and the log of its
  ratio with / without derivative labels, ``m +- s`` (mean over seeds, standard error). The
  paper's claim (slower with labels) holds if ``m - 3 s > 0``, does not hold if
  ``m + 3 s < 0``, and is inconclusive otherwise (e.g. seeds that disagree)."""
  from verification._dynamics import circle_channels
  chans, targets, _ = circle_channels(10, seed=0)
  width, steps = (256, 300) if ctx.quick else (512, 2000)
  seeds = list(range(3 if ctx.quick else 8))
  net = ntkpde.mlp(3, width, "erf", W_STD, B_STD)
  n = 2 * len(targets[0])
  K = np.asarray(ntkpde.gram(net.kernel_fn, chans).matrix)
  eta = n / np.linalg.eigvalsh(K).max()
  rows = []
  for seed in seeds:
    _, params = net.init_fn(jax.random.PRNGKey(seed), (-1, 2))
    out = [training.train(net.apply_fn, params, chans, targets, {"f": 1.0, "df": w}, eta, steps,
                          checkpoints=[steps]).losses["f"][-1] for w in (0.0, 1.0)]
    rows.append(out)
  rows = np.asarray(rows)
  slower = int(np.sum(rows[:, 1] > rows[:, 0]))
  ctx.log(f"value loss without / with derivative labels: {rows.tolist()}")
  log_ratio = np.log(rows[:, 1] / rows[:, 0])
  mean, spread = float(log_ratio.mean()), float(log_ratio.std(ddof=1) / np.sqrt(len(seeds)))
  verdict = HOLDS if mean - 3 * spread > 0 else FAILS if mean + 3 * spread < 0 else INCONCLUSIVE
  return PartResult(
      "training (value loss with vs without derivative labels)",
      verdict=verdict,
      reason=(f"the value loss after {steps} steps is larger with derivative labels in {slower} "
              f"of {len(seeds)} seeds; log ratio with / without {mean:.3g} +- {spread:.2g} "
              f"(standard error over seeds; 3-sigma rule)"),
      quantities=[Quantity("value loss ratio with / without derivative labels (geometric mean)",
                           float(np.exp(mean)), float(np.exp(mean) * spread), reference=1.0,
                           source="> 1 means slower")],
      notes=f"Training part (width {width}, {steps} steps, eta = {eta:.3e}): value losses without "
            f"labels {[float(f'{v:.3g}') for v in rows[:, 0]]}, with labels "
            f"{[float(f'{v:.3g}') for v in rows[:, 1]]}.")


GPU_RESULTS = Path(__file__).resolve().parents[1] / "docs" / "gpu_results" / "finite_width.json"


def stored_gpu_outcome(stage: str, measure, expected: str, tolerance: str, path=None):
  """An ``Outcome`` from the stored GPU run's ``stage``, or ``None``.

  Used only when JAX runs on the CPU and the file (default :data:`GPU_RESULTS`) exists
  and holds a non-quick run with that stage. ``measure(stage_dict)`` applies the claim's
  own criterion and returns the Outcome fields ``measured``, ``verdict``, ``reason`` and
  ``quantities``; the outcome's ``device`` names the stored run's device and date."""
  from verification import Outcome
  path = Path(GPU_RESULTS if path is None else path)
  if jax.default_backend() != "cpu" or not path.exists():
    return None
  record = json.loads(path.read_text())
  if record.get("quick") or stage not in record.get("stages", {}):
    return None
  return Outcome(expected=expected, tolerance=tolerance, **measure(record["stages"][stage]),
                 notes=f"Stored GPU results ({path.name}, stage {stage!r}, {record['date']}); "
                       f"no GPU on this machine.",
                 device=f"stored: {record['device']}")
