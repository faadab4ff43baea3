"""DLAB-4: trace-balancing weights ``lr = tr(Theta*)/tr(Theta)``, ``lg = tr(Theta*)/tr(Theta'')``
(Prop. 3, eq. 13); the paper reports a loss minimum near the predicted ``lg/lr ~ 3``.

Setting: DLAB-3's (``x1 x2`` on the unit circle, labels ``d_{x1} f = x2``, m = 10 angles
``~ N(0, 1)``, analytic NTK of 3 hidden erf layers), in two readings: our ``W_std = 1.5``
and the paper's initialisation as we assume it (PyTorch's default ``nn.Linear``,
``W_std = 1/sqrt(3)``; the paper states neither). Weights by
:func:`ntkpde.weights.trace_weights` (``Theta*`` at unit weights), checked against the
traces taken here. Then, as in the paper's Fig. 1, the weights are normalised to
``lr + lg = 1`` and the ratio ``rho = lg/lr`` is swept; for each ``rho`` the
infinite-width ensemble-mean residuals at gradient-flow time ``T``
(:func:`ntkpde.predict.residual_flow`, loss ``1/2 sum w_c ||r_c||^2`` without ``1/n``, so
``T = 40`` is the paper's 40000 steps at learning rate 1e-3) give the L2 training loss
``(||f - L||^2 + ||d_h f - L'||^2) / m``. Also reported for ``T = 4, 400, 4000``.

Verdict: the paper's statement is "a minimum near the predicted ratio", judged at ``T = 40``
at the sweep's resolution: 71 ratios over 3.5 decades are ``0.05`` decades apart, so the
minimum of the sampled curve is located to one grid step. The claim holds as stated if
the loss at the predicted ratio is at most the larger loss at the two grid neighbours of
the sweep's minimum (the prediction cannot be told from the minimum at this resolution);
it holds in a weaker form if the minimum lies elsewhere but within a decade of the
prediction; it does not hold if the minimum is more than a decade away. The predicted
ratio itself depends on the kernel: ours is not the paper's 3 (paper vs ours beside).
"""
import matplotlib.pyplot as plt
import numpy as np

from ntkpde import weights
from ntkpde.predict import residual_flow
from verification import FAILS, HOLDS, WEAKER, Claim, Outcome, Quantity, combine_verdicts
from verification._dynamics import circle

TIMES = (4.0, 40.0, 400.0, 4000.0)
PRIMARY = 40.0
PAPER_RATIO = 3.0
# W_std of the two readings: ours, and PyTorch's default nn.Linear initialisation
# (uniform(+-1/sqrt(fan_in)): std 1/sqrt(3 fan_in)), our assumption about the paper's code.
READINGS = {"ours (W_std 1.5)": 1.5, "paper's init (W_std 1/sqrt(3), assumed)": 1 / np.sqrt(3)}


def _reading(G, labels, m, rhos):
  """Trace weights, the loss curves over ``rhos`` at :data:`TIMES` and the verdict at
  :data:`PRIMARY` for one kernel."""
  L, Lp = labels
  K = np.asarray(G.matrix)
  w = weights.trace_weights(G)
  direct = (np.trace(K) / np.trace(K[:m, :m]), np.trace(K) / np.trace(K[m:, m:]))
  formula_error = max(abs(w["f"] - direct[0]) / direct[0], abs(w["df"] - direct[1]) / direct[1])
  predicted = w["df"] / w["f"]
  r0 = -np.r_[L, Lp]

  def loss(rho, T):
    A = np.r_[np.full(m, 1 / (1 + rho)), np.full(m, rho / (1 + rho))]
    return np.sum(residual_flow(K, r0, A)(T) ** 2) / m
  curves = {T: np.array([loss(r, T) for r in rhos]) for T in TIMES}
  summary = {T: (rhos[np.argmin(c)], loss(predicted, T) / c.min()) for T, c in curves.items()}
  best, excess = summary[PRIMARY]
  curve = curves[PRIMARY]
  i = int(np.argmin(curve))
  resolution = max(curve[max(i - 1, 0)], curve[min(i + 1, len(curve) - 1)]) / curve.min()
  step = float(np.log10(rhos[1] / rhos[0]))
  distance = abs(float(np.log10(best / predicted)))
  where = (f"the T = {PRIMARY:g} loss minimum is at lg/lr = {best:.3g}, {distance:.2f} decades "
           f"({distance / step:.0f} grid steps) from the predicted {predicted:.3g}, whose loss is "
           f"{excess:.3f}x the minimum (resolution band {resolution:.3f}x)")
  if formula_error > 1e-12:
    verdict, reason = FAILS, f"the trace weights differ from tr(Theta*)/tr(Theta) by {formula_error:.1e}"
  elif excess <= resolution:
    verdict, reason = HOLDS, where
  elif distance <= 1.0:
    verdict, reason = WEAKER, where + ": near, but resolved away from the minimum"
  else:
    verdict, reason = FAILS, where + ": more than a decade away"
  return {"w": w, "predicted": predicted, "curves": curves, "summary": summary, "best": best,
          "excess": excess, "resolution": resolution, "step": step, "verdict": verdict,
          "reason": reason, "at_paper": loss(PAPER_RATIO, PRIMARY) / curve.min()}


def run(ctx):
  m = 10
  rhos = np.logspace(-1.5, 2, 71)
  readings = {}
  for name, w_std in READINGS.items():
    G, labels, _ = circle(m, seed=0, w_std=w_std)
    readings[name] = _reading(G, labels, m, rhos)
    ctx.log(f"{name}: lg/lr = {readings[name]['predicted']:.3g}; {readings[name]['reason']}")
  fig, axes = plt.subplots(1, len(readings), figsize=(11, 3.8), squeeze=False)
  for ax, (name, rd) in zip(axes[0], readings.items()):
    for T, curve in rd["curves"].items():
      ax.loglog(rhos, curve / curve.min(), label=f"T = {T:g}")
    ax.axvline(rd["predicted"], color="k", ls="--", label=f"predicted lg/lr = {rd['predicted']:.2f}")
    ax.axvline(PAPER_RATIO, color="r", ls=":", label="paper's predicted and observed ~3")
    ax.set_title(name, fontsize=9)
    ax.set_xlabel("lg / lr  (lr + lg = 1)")
    ax.set_ylabel("L2 training loss / its minimum")
    ax.legend(fontsize=7)
  path = ctx.save_figure(fig, "dlab4.png")
  verdict = combine_verdicts([rd["verdict"] for rd in readings.values()])
  reason = " ".join(f"{name}: {rd['reason']}." for name, rd in readings.items())
  quantities = []
  for name, rd in readings.items():
    quantities += [
        Quantity(f"predicted lg/lr, {name}", rd["predicted"], reference=PAPER_RATIO,
                 source="paper, Prop. 3"),
        Quantity(f"argmin of the loss over lg/lr at T = {PRIMARY:g}, {name}", float(rd["best"]),
                 uncertainty=float(rd["best"] * (10 ** rd["step"] - 1)), reference=PAPER_RATIO,
                 source="paper, Fig. 1"),
        Quantity(f"loss at the predicted ratio / minimum, {name}", rd["excess"],
                 reference=round(rd["resolution"], 4), source="sweep resolution")]
  return Outcome(
      measured={name: {"lr": round(rd["w"]["f"], 4), "lg": round(rd["w"]["df"], 4),
                       "predicted_lg/lr": round(rd["predicted"], 3),
                       **{f"argmin_T{T:g}": round(float(rd["summary"][T][0]), 3) for T in TIMES},
                       **{f"loss_at_pred/min_T{T:g}": round(float(rd["summary"][T][1]), 3)
                          for T in TIMES}} for name, rd in readings.items()},
      verdict=verdict, reason=reason, quantities=quantities,
      expected="loss minimum near the predicted lg/lr (paper: ~3)",
      tolerance="loss at the predicted ratio within the loss band of the minimum's grid "
                "neighbours (sweep resolution 0.05 decades) at T = 40, in both readings",
      figures=[path],
      notes=("The predicted ratio is tr(Theta)/tr(Theta'') and depends on the weight scale: "
             + ", ".join(f"{name}: {rd['predicted']:.3g}" for name, rd in readings.items())
             + " (paper ~3). Why ours differed from the paper's: d_h f carries one more factor of "
               "the first-layer weights than f, so tr(Theta'') grows with W_std^2 relative to "
               "tr(Theta); with PyTorch's default nn.Linear initialisation (std 1/sqrt(3 fan_in), "
               "i.e. W_std = 1/sqrt(3) -- our assumption about the paper's code) the prediction "
               "comes close to the paper's 3. The minimising ratio moves with training time: "
             + "; ".join(f"{name}: " + ", ".join(f"T={T:g}: {rd['summary'][T][0]:.3g}" for T in TIMES)
                         for name, rd in readings.items())
             + ". The trace rule balances mean decay rates, which governs the early phase; late "
               "in training the slowest modes decide."))


CLAIMS = [Claim(id="DLAB-4", paper="derivative-labels-ntk",
                statement="Trace-balancing weights lr = tr(Theta*)/tr(Theta), lg = tr(Theta*)/tr(Theta'') "
                          "(Prop. 3); loss minimum near the predicted lg/lr (paper ~3).", run=run)]
