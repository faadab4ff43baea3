"""OPK-2: the empirical operator NTK converges to the analytic one like ``width^(-1/2)``.

Setting: 1D Poisson residual channels (``u_xx`` at 6 interior points of [-0.9, 0.9],
``u`` at the boundary points +-1), erf MLP in the NTK parameterisation (W_std 1.5,
b_std 0.1). For each width and seed the empirical block Gram ``K_hat``
(:func:`ntkpde.finite.empirical_gram`) is compared with the analytic block Gram
(:func:`ntkpde.gram`) by ``e = ||K_hat - K||_F / ||K||_F``; the slope of
``log rms_seeds(e)`` against ``log width`` is fitted.

Expected: -1/2. For one hidden layer this is exact at every width, not only
asymptotically: ``K_hat = c + (1/w) sum_j k_j`` with i.i.d. per-neuron terms whose mean
is the analytic kernel, so ``E e^2 = Var / w`` (tests/test_finite.py checks the
decomposition). Deeper networks add an ``O(1/w)`` bias, reported in ``--full`` only.

Verdict (:func:`verification.rate_verdict`, two-sided): holds if ``|slope + 1/2| <= 3 s``
with ``s`` the bootstrap standard deviation of the fitted slope over seeds
(:func:`ntkpde.rates.bootstrap_slope`); a faster or slower resolved rate is a different
form. The per-seed errors are heavy-tailed (the ``u_xx`` terms carry the fourth power of
the first-layer weights), so ``s`` is measured, not assumed; 3 s is a two-sided 99.7 %
band if the slope estimate is roughly normal. In ``--full`` every depth is judged; depth
2's ``O(1/w)`` bias may bend its slope.

``--full`` on a machine without a GPU uses the stored results of
``benchmarks/gpu_finite_width.py`` (widths up to 8192) in
``docs/gpu_results/finite_width.json`` when that file exists, marked with their device.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ntkpde  # noqa: E402
from ntkpde import finite, operators  # noqa: E402
from verification import (B_STD, W_STD, Claim, Outcome, Quantity, combine_verdicts,  # noqa: E402
                          rate_verdict)
from verification._finite_parts import stored_gpu_outcome  # noqa: E402


def poisson_channels():
  return [("r", operators.parse("u_xx", "x"), np.linspace(-0.9, 0.9, 6)[:, None]),
          ("b", operators.identity("x"), np.array([[-1.0], [1.0]]))]


EXPECTED = "slope -0.5"
TOLERANCE = "|slope + 0.5| <= 3 x bootstrap std over seeds (two-sided)"


def _quantities(depth, slope, spread, rms, width):
  return [Quantity(f"error slope in width (depth {depth})", slope, spread, "", -0.5, "stated"),
          Quantity(f"rms relative Frobenius error at width {width} (depth {depth})", rms)]


def _stored_measure(stage):
  slope, spread = stage["slope"], stage["bootstrap_slope_std"]
  verdict, reason = rate_verdict(slope, spread, -0.5, "depth 1 error vs width")
  return {"measured": {"depth1": {"slope": round(slope, 3), "spread": round(spread, 3),
                                  "rms_error_at_max_width": round(float(stage["rms"][-1]), 4),
                                  "widths": stage["widths"]}},
          "verdict": verdict, "reason": reason,
          "quantities": _quantities(1, slope, spread, float(stage["rms"][-1]), stage["widths"][-1])}


def run(ctx):
  if not ctx.quick:
    stored = stored_gpu_outcome("OPK-2 depth 1", _stored_measure, EXPECTED, TOLERANCE)
    if stored is not None:
      return stored
  widths = [64, 128, 256, 512, 1024] if ctx.quick else [64, 128, 256, 512, 1024, 2048, 4096]
  seeds = list(range(12 if ctx.quick else 32))
  depths = [1] if ctx.quick else [1, 2]
  fig, ax = plt.subplots(figsize=(5, 3.5))
  measured, verdicts, reasons, quantities, notes = {}, [], [], [], []
  for depth in depths:
    ctx.log(f"depth {depth}: widths {widths}, {len(seeds)} seeds")
    res = finite.width_sweep(lambda w: ntkpde.mlp(depth, w, "erf", W_STD, B_STD),
                             poisson_channels(), widths, seeds, log=ctx.log)
    spread = res["bootstrap_slope_std"]
    verdict, reason = rate_verdict(res["slope"], spread, -0.5, f"depth {depth} error vs width")
    verdicts.append(verdict)
    reasons.append(reason)
    quantities += _quantities(depth, res["slope"], spread, float(res["rms"][-1]), widths[-1])
    measured[f"depth{depth}"] = {"slope": round(res["slope"], 3), "spread": round(spread, 3),
                                 "rms_error_at_max_width": round(float(res["rms"][-1]), 4)}
    notes.append(f"depth {depth}: rms errors {np.round(res['rms'], 4).tolist()} at widths "
                 f"{widths}; per-seed slopes {np.round(res['seed_slopes'], 2).tolist()}.")
    w = np.asarray(widths)
    for j in range(len(seeds)):
      ax.loglog(w, res["errors"][:, j], ".", color=f"C{depth - 1}", alpha=0.3)
    ax.loglog(w, res["rms"], "o-", color=f"C{depth - 1}",
              label=f"depth {depth}: slope {res['slope']:.2f} +- {spread:.2f}")
  ax.loglog(w, res["rms"][0] * (w / w[0]) ** -0.5, "k--", label="width^-1/2")
  ax.set_xlabel("width")
  ax.set_ylabel("||K_hat - K||_F / ||K||_F")
  ax.legend(fontsize=8)
  path = ctx.save_figure(fig, "opk2_width_sweep.png")
  verdict = combine_verdicts(verdicts)
  return Outcome(measured=measured, expected=EXPECTED, tolerance=TOLERANCE, verdict=verdict,
                 reason=" ".join(r for v, r in zip(verdicts, reasons) if v == verdict),
                 quantities=quantities, figures=[path], notes=" ".join(notes))


CLAIMS = [Claim(id="OPK-2", paper="operator-informed-ntk",
                statement="Relative Frobenius error between empirical and analytic operator NTK "
                          "decays like width^(-1/2).", run=run)]
