"""DLAB-4: trace-balancing weights ``lr = tr(Theta*)/tr(Theta)``, ``lg = tr(Theta*)/tr(Theta'')``
(Prop. 3, eq. 13); the paper reports a loss minimum near the predicted ``lg/lr ~ 3``.

Setting: DLAB-3's (``x1 x2`` on the unit circle, labels ``d_{x1} f = x2``, m = 10 angles
``~ N(0, 1)``, analytic NTK of 3 hidden erf layers). Weights by
:func:`ntkpde.weights.trace_weights` (``Theta*`` at unit weights), checked against the
traces taken here. Then, as in the paper's Fig. 1, the weights are normalised to
``lr + lg = 1`` and the ratio ``rho = lg/lr`` is swept; for each ``rho`` the
infinite-width ensemble-mean residuals at gradient-flow time ``T``
(:func:`ntkpde.predict.residual_flow`, loss ``1/2 sum w_c ||r_c||^2`` without ``1/n``, so
``T = 40`` is the paper's 40000 steps at learning rate 1e-3) give the L2 training loss
``(||f - L||^2 + ||d_h f - L'||^2) / m``. Also reported for ``T = 4, 400, 4000``.

Verdict: the paper's statement is "a minimum near the predicted ratio". We call it held
at ``T = 40`` if the loss at the predicted ratio is within 25 % of the sweep's minimum
(a minimum read off a finite sweep, as in the paper's figure, is not located more
precisely than that; the sweep has 71 ratios over 3.5 decades). The predicted ratio
itself depends on the kernel: ours is not the paper's 3.
"""
import matplotlib.pyplot as plt
import numpy as np

from ntkpde import weights
from ntkpde.predict import residual_flow
from verification import Claim, Outcome
from verification._dynamics import circle

TIMES = (4.0, 40.0, 400.0, 4000.0)
PRIMARY = 40.0


def run(ctx):
  m = 10
  G, (L, Lp), _ = circle(m, seed=0)
  K = np.asarray(G.matrix)
  w = weights.trace_weights(G)
  direct = (np.trace(K) / np.trace(K[:m, :m]), np.trace(K) / np.trace(K[m:, m:]))
  formula_error = max(abs(w["f"] - direct[0]) / direct[0], abs(w["df"] - direct[1]) / direct[1])
  predicted = w["df"] / w["f"]
  ctx.log(f"trace weights lr = {w['f']:.4g}, lg = {w['df']:.4g}, lg/lr = {predicted:.3g}")
  rhos = np.logspace(-1.5, 2, 71)
  r0 = -np.r_[L, Lp]

  def loss(rho, T):
    A = np.r_[np.full(m, 1 / (1 + rho)), np.full(m, rho / (1 + rho))]
    return np.sum(residual_flow(K, r0, A)(T) ** 2) / m
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  summary = {}
  for T in TIMES:
    curve = np.array([loss(r, T) for r in rhos])
    at_pred = loss(predicted, T)
    summary[T] = (rhos[np.argmin(curve)], at_pred / curve.min())
    ax.loglog(rhos, curve / curve.min(), label=f"T = {T:g}")
  ax.axvline(predicted, color="k", ls="--", label=f"predicted lg/lr = {predicted:.2f}")
  ax.axvline(3.0, color="r", ls=":", label="paper's predicted 3")
  ax.set_xlabel("lg / lr  (lr + lg = 1)")
  ax.set_ylabel("L2 training loss / its minimum")
  ax.legend(fontsize=8)
  path = ctx.save_figure(fig, "dlab4.png")
  best, excess = summary[PRIMARY]
  passed = formula_error <= 1e-12 and excess <= 1.25
  return Outcome(
      measured={"lr": round(w["f"], 4), "lg": round(w["df"], 4), "predicted_lg/lr": round(predicted, 3),
                **{f"argmin_T{T:g}": round(float(summary[T][0]), 3) for T in TIMES},
                **{f"loss_at_pred/min_T{T:g}": round(float(summary[T][1]), 3) for T in TIMES}},
      expected="loss minimum near the predicted lg/lr (paper: ~3)",
      tolerance="loss at the predicted ratio <= 1.25 x sweep minimum at T = 40",
      passed=bool(passed), figures=[path],
      notes=(f"Our kernel predicts lg/lr = {predicted:.3g} (the paper's network gave ~3; the ratio "
             f"is tr(Theta)/tr(Theta'') and depends on the architecture). The minimising ratio "
             f"moves with training time: "
             + ", ".join(f"T={T:g}: {summary[T][0]:.3g} (loss at prediction {summary[T][1]:.2f}x min)"
                         for T in TIMES)
             + ". The trace rule balances mean decay rates, which governs the early phase; late "
               "in training the slowest modes decide."))


CLAIMS = [Claim(id="DLAB-4", paper="derivative-labels-ntk",
                statement="Trace-balancing weights lr = tr(Theta*)/tr(Theta), lg = tr(Theta*)/tr(Theta'') "
                          "(Prop. 3); loss minimum near the predicted lg/lr (paper ~3).", run=run)]
