"""ADV-6: squared-residual discriminator input: ``dr/dt = K G r`` with ``G`` diagonal.

Claims (adversarial-PINN paper, eqs. 214-226): ``M = K G`` is similar to
``K^{1/2} G K^{1/2}``, congruent to ``G``, so (Sylvester) ``M`` has real eigenvalues and
the inertia (numbers of positive / negative / zero eigenvalues) of ``G``; ``G < 0`` gives
``E(t) <= kappa(K) E(0) exp(-2 lmin(K) |lmax(G)| t)``; ``G > 0`` is expansive,
``E(t) >= E(0) exp(2 lmin(K) lmin(G) t) / kappa(K)``; indefinite ``G`` gives growing and
decaying modes.

Setting: ``K`` = generator residual NTK (Poisson 1D), scaled to ``lmax = 1``; random
diagonal ``G`` (negative, positive, and indefinite sign patterns); the flow is
:func:`ntkpde.predict.residual_flow` with weights ``-G`` (its ODE is ``dr/dt = -K A r``).
Eigenvalues come from ``scipy.linalg.eig`` of ``K G`` with first-order error bounds
``n eps ||M|| kappa_j``; an eigenvalue is counted positive/negative only beyond its bound.
Energies: relative slack ``1e-9`` (the flow's error, ``~n eps cond``, is far below).
"""
import matplotlib.pyplot as plt
import numpy as np

from ntkpde.predict import residual_flow
from verification import Claim, Outcome, Quantity
from verification._dynamics import eigenvalue_error_bounds, energy, generator_kernel


def inertia(values, err):
  return (int(np.sum(values > err)), int(np.sum(values < -err)), int(np.sum(np.abs(values) <= err)))


def run(ctx):
  K, r0 = generator_kernel(8)
  K = K / np.linalg.eigvalsh(K)[-1]
  kmin, kmax = np.linalg.eigvalsh(K)[[0, -1]]
  n = len(K)
  rng = np.random.default_rng(0)
  mags = rng.uniform(0.5, 2.0, n)
  signs = {"negative": -np.ones(n), "positive": np.ones(n),
           "indefinite": np.where(np.arange(n) % 3 == 0, 1.0, -1.0)}
  # Contraction is slow (rate ~ lmin(K)); expansion is fast (rate up to 2 lmax(G)), so the
  # expansive cases use a short horizon (E grows by at most e^40 there).
  horizons = {"negative": 3 / kmin, "positive": 10.0, "indefinite": 10.0}
  results, ok = {}, True
  fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
  for k, (name, sign) in enumerate(signs.items()):
    g = sign * mags
    lam, err = eigenvalue_error_bounds(K * g[None, :])
    real = np.all(np.abs(lam.imag) <= err)
    same = inertia(lam.real, err) == inertia(g, 0)
    ok &= bool(real and same)
    times = np.linspace(0, horizons[name], 100)
    flow = residual_flow(K, r0, -g, signed=True)
    E = energy(flow(times))
    if name == "negative":
      bound = kmax / kmin * E[0] * np.exp(-2 * kmin * np.abs(g.max()) * times)
      ratio = float(np.max(E / bound))
      ok &= ratio <= 1 + 1e-9
    elif name == "positive":
      bound = E[0] * np.exp(2 * kmin * g.min() * times) / (kmax / kmin)
      ratio = float(np.min(E / bound))
      ok &= ratio >= 1 - 1e-9
    else:
      bound, ratio = None, None
      grow = np.argmax(lam.real)
      decay = np.argmin(lam.real)
      v_up, v_down = np.real(np.linalg.eig(K * g[None, :])[1][:, [grow, decay]]).T
      t1 = 1.0 / np.abs(lam.real[[grow, decay]]).max()
      up = np.linalg.norm(residual_flow(K, v_up, -g, signed=True)(t1)) / np.linalg.norm(v_up)
      down = np.linalg.norm(residual_flow(K, v_down, -g, signed=True)(t1)) / np.linalg.norm(v_down)
      mixed_ok = (np.isclose(up, np.exp(lam.real[grow] * t1), rtol=1e-8)
                  and np.isclose(down, np.exp(lam.real[decay] * t1), rtol=1e-8))
      ok &= bool(mixed_ok)
      ratio = {"growth_factor": float(f"{up:.4g}"), "decay_factor": float(f"{down:.4g}")}
    results[name] = {"inertia_M": inertia(lam.real, err), "inertia_G": inertia(g, 0),
                     "real": bool(real), "energy_check": ratio}
    axes[0].plot(np.sort(lam.real), "o", label=name)
    axes[1].semilogy(times / horizons[name], E / E[0], color=f"C{k}",
                     label=f"{name} (t_max = {horizons[name]:.3g})")
    if bound is not None:
      axes[1].semilogy(times / horizons[name], bound / E[0], "--", color=f"C{k}")
  axes[0].axhline(0, color="k", lw=0.5)
  axes[0].set_ylabel("eigenvalues of K G (sorted)")
  axes[0].set_yscale("symlog", linthresh=1e-6)
  axes[0].legend(fontsize=8)
  axes[1].set_xlabel("t / t_max  (time unit 1/lmax(K))")
  axes[1].set_ylabel("E(t)/E(0) (dashed: bounds)")
  axes[1].legend(fontsize=8)
  path = ctx.save_figure(fig, "adv6.png")
  return Outcome(
      measured={k: {"inertia(M)": v["inertia_M"], "inertia(G)": v["inertia_G"],
                    "check": v["energy_check"]} for k, v in results.items()},
      expected="inertia(KG) = inertia(G); contraction / expansion bounds; mixed modes",
      tolerance="eigenvalue error bounds; energy slack 1e-9; modal rates rtol 1e-8",
      passed=bool(ok), figures=[path],
      reason=("for negative, positive and indefinite G the eigenvalues of KG are real with the "
              "inertia of G, the contraction and expansion bounds hold and the mixed modes grow "
              "and decay at their eigenvalues" if ok else f"a check failed: {results}"),
      quantities=[Quantity("negative G: max E(t) / bound", results["negative"]["energy_check"],
                           reference=1.0, source="<= 1"),
                  Quantity("positive G: min E(t) / bound", results["positive"]["energy_check"],
                           reference=1.0, source=">= 1")],
      notes=("check: negative G -> max E/bound (<= 1); positive G -> min E/bound (>= 1); "
             "indefinite G -> norm factors after t = 1/max|l| along the most expanding and most "
             "contracting eigenvectors (equal to exp(l t))."))


CLAIMS = [Claim(id="ADV-6", paper="adversarial-pinn-ntk",
                statement="Squared-residual input: dr/dt = K G r, G diagonal: KG has the inertia of G "
                          "(Sylvester); G < 0 contracts with E(t) <= kappa(K) E(0) exp(-2 lmin(K) "
                          "|lmax(G)| t), G > 0 expands, indefinite G mixes.", run=run)]
