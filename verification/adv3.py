"""ADV-3: IPM (MMD) discriminator in its NTK regime moves along the MMD witness.

Claims (adversarial-PINN paper, eqs. 77-80): for the IPM objective
``max_f E_{delta_0} f - E_{mu_r} f`` the discriminator evolves as ``f_t = f_0 + t f*`` with
``f*(r) = -mean_i kD(r_i, r) + kD(0, r)``, and induces generator weights
``gamma_i = (1/N) d_r f_t(r_i)``.

Setting: :class:`verification._dynamics.Discriminator` (kD = NTK of a 2-hidden-layer erf
MLP on residual values, N = 10 residuals, ``f_0 = 0``: the ensemble mean). With fixed
residual samples the flow's right-hand side is constant and ``f_t = t f*`` is exact
arithmetic, so the check lets the samples move as they do while the generator trains:
``r_i(s) = r_i exp(-s)`` (target 0 fixed). The functional gradient then moves, and the
claim's formula becomes ``f_t = f_0 + int_0^t f*_s ds`` with the witness ``f*_s`` of the
samples at time ``s``; the fixed-sample formula ``t f*_0`` is wrong by ``O(t^2)``, which
the check must see.

Routes: (a) the function-space ODE ``d f(z)/dt = sum_s kD(z, s(t)) g_s`` integrated by
``solve_ivp`` (DOP853, rtol 1e-11) on a grid of 25 residual values and their shifts by
``+-h`` (``h = 1e-4``), the kernel evaluated at the moving samples inside the
right-hand side (neural-tangents' ``kernel_fn``); (b) the closed form by 32-node
Gauss-Legendre quadrature in ``s`` of the witness (ntkpde's operator kernel; the
integrand is analytic in ``s``, quadrature error far below 1e-14), and of ``d_r f*_s``
(``d_z kD(z, s)`` by :func:`ntkpde.operator_kernel`) against central differences of
(a). Tolerances: values ``1e-8`` relative (ODE error ~1e-10); derivatives ``1e-6``
relative (central-difference truncation ``h^2 |f'''| / 6``, ~1e-8 of ``|f'''|``, plus ODE
error / h). As a control of the power, the fixed-sample formula ``t f*_0`` is reported
against (a): it must miss by more than 1e-4.
"""
import matplotlib.pyplot as plt
import numpy as np
import scipy.integrate

import jax
import ntkpde
from ntkpde import operators
from verification import FAILS, HOLDS, Claim, Outcome, Quantity
from verification._dynamics import Discriminator

TIMES = np.array([0.5, 1.0, 2.0, 4.0])
GRID = np.linspace(-1.2, 1.2, 25)


def samples(D, t):
  """The support at time ``t``: residuals ``r_i exp(-t)`` and the target 0."""
  return np.r_[D.r * np.exp(-t), 0.0]


def run(ctx):
  D = Discriminator()
  N, h = D.N, D.h
  g_ipm = np.r_[-np.ones(N) / N, 1.0]                # functional gradient of E_delta0 f - E_mu f
  Z = np.r_[GRID, GRID + h, GRID - h]
  ntk = jax.jit(lambda a, b: D.kernel_fn(a, b, "ntk"))
  sol = scipy.integrate.solve_ivp(
      lambda t, f: np.asarray(ntk(Z[:, None], samples(D, t)[:, None])) @ g_ipm,
      (0, TIMES[-1]), np.zeros(len(Z)), method="DOP853", t_eval=TIMES, rtol=1e-11, atol=1e-13)
  numeric = sol.y.T
  ident, d = operators.identity(("r",)), operators.parse("u_r", ("r",))
  k_val = ntkpde.operator_kernel(D.kernel_fn, ident, ident)
  k_der = ntkpde.operator_kernel(D.kernel_fn, d, ident)
  nodes, weights = np.polynomial.legendre.leggauss(32)

  def integrated(kernel, z, t):
    s = t * (nodes + 1) / 2
    return sum(w * t / 2 * (np.asarray(kernel(z[:, None], samples(D, si)[:, None])) @ g_ipm)
               for si, w in zip(s, weights))
  closed = np.stack([integrated(k_val, GRID, t) for t in TIMES])
  closed_d = np.stack([integrated(k_der, GRID, t) for t in TIMES])
  n = len(GRID)
  value_gap = np.abs(numeric[:, :n] - closed).max() / np.abs(closed).max()
  fd = (numeric[:, n:2 * n] - numeric[:, 2 * n:]) / (2 * h)
  deriv_gap = np.abs(fd - closed_d).max() / np.abs(closed_d).max()
  witness0 = np.asarray(k_val(GRID[:, None], samples(D, 0.0)[:, None])) @ g_ipm
  frozen_gap = np.abs(numeric[:, :n] - TIMES[:, None] * witness0).max() / np.abs(closed).max()
  gamma1 = integrated(k_der, D.r * np.exp(-1.0), 1.0) / N
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  ax.plot(GRID, witness0, "k", label="witness f*_0 (samples at t = 0)")
  for k, t in enumerate(TIMES):
    ax.plot(GRID, closed[k] / t, "-", lw=1, label=f"f_t / t, moving samples, t = {t:g}")
  ax.plot(D.r, np.zeros(N), "o", label="residual samples r_i(0)")
  ax.set_xlabel("residual value r")
  ax.set_ylabel("f_t(r) / t")
  ax.legend(fontsize=7)
  path = ctx.save_figure(fig, "adv3.png")
  held = value_gap <= 1e-8 and deriv_gap <= 1e-6 and frozen_gap > 1e-4
  reason = (f"with moving samples r_i(t) = r_i e^-t, f_t = int_0^t f*_s ds matches the integrated "
            f"flow to {value_gap:.0e} and d_r f_t its finite differences to {deriv_gap:.0e}; the "
            f"fixed-sample formula t f*_0 misses by {frozen_gap:.2g}.")
  return Outcome(
      measured={"f_t vs ODE (moving samples)": float(f"{value_gap:.1e}"),
                "d_r f_t vs finite differences": float(f"{deriv_gap:.1e}"),
                "fixed-sample formula vs ODE": float(f"{frozen_gap:.2g}"),
                "gamma_i at t=1": np.round(gamma1, 4).tolist()},
      expected="f_t = f_0 + int_0^t f*_s ds (= f_0 + t f* for fixed samples); "
               "gamma_i = (1/N) d_r f_t(r_i)",
      tolerance="values 1e-8, derivatives 1e-6 (ODE + finite-difference error)",
      verdict=HOLDS if held else FAILS, reason=reason if held else "the closed form misses: " + reason,
      quantities=[Quantity("f_t vs integrated flow (moving samples), max relative", float(value_gap),
                           reference=1e-8, source="tolerance"),
                  Quantity("d_r f_t vs finite differences, max relative", float(deriv_gap),
                           reference=1e-6, source="tolerance"),
                  Quantity("fixed-sample formula t f*_0 vs flow (power control)", float(frozen_gap),
                           reference=1e-4, source="must exceed")],
      figures=[path],
      notes=("The witness is positive at the target 0 and lowest at the residual samples; as the "
             "samples move towards 0 the discriminator's growth f_t / t flattens, and the induced "
             "weights gamma_i = (1/N) d_r f_t(r_i(t)) follow the moving samples."))


CLAIMS = [Claim(id="ADV-3", paper="adversarial-pinn-ntk",
                statement="IPM/MMD discriminator in the NTK regime moves along the MMD witness f*(r) = "
                          "-mean_i kD(r_i, r) + kD(0, r) and induces gamma_i = (1/N) d_r f_t(r_i).",
                run=run)]
