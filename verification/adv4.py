"""ADV-4: LSGAN discriminator in its NTK regime: ``f_t = exp(-2t T_kD)(f_0 - rho) + rho``.

Claims (adversarial-PINN paper, eqs. 89-94): with ``gamma^ = (mu_r + delta_0) / 2`` and
``rho = d delta_0 / d(2 gamma^)`` (1 at the target 0, 0 at the residual samples), the
discriminator follows ``d f/dt = 2 T_{kD,gamma^}(rho - f)``, solved by
``f_t = exp(-2t T)(f_0 - rho) + rho``, and induces generator weights
``gamma_i = -(1/N)(f_t(r_i) - 1) d_r f_t(r_i)``.

Closed form here: on the support ``S`` the flow is ``residual_flow(K_SS, f_0 - rho,
weights=w, learning_rate=2)`` (``w`` = the masses of ``gamma^``: ``1/(2N)`` per residual,
``1/2`` at 0); off the support and for ``d_r f_t`` it is the ensemble mean of
:func:`ntkpde.predict.gradient_descent_mse_ensemble` with targets ``rho``, weights ``w``,
``learning_rate = 2 |S|`` (its ``1/n`` then gives exactly ``2``) and
``test_operator = d/dr``. Independent routes and tolerances as in ADV-3: ``solve_ivp``
(values 1e-8) and central differences (derivatives 1e-6). ``f_0 = 0`` (ensemble mean).
"""
import matplotlib.pyplot as plt
import numpy as np

from ntkpde import operators
from ntkpde.predict import gradient_descent_mse_ensemble, residual_flow
from verification import Claim, Outcome, Quantity
from verification._dynamics import Discriminator


def run(ctx):
  D = Discriminator()
  N, nS = D.N, len(D.S)
  w = np.r_[np.full(N, 1 / (2 * N)), 0.5]
  rho = np.r_[np.zeros(N), 1.0]
  times = np.array([0.5, 2.0, 8.0, 32.0])
  numeric = D.integrate(lambda fS: 2 * w * (rho - fS), times)
  on_support = rho + residual_flow(D.K_SS, -rho, w, learning_rate=2.0)(times)
  support_gap = np.abs(numeric[:, :nS] - on_support).max()
  ident, d = operators.identity(("r",)), operators.parse("u_r", ("r",))
  ensemble = gradient_descent_mse_ensemble(D.kernel_fn, [("support", ident, D.S[:, None])], [rho],
                                           learning_rate=2.0 * nS, weights=w)
  f_Z = ensemble(times, D.Z[:, None])
  value_gap = np.abs(numeric - f_Z).max()
  df = ensemble(times, D.r[:, None], test_operator=d)
  gamma_closed = -(f_Z[:, :N] - 1) * df / N
  gamma_fd = -(numeric[:, :N] - 1) * D.fd_derivative(numeric) / N
  gamma_gap = np.abs(gamma_fd - gamma_closed).max() / np.abs(gamma_closed).max()
  limit = ensemble(None, D.S[:, None])
  limit_gap = np.abs(limit - rho).max()
  grid = np.linspace(-1.2, 1.2, 200)[:, None]
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for k, t in enumerate(times):
    ax.plot(grid[:, 0], ensemble(t, grid), color=f"C{k}", label=f"f_t, t = {t:g}")
    ax.plot(D.S, numeric[k, :nS], "x", color=f"C{k}")
  ax.plot(D.S, rho, "ko", mfc="none", label="rho on the support")
  ax.set_xlabel("residual value r")
  ax.set_ylabel("discriminator f_t(r)  (x: solve_ivp)")
  ax.legend(fontsize=8)
  path = ctx.save_figure(fig, "adv4.png")
  passed = support_gap <= 1e-8 and value_gap <= 1e-8 and gamma_gap <= 1e-6
  return Outcome(
      measured={"support closed form vs ODE": float(f"{support_gap:.1e}"),
                "f_t(Z) vs ODE": float(f"{value_gap:.1e}"),
                "gamma vs finite differences": float(f"{gamma_gap:.1e}"),
                "max |f_inf - rho| on S": float(f"{limit_gap:.1e}")},
      expected="f_t = exp(-2t T)(f_0 - rho) + rho; gamma_i = -(1/N)(f_t(r_i) - 1) d_r f_t(r_i)",
      tolerance="values 1e-8 (|f| <= 1), derivatives 1e-6 relative",
      passed=bool(passed), figures=[path],
      reason=(f"the closed form matches the integrated flow to {max(support_gap, value_gap):.0e} and "
              f"the weights their finite differences to {gamma_gap:.0e}" if passed else
              f"gaps {support_gap:.1e}, {value_gap:.1e}, {gamma_gap:.1e} beyond 1e-8 / 1e-6"),
      quantities=[Quantity("f_t vs integrated flow", float(value_gap), reference=1e-8, source="tolerance"),
                  Quantity("gamma vs finite differences", float(gamma_gap), reference=1e-6,
                           source="tolerance")],
      notes=(f"At t = inf the discriminator interpolates rho on the support (gap {limit_gap:.1e}, "
             f"K_SS is positive definite: cond {np.linalg.cond(D.K_SS):.1e})."))


CLAIMS = [Claim(id="ADV-4", paper="adversarial-pinn-ntk",
                statement="LSGAN discriminator: f_t = exp(-2t T_kD)(f_0 - rho) + rho; weights "
                          "gamma_i = -(1/N)(f_t(r_i) - 1) d_r f_t(r_i).", run=run)]
