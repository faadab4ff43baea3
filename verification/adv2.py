"""ADV-2: mode-wise aligned weights give per-mode decay ``|r_j(t)| <= |r_j(0)| exp(-l_j a* t)``.

Claim (adversarial-PINN paper, eqs. 167-172): in the eigenbasis ``K = U diag(l) U^T`` the
residual modes obey ``d r~_j/dt = -l_j gamma~_j``; if ``gamma~_j(t) = a_j(t) r~_j(t)`` with
``a_j(t) >= a* > 0`` then ``|r~_j(t)| <= |r~_j(0)| e^{-l_j a* t}`` and
``E(t) <= 1/2 sum_j r~_j(0)^2 e^{-2 l_j a* t}``.

Setting: ``K`` = generator residual NTK (Poisson 1D, :func:`generator_kernel`), scaled by
``1/lmax`` so that one time unit is one fastest-mode e-folding; time-varying aligned
weights ``a_j(t) = a* (1 + 2 sin^2(omega_j t))`` with random ``omega_j``; the ODE
``dr/dt = -K U diag(a(t)) U^T r`` is integrated with ``scipy.integrate.solve_ivp``
(DOP853, rtol 1e-11, atol 1e-14: error ``< 1e-9 ||r0||``, the slack allowed in each mode).
Contrast (not part of the claim): non-aligned constant SPD weights ``A`` with
``lmin(A) = a*`` can break the per-mode bound; we report by how much.
"""
import matplotlib.pyplot as plt
import numpy as np
import scipy.integrate

from ntkpde.predict import residual_flow
from verification import Claim, Outcome, Quantity
from verification._dynamics import energy, generator_kernel


def run(ctx):
  K, r0 = generator_kernel(8)
  K = K / np.linalg.eigvalsh(K)[-1]
  lam, U = np.linalg.eigh(K)
  lam = np.clip(lam, 0, None)
  n = len(K)
  a_star = 1.0
  omega = np.random.default_rng(0).uniform(0.5, 5, n)

  def rhs(t, r):
    a = a_star * (1 + 2 * np.sin(omega * t) ** 2)
    return -K @ (U @ (a * (U.T @ r)))
  times = np.logspace(-2, 3, 60)
  sol = scipy.integrate.solve_ivp(rhs, (0, times[-1]), r0, method="DOP853", t_eval=times,
                                  rtol=1e-11, atol=1e-14)
  modes = np.abs(sol.y.T @ U)                     # |r~_j(t)|
  bound = np.abs(U.T @ r0)[None, :] * np.exp(-lam[None, :] * a_star * times[:, None])
  slack = 1e-9 * np.abs(r0).max()
  excess = np.max(modes - bound) / np.abs(r0).max()
  E = energy(sol.y.T)
  E_bound = 0.5 * np.sum(bound ** 2, axis=1)
  energy_ratio = np.max(E / E_bound)
  # Contrast: constant, non-aligned SPD weights with lmin(A) = a*.
  Y = np.random.default_rng(1).normal(size=(n, n))
  A = Y @ Y.T / n
  A = A + (a_star - np.linalg.eigvalsh(A)[0]) * np.eye(n)
  contrast = np.abs(residual_flow(K, r0, A)(times) @ U)
  visible = bound > 1e-8 * np.abs(r0).max()      # above the integration noise floor
  contrast_excess = float(np.max(contrast[visible] / bound[visible]))
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for j in (0, n // 2, n - 1):
    ax.loglog(times, modes[:, j], color=f"C{j % 10}", label=f"mode {j}, l = {lam[j]:.1e}")
    ax.loglog(times, bound[:, j], "--", color=f"C{j % 10}")
  ax.set_ylim(1e-14, None)
  ax.set_xlabel("t (units of 1/lmax)")
  ax.set_ylabel("|r~_j(t)| (dashed: bound)")
  ax.legend(fontsize=8)
  path = ctx.save_figure(fig, "adv2.png")
  passed = excess <= slack / np.abs(r0).max() and energy_ratio <= 1 + 1e-9
  return Outcome(
      measured={"max (|r~_j| - bound)/||r0||_inf": float(f"{excess:.2g}"),
                "max E/E_bound": float(f"{energy_ratio:.3g}"),
                "non-aligned contrast: max |r~_j|/bound": float(f"{contrast_excess:.3g}")},
      expected="every mode below |r~_j(0)| exp(-l_j a* t); E below the modal sum",
      tolerance="1e-9 ||r0|| (ODE integration error)",
      passed=bool(passed), figures=[path],
      reason=("every mode stays below |r~_j(0)| exp(-l_j a* t) within the ODE error, and the "
              f"energy below the modal sum; non-aligned weights break it (x{contrast_excess:.3g})"
              if passed else f"a mode exceeds its bound by {excess:.2g} of ||r0||"),
      quantities=[Quantity("max (|r~_j| - bound) / ||r0||_inf", float(excess),
                           reference=float(slack / np.abs(r0).max()), source="ODE error"),
                  Quantity("max E / E_bound", float(energy_ratio), reference=1.0, source="<= 1"),
                  Quantity("non-aligned contrast: max |r~_j| / bound", float(contrast_excess))],
      notes=(f"Aligned, time-varying weights (a_j(t) in [a*, 3a*]) respect every modal bound. "
             f"Non-aligned SPD weights with the same lmin(A) = a* exceed the per-mode bound by up "
             f"to a factor {contrast_excess:.3g}: alignment is what the claim needs."))


CLAIMS = [Claim(id="ADV-2", paper="adversarial-pinn-ntk",
                statement="Mode-wise aligned weights with rate a* > 0: every mode decays at least like "
                          "exp(-lambda_j a* t).", run=run)]
