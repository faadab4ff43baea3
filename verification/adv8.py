"""ADV-8: algebraic decay: if ``r^T K gamma <= -c ||r||^{2 alpha}``, ``alpha > 1``, then
``E(t) <= C (1 + t)^{-1/(alpha - 1)}`` (adversarial-PINN paper, eqs. 173-174).

Setting: ``K`` = generator residual NTK (Poisson 1D, 4 interior + 2 boundary points,
scaled to ``lmax = 1``), initial residual with equal content in every eigenmode of ``K``, feedback
``gamma = ||r||^{2(alpha - 1)} r`` in
``dr/dt = -K gamma``, so ``r^T K gamma >= lmin(K) ||r||^{2 alpha}`` with the paper's sign
convention (``dr/dt = K gamma~``, ``gamma~ = -gamma``): ``c = lmin(K)``. The comparison
principle for ``dE/dt <= -c (2E)^alpha`` gives the explicit bound
``E(t) <= (E0^{1-alpha} + c 2^alpha (alpha - 1) t)^{-1/(alpha-1)}``, which is of the form
``C (1 + t)^{-1/(alpha-1)}``. ``scipy.integrate.solve_ivp`` (DOP853, rtol 1e-10, atol
1e-14; relative error ``~1e-8`` over the run, the slack allowed) integrates the ODE for
``alpha = 1.5, 2, 3``; we check the bound at every time and fit the log-log slope of
``E`` over the last decade, expected ``-1/(alpha - 1)`` within 5 % two-sided
(:func:`verification.rate_verdict` with ``3 s = 5 %``; the pre-asymptotic correction is
``O((c t E^{alpha-1})^{-1})``, measured below 1.5 % at these times).
"""
import matplotlib.pyplot as plt
import numpy as np
import scipy.integrate

from verification import FAILS, Claim, Outcome, Quantity, combine_verdicts, rate_verdict
from verification._dynamics import energy, generator_kernel


def run(ctx):
  K, _ = generator_kernel(4)
  K = K / np.linalg.eigvalsh(K)[-1]
  c = np.linalg.eigvalsh(K)[0]
  # Equal content in every eigenmode of K: the slowest mode (rate lmin) must carry a fair
  # share of r0 for the asymptotic regime to be reached within the run.
  r0 = np.linalg.eigh(K)[1] @ np.ones(len(K))
  r0 = r0 / np.linalg.norm(r0)
  E0 = energy(r0)
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  measured, verdicts, reasons, quantities, bound_ok = {}, [], [], [], True
  for k, alpha in enumerate((1.5, 2.0, 3.0)):
    # The bound leaves its plateau at t* = E0^(1-alpha) / (c 2^alpha (alpha-1)); run to 1e4 t*.
    t_end = 1e4 * E0 ** (1 - alpha) / (c * 2 ** alpha * (alpha - 1))
    times = np.logspace(-2, np.log10(t_end), 80)
    times[-1] = t_end

    def rhs(_, r):
      return -(K @ r) * np.dot(r, r) ** (alpha - 1)
    sol = scipy.integrate.solve_ivp(rhs, (0, t_end), r0, method="DOP853", t_eval=times,
                                    rtol=1e-10, atol=1e-14)
    E = energy(sol.y.T)
    bound = (E0 ** (1 - alpha) + c * 2 ** alpha * (alpha - 1) * times) ** (-1 / (alpha - 1))
    worst = float(np.max(E / bound))
    late = times >= t_end / 10
    slope = np.polyfit(np.log(times[late]), np.log(E[late]), 1)[0]
    expected = -1 / (alpha - 1)
    bound_ok &= worst <= 1 + 1e-8
    v, r = rate_verdict(float(slope), 0.05 * abs(expected) / 3, expected, f"alpha = {alpha:g}: late E(t)")
    verdicts.append(v)
    reasons.append(r)
    quantities.append(Quantity(f"late slope of E(t), alpha = {alpha:g}", float(slope),
                               0.05 * abs(expected) / 3, "", expected, "stated"))
    measured[f"alpha={alpha:g}"] = {"max E/bound": round(worst, 4), "late slope": round(float(slope), 4),
                                    "expected slope": round(expected, 4)}
    ax.loglog(times, E, color=f"C{k}", label=f"alpha = {alpha:g}: slope {slope:.3f}")
    ax.loglog(times, bound, "--", color=f"C{k}")
  ax.set_xlabel("t")
  ax.set_ylabel("E(t) (dashed: comparison bound)")
  ax.legend(fontsize=8)
  path = ctx.save_figure(fig, "adv8.png")
  verdict = combine_verdicts(verdicts)
  reason = " ".join(r for v, r in zip(verdicts, reasons) if v == verdict)
  if not bound_ok:
    verdict, reason = FAILS, "E(t) exceeds the comparison bound beyond the ODE error."
  quantities.insert(0, Quantity("max_t E(t) / bound (all alpha)",
                                max(m["max E/bound"] for m in measured.values()), reference=1.0,
                                source="bound"))
  return Outcome(measured=measured,
                 expected="E(t) <= C (1 + t)^(-1/(alpha-1)); late slope -1/(alpha-1)",
                 tolerance="bound slack 1e-8 (ODE error); slope within 5 % (two-sided)",
                 verdict=verdict, reason=reason, quantities=quantities, figures=[path],
                 notes=f"c = lmin(K) = {c:.3g} (K scaled to lmax = 1), E(0) = {E0:.3g}.")


CLAIMS = [Claim(id="ADV-8", paper="adversarial-pinn-ntk",
                statement="If r^T K gamma <= -c ||r||^(2 alpha), alpha > 1, then E(t) <= C (1 + t)^"
                          "(-1/(alpha - 1)).", run=run)]
