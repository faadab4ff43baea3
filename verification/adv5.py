"""ADV-5: vanilla-GAN discriminator in its NTK regime: stationary points satisfy
``sigma(f_inf) = rho`` on the empirical support (injective kernel); linearised flow around it.

Claims (adversarial-PINN paper, eqs. 105-109): ``d f/dt = 2 T_{kD,gamma^}(rho - sigma(f))``;
a stationary point has ``T(rho - sigma(f_inf)) = 0``, so ``sigma(f_inf) = rho`` on the
support when the kernel matrix there is injective; near it
``d h/dt = -2 T sigma'(f_inf) h + O(||h||^2)``.

Two settings (:class:`verification._dynamics.Discriminator`, the flow integrated with
``solve_ivp`` on the support: BDF with the exact Jacobian for long horizons, DOP853
with rtol 1e-12 for the linearisation test):

(a) The PINN case: real = ``delta_0``, fake = the N residual samples. Then ``rho`` is 1
    at 0 and 0 at every ``r_i``: ``sigma(f) = rho`` has no finite solution, so there is
    no stationary point; we report that ``sigma(f_t) -> rho`` (max gap vs t and its
    log-log slope, measured about -1/2) while ``f_t(0)`` grows like ``log t``.
(b) A finite stationary point: real ``nu = 1/2 delta_0 + 1/2 mu_r``, fake
    ``mu = 0.1 delta_0 + 0.9 mu_r`` (10 % of the generator's residuals already zero), so
    ``rho = nu / (nu + mu)`` is in (0, 1) on the support. Checks: (1) the flow converges
    to ``sigma(f) = rho`` (tolerance 1e-8 after ``30 / lambda_min`` of the linearised
    operator); (2) the linearised flow (:func:`ntkpde.predict.residual_flow` with weights
    ``w sigma'(f_inf)``, learning rate 2) matches the nonlinear flow from
    ``f_inf + eps h0`` with error ``O(eps^2)``: fitted exponent in [1.8, 2.2] over
    ``eps = 1e-1 .. 1e-3`` (a first-order error would give 1).
"""
import matplotlib.pyplot as plt
import numpy as np
import scipy.integrate
from scipy.special import expit, logit

from ntkpde.predict import residual_flow
from verification import FAILS, WEAKER, Claim, Outcome, Quantity
from verification._dynamics import Discriminator


def flow_on_support(K, w, rho, f0, times, rtol=1e-12, stiff=False):
  """The nonlinear flow on the support. ``stiff``: BDF with the exact Jacobian
  ``-2 K diag(w sigma'(f))`` for long horizons (the rates span cond(K_SS))."""
  def rhs(_, f):
    return 2 * K @ (w * (rho - expit(f)))

  def jac(_, f):
    s = expit(f)
    return -2 * K * (w * s * (1 - s))[None, :]
  method = dict(method="BDF", jac=jac) if stiff else dict(method="DOP853")
  sol = scipy.integrate.solve_ivp(rhs, (0, times[-1]), f0, t_eval=times, rtol=rtol, atol=1e-14,
                                  **method)
  return sol.y.T


def run(ctx):
  D = Discriminator()
  N, K = D.N, D.K_SS
  nS = N + 1
  # (a) no finite stationary point.
  w_a = np.r_[np.full(N, 1 / (2 * N)), 0.5]
  rho_a = np.r_[np.zeros(N), 1.0]
  times_a = np.logspace(-1, 4, 30)
  f_a = flow_on_support(K, w_a, rho_a, np.zeros(nS), times_a, rtol=1e-10, stiff=True)
  gap_a = np.abs(expit(f_a) - rho_a).max(axis=1)
  slope_a = np.polyfit(np.log(times_a[-10:]), np.log(gap_a[-10:]), 1)[0]
  # (b) finite stationary point.
  p = np.r_[np.full(N, 0.5 / N), 0.5]
  q = np.r_[np.full(N, 0.9 / N), 0.1]
  w = (p + q) / 2
  rho = p / (p + q)
  f_star = logit(rho)
  s_prime = rho * (1 - rho)
  lin_rates = np.linalg.eigvalsh(2 * np.sqrt(w * s_prime)[:, None] * K * np.sqrt(w * s_prime)[None, :])
  T = 30 / lin_rates[0]
  f_b = flow_on_support(K, w, rho, np.zeros(nS), np.array([T / 10, T]), rtol=1e-11, stiff=True)
  stationary_gap = float(np.abs(expit(f_b[-1]) - rho).max())
  h0 = np.random.default_rng(0).normal(size=nS)
  h0 /= np.linalg.norm(h0)
  t1 = 1 / lin_rates[nS // 2]
  linear = residual_flow(K, h0, w * s_prime, learning_rate=2.0)(t1)
  eps = np.array([1e-1, 3e-2, 1e-2, 3e-3, 1e-3])
  errors = np.array([np.linalg.norm(flow_on_support(K, w, rho, f_star + e * h0, np.array([t1]))[-1]
                                    - f_star - e * linear) for e in eps])
  order = np.polyfit(np.log(eps), np.log(errors), 1)[0]
  fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
  axes[0].loglog(times_a, gap_a, "o-", ms=3, label=f"(a) max|sigma(f_t) - rho|, slope {slope_a:.2f}")
  axes[0].loglog(times_a, np.abs(f_a[:, -1]), "s-", ms=3, label="(a) f_t(0)")
  axes[0].set_xlabel("t")
  axes[0].legend(fontsize=8)
  axes[1].loglog(eps, errors, "o-", label=f"(b) nonlinear - linearised, order {order:.2f}")
  axes[1].loglog(eps, errors[0] * (eps / eps[0]) ** 2, "k:", label="eps^2")
  axes[1].set_xlabel("eps = ||h0||")
  axes[1].legend(fontsize=8)
  path = ctx.save_figure(fig, "adv5.png")
  held = stationary_gap <= 1e-8 and 1.8 <= order <= 2.2
  return Outcome(
      measured={"(b) max|sigma(f_T) - rho|": float(f"{stationary_gap:.1e}"),
                "(b) linearisation error order": round(float(order), 3),
                "(a) max|sigma(f_t) - rho| at t=1e4": float(f"{gap_a[-1]:.2e}"),
                "(a) late slope": round(float(slope_a), 3),
                "(a) f_t(0) at t=1e4": round(float(f_a[-1, -1]), 3)},
      expected="sigma(f_inf) = rho on the support; linearised flow exact to O(h^2)",
      tolerance="stationarity 1e-8; error order in [1.8, 2.2]",
      verdict=WEAKER if held else FAILS, figures=[path],
      reason=(f"where rho is in (0, 1) the flow reaches sigma(f) = rho (to {stationary_gap:.0e}) and "
              f"the linearisation is second-order accurate (order {order:.2f}); in the PINN case "
              f"itself (real = delta_0) rho is 0/1 on the support and no finite stationary point "
              f"exists (f_t(0) grows like log t): the statement holds only for mixed real data"
              if held else f"stationarity gap {stationary_gap:.1e} or linearisation order "
              f"{order:.2f} outside [1.8, 2.2]"),
      quantities=[Quantity("(b) max |sigma(f_T) - rho|", float(stationary_gap), reference=1e-8,
                           source="tolerance"),
                  Quantity("(b) linearisation error order", float(order), reference=2.0,
                           source="stated (second order)"),
                  Quantity("(a) PINN case: max |sigma(f_t) - rho| at t = 1e4", float(gap_a[-1]),
                           reference=0.0, source="never reached")],
      notes=("In the PINN case itself (real = delta_0, distinct residuals) rho is 0/1 on the "
             "support, so no finite stationary point exists: sigma(f_t) approaches rho like "
             f"t^{slope_a:.2f} while f_t(0) grows like log t. The stationary-point statement and "
             "its linearisation hold where rho is in (0, 1) (setting (b))."))


CLAIMS = [Claim(id="ADV-5", paper="adversarial-pinn-ntk",
                statement="Vanilla-GAN discriminator: stationary points satisfy sigma(f_inf) = rho on "
                          "the empirical support (injective kernel); linearised flow around it.",
                run=run)]
