"""NTKW-4 (Thm 4): the mean of N sketches has mean squared error ``O(1/N)``, for the NTK
and for its trace, on the paper's quadratic predictor (Sec. 5.2.1).

``R_i = (theta * theta) . (1, x_i, x_i^2) - y_i`` at 50 points of [-1, 1] (setting in
:mod:`verification._sketch_problems`); ``K = J J^T`` exact. For each ``N`` we draw
``M`` independent means of ``N`` samples of Algorithm 2 (``dt = 1e-6 / lambda_max(K)``:
the discretisation term ``dt ||J^T g||^2`` is then ~1e-6 relative, far below the Monte
Carlo error) and average ``||K_N - K||_F^2`` and ``(Tr_N - Tr K)^2`` over the ``M``.

Expected: slope -1 of ``log MSE`` against ``log N`` (the paper's Fig. 6), and the
bound ``MSE_K <= 2 n (n + 2) ||K||_F^2 / N`` of Thm 4 (its O(dt^2) term is negligible
here). Verdict (:func:`verification.rate_verdict`, two-sided): ``|slope + 1| <= 3 s`` with
``s`` the bootstrap standard deviation of the slope over the ``M`` repetitions
(:func:`ntkpde.rates.bootstrap_slope`, mean over repetitions): the MSE estimates are means
of heavy-tailed (fourth-moment) variables, so their noise is measured, not assumed; the
bound of Thm 4 must hold at every ``N``.
"""
import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ntkpde import sketch  # noqa: E402
from ntkpde.rates import bootstrap_slope  # noqa: E402
from verification import FAILS, Claim, Outcome, Quantity, combine_verdicts, rate_verdict  # noqa: E402
from verification._sketch_problems import quadratic_problem  # noqa: E402


def run(ctx):
  residuals, theta = quadratic_problem()
  K = np.asarray(sketch.exact_ntk(residuals, theta))
  n = len(K)
  dt = 1e-6 / np.linalg.eigvalsh(K).max()
  Ns = [1, 4, 16, 64, 256] if ctx.quick else [1, 4, 16, 64, 256, 1024, 4096]
  M = 100
  key = jax.random.PRNGKey(0)
  errK, errT = np.empty((len(Ns), M)), np.empty((len(Ns), M))
  for i, N in enumerate(Ns):
    keys = jax.random.split(jax.random.fold_in(key, N), M)
    Kh, tr = jax.vmap(lambda k: sketch.sketch_ntk(residuals, theta, k, dt, N))(keys)
    errK[i] = np.sum((np.asarray(Kh) - K) ** 2, axis=(1, 2))
    errT[i] = (np.asarray(tr) - np.trace(K)) ** 2
    ctx.log(f"N = {N}: MSE(K) = {errK[i].mean():.4e}, MSE(Tr) = {errT[i].mean():.4e}")
  sK, spK = bootstrap_slope(Ns, errK, "mean")
  sT, spT = bootstrap_slope(Ns, errT, "mean", seed=1)
  bound = 2 * n * (n + 2) * np.sum(K ** 2) / np.asarray(Ns)
  within_bound = bool(np.all(errK.mean(1) <= bound))
  vK, rK = rate_verdict(sK, spK, -1.0, "MSE of K_N vs N")
  vT, rT = rate_verdict(sT, spT, -1.0, "MSE of the trace vs N")
  verdict = combine_verdicts([vK, vT])
  reason = " ".join(r for v, r in ((vK, rK), (vT, rT)) if v == verdict)
  if not within_bound:
    verdict, reason = FAILS, "the MSE of K_N exceeds Thm 4's bound 2n(n+2)||K||_F^2/N."
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.loglog(Ns, errK.mean(1), "o-", label=f"||K_N - K||_F^2 (slope {sK:.2f})")
  ax.loglog(Ns, errT.mean(1), "s-", label=f"(Tr_N - Tr K)^2 (slope {sT:.2f})")
  ax.loglog(Ns, errK.mean(1)[0] / np.asarray(Ns), "k--", label="1/N")
  ax.set_xlabel("N samples")
  ax.set_ylabel("mean squared error")
  ax.legend(fontsize=8)
  path = ctx.save_figure(fig, "ntkw4_monte_carlo_rate.png")
  return Outcome(
      measured={"slope_K": round(sK, 3), "spread_K": round(spK, 3), "slope_trace": round(sT, 3),
                "spread_trace": round(spT, 3),
                "mse_over_thm4_bound_max": round(float(np.max(errK.mean(1) / bound)), 4)},
      expected="slope -1 for K and Tr; MSE_K <= 2n(n+2)||K||_F^2/N",
      tolerance="|slope + 1| <= 3 x bootstrap std over the M = 100 repetitions (two-sided)",
      verdict=verdict, reason=reason, figures=[path],
      quantities=[Quantity("MSE(K_N) slope in N", sK, spK, "", -1.0, "stated (paper Fig. 6)"),
                  Quantity("MSE(trace) slope in N", sT, spT, "", -1.0, "stated (paper Fig. 6)"),
                  Quantity("max_N MSE(K_N) / Thm 4 bound", float(np.max(errK.mean(1) / bound)),
                           reference=1.0, source="bound")],
      notes=f"n = {n}, dt = {dt:.2e}, N = {Ns}, M = {M}; MSE(K) = "
            f"{np.round(errK.mean(1), 3).tolist()}, MSE(Tr) = {np.round(errT.mean(1), 3).tolist()}.")


CLAIMS = [Claim(id="NTKW-4", paper="ntk-weights-sketching",
                statement="Averaging N sketches (Alg. 2): the mean squared error of K_hat and of "
                          "its trace decays like 1/N (quadratic predictor, 50 points).", run=run)]
