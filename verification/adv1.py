"""ADV-1: weighted residual flow ``dr/dt = -K gamma``, ``gamma = A r`` with ``A`` symmetric PSD.

Claims (adversarial-PINN paper, appendix eqs. 156-163): the eigenvalues of ``M = K A`` are
real and ``>= 0``; ``lmin(K) lj(A) <= lj(M) <= lmax(K) lj(A)`` for every ``j`` (sorted);
``E(t) <= kappa(K) E(0) exp(-2 lmin(K) lmin(A) t)`` with ``E = ||r||^2 / 2``.

Setting: ``K`` = the generator's residual NTK (Poisson 1D, 8 interior + 2 boundary
points, :func:`verification._dynamics.generator_kernel`), ``A`` drawn as random SPD,
random rank-deficient PSD and the trace weights; ``r(t)`` from
:func:`ntkpde.predict.residual_flow`. Eigenvalues of ``M`` come from ``scipy.linalg.eig``
of the non-symmetric product itself (not the similar symmetric matrix, which would assume
the claim); each comparison is allowed the first-order error bound
``n eps ||M|| kappa_j`` of eigenvalue ``j`` (:func:`eigenvalue_error_bounds`). The energy
bound is checked on 200 times with relative slack ``1e-10`` (flow error ``~n eps cond``).
"""
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import ntkpde
from ntkpde import weights
from ntkpde.predict import residual_flow
from verification import Claim, Outcome, Quantity
from verification._dynamics import eigenvalue_error_bounds, energy, generator_kernel


def weight_draws(n, count, rng, K):
  out = []
  for k in range(count):
    Y = rng.normal(size=(n, n if k % 2 == 0 else n // 2))   # odd draws: rank n/2
    out.append(Y @ Y.T / n)
  sizes = {"interior": n - 2, "boundary": 2}
  gram = ntkpde.BlockGram(jnp.asarray(K), tuple(sizes), sizes)
  out.append(np.diag(weights.per_residual("trace", sizes, gram)))
  return out


def run(ctx):
  K, r0 = generator_kernel(8)
  n = len(K)
  rng = np.random.default_rng(0)
  draws = weight_draws(n, 6 if ctx.quick else 20, rng, K)
  kmin, kmax = np.linalg.eigvalsh(K)[[0, -1]]
  times = np.linspace(0, 5 / (kmin * 1.0), 200)
  worst = {"imag": 0.0, "negative": 0.0, "ostrowski": 0.0, "energy": 0.0}
  fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
  for k, A in enumerate(draws):
    lam, err = eigenvalue_error_bounds(K @ A)
    order = np.argsort(lam.real)
    lam, err = lam[order], err[order]
    lam_a = np.clip(np.linalg.eigvalsh(A), 0, None)
    worst["imag"] = max(worst["imag"], np.max(np.abs(lam.imag) / err))
    worst["negative"] = max(worst["negative"], np.max(-lam.real / err))
    lower, upper = kmin * lam_a, kmax * lam_a
    worst["ostrowski"] = max(worst["ostrowski"], np.max((lower - lam.real) / err),
                             np.max((lam.real - upper) / err))
    amin = lam_a[0]
    E = energy(residual_flow(K, r0, A)(times))
    bound = kmax / kmin * E[0] * np.exp(-2 * kmin * amin * times)
    worst["energy"] = max(worst["energy"], np.max(E / bound))
    if k < 3:
      j = np.arange(1, n + 1)
      axes[0].semilogy(j, np.clip(lam.real, 1e-16, None), "o", color=f"C{k}", label=f"A #{k}: lj(KA)")
      axes[0].fill_between(j, np.clip(lower, 1e-16, None), upper, color=f"C{k}", alpha=0.15)
      axes[1].semilogy(times * kmin, E / E[0], color=f"C{k}", label=f"A #{k}")
      axes[1].semilogy(times * kmin, bound / E[0], "--", color=f"C{k}")
  axes[0].set_xlabel("j")
  axes[0].set_ylabel("eigenvalue (band: Ostrowski bounds)")
  axes[0].legend(fontsize=8)
  axes[1].set_xlabel("t lmin(K)")
  axes[1].set_ylabel("E(t)/E(0) (dashed: bound)")
  axes[1].legend(fontsize=8)
  path = ctx.save_figure(fig, "adv1.png")
  passed = (worst["imag"] <= 1 and worst["negative"] <= 1 and worst["ostrowski"] <= 1
            and worst["energy"] <= 1 + 1e-10)
  return Outcome(
      measured={"max |Im l| / err_bound": float(f"{worst['imag']:.2g}"),
                "max -Re l / err_bound": float(f"{worst['negative']:.2g}"),
                "max Ostrowski violation / err_bound": float(f"{worst['ostrowski']:.2g}"),
                "max E(t)/bound(t)": float(f"{worst['energy']:.3g}"),
                "kappa(K)": float(f"{kmax / kmin:.2e}"), "draws": len(draws)},
      expected="real, >= 0, within Ostrowski bounds; E below kappa(K) E0 exp(-2 lmin(K) lmin(A) t)",
      tolerance="eigenvalue first-order error bounds (ratio <= 1); energy slack 1e-10",
      passed=bool(passed), figures=[path],
      reason=("over all draws of A the eigenvalues of KA are real, >= 0 and inside the Ostrowski "
              "bounds within their rounding error bounds, and E(t) stays below the stated bound"
              if passed else f"a violation beyond the error bounds: {worst}"),
      quantities=[Quantity("max Ostrowski violation / eigenvalue error bound", float(worst["ostrowski"]),
                           reference=1.0, source="<= 1"),
                  Quantity("max E(t) / bound(t)", float(worst["energy"]), reference=1.0, source="<= 1")],
      notes=("Violations are measured in units of each eigenvalue's error bound (negative = "
             "inside by that many bounds). For rank-deficient A the bound is trivial "
             "(lmin(A) = 0) but still holds."))


CLAIMS = [Claim(id="ADV-1", paper="adversarial-pinn-ntk",
                statement="dr/dt = -K gamma with gamma = A r, A symmetric PSD: eigenvalues of KA real, "
                          ">= 0, lmin(K) lj(A) <= lj(KA) <= lmax(K) lj(A); E(t) <= kappa(K) E(0) "
                          "exp(-2 lmin(K) lmin(A) t).", run=run)]
