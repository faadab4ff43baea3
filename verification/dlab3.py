"""DLAB-3: derivative labels slow convergence: ``lambda_min`` of the block kernel is below
``lambda_min(Theta)``.

Kernel part (this module): the paper's setup -- fit ``x1 x2`` at ``x = (cos g, sin g)``,
``g ~ N(0, 1)``, derivative labels ``d_{x1} f = x2``, 4-layer network -- with the
analytic infinite-width NTK (3 hidden erf layers + readout, W_std 1.5, b_std 0.1; the
paper used width 200 and reports ``lambda_min(Theta*) ~ 0.0066`` vs ``lambda_min(Theta)
~ 0.0116``). ``Theta*`` is the block kernel at unit weights (eq. 12 with ``lr = lg = 1``)
and, as a second reading, with the trace weights of Prop. 3 (``K W`` is similar to
``W^{1/2} K W^{1/2}``, whose eigenvalues we take). The number of training points is not
stated in the paper; we use m = 10 (quick) and 10, 20 (full), several draws of the angles.

At unit weights the claim is a theorem: ``Theta`` is a principal submatrix of ``Theta*``,
so Cauchy interlacing gives ``lambda_min(Theta*) <= lambda_min(Theta)``. The check is
that the computed values respect it beyond rounding (``eigvalsh`` is backward stable:
error ``<= n eps ||Theta*||``, the tolerance). Absolute values depend on the
parameterisation and the points, so we compare the ratio with the paper's 0.57.

Paper vs ours: the paper's values come from a width-200 network's empirical NTK on points
it does not give (number, draw), in a parameterisation it does not state. The
infinite-width values here are reported beside them as medians
over draws; the ratio ``lambda_min(Theta*) / lambda_min(Theta)`` (paper 0.57) is the
comparable number. Assumptions: erf activation, W_std 1.5, b_std 0.1, NTK
parameterisation, ``m = 6`` (:data:`PAPER_M`, the number of points at which our
``lambda_min(Theta)`` is nearest the paper's; ``lambda_min`` falls by about a decade per
added point because the closest pair of random angles gets closer), 5 (quick) or 10
draws of the angles.

``PARTS`` lists the parts run by :func:`run`, each returning a
:class:`verification.PartResult`: the kernel part here and the finite-width training part
(convergence with vs without derivative labels,
:func:`verification._finite_parts.dlab3_training_part`).
"""
import matplotlib.pyplot as plt
import numpy as np

from ntkpde import weights
from verification import FAILS, HOLDS, Claim, PartResult, Quantity, combine_parts
from verification._dynamics import circle
from verification._finite_parts import dlab3_training_part

EPS = np.finfo(np.float64).eps
PAPER = {"lambda_min_block": 0.00662, "lambda_min_theta": 0.01157}
# The m whose median lambda_min(Theta) over 10 draws is nearest the paper's 0.0116 (measured:
# m = 4: 0.54, 6: 0.028, 8: 7.3e-4, 10: 1.2e-4, 15: 5.7e-7; docs/claims.md).
PAPER_M = 6


def kernel_part(ctx):
  sizes = [PAPER_M] if ctx.quick else [PAPER_M, 10, 20]
  seeds = range(5 if ctx.quick else 10)
  rows, ok = [], True
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  for m in sizes:
    for seed in seeds:
      G, _, _ = circle(m, seed)
      K = np.asarray(G.matrix)
      theta = np.asarray(G.block("f", "f"))
      lam_block = np.linalg.eigvalsh(K)
      lam_theta = np.linalg.eigvalsh(theta)
      w = weights.per_residual("trace", G.sizes, G)
      lam_weighted = np.linalg.eigvalsh(np.sqrt(w)[:, None] * K * np.sqrt(w)[None, :])
      ok &= lam_block[0] <= lam_theta[0] + len(K) * EPS * lam_block[-1]
      rows.append((m, seed, lam_theta[0], lam_block[0], lam_weighted[0]))
      if seed == 0:
        axes[1].semilogy(np.arange(1, m + 1), lam_theta[::-1], "o-", label=f"Theta, m={m}")
        axes[1].semilogy(np.arange(1, 2 * m + 1), np.clip(lam_block[::-1], 1e-18, None), "s-",
                         label=f"Theta* (unit weights), m={m}")
  rows = np.array(rows)
  ctx.log(f"lambda_min Theta / Theta*: {np.round(rows[:, 2:4], 5).tolist()}")
  axes[0].loglog(rows[:, 2], rows[:, 3], "o", label="unit weights")
  axes[0].loglog(rows[:, 2], rows[:, 4], "x", label="trace weights (Prop. 3)")
  axes[0].loglog([PAPER["lambda_min_theta"]], [PAPER["lambda_min_block"]], "r*", ms=12,
                 label="paper (width 200)")
  lo, hi = rows[:, 2:].min() / 2, rows[:, 2:].max() * 2
  axes[0].loglog([lo, hi], [lo, hi], "k:", lw=1, label="y = x")
  axes[0].set_xlabel("lambda_min(Theta)")
  axes[0].set_ylabel("lambda_min(Theta*)")
  axes[0].legend(fontsize=8)
  axes[1].set_xlabel("k")
  axes[1].set_ylabel("eigenvalue")
  axes[1].legend(fontsize=8)
  path = ctx.save_figure(fig, "dlab3_kernel.png")
  ratio = rows[:, 3] / rows[:, 2]
  paper_ratio = PAPER["lambda_min_block"] / PAPER["lambda_min_theta"]
  return PartResult(
      "kernel (lambda_min, infinite width)", verdict=HOLDS if ok else FAILS,
      reason=(f"lambda_min(Theta*) <= lambda_min(Theta) in all {len(rows)} draws (Cauchy "
              f"interlacing); median ratio {np.median(ratio):.2g} vs the paper's "
              f"{paper_ratio:.2f}" if ok else "lambda_min(Theta*) exceeds lambda_min(Theta) beyond "
              "rounding in some draw"),
      quantities=[Quantity(f"median lambda_min(Theta), m={PAPER_M}",
                           float(np.median(rows[rows[:, 0] == PAPER_M, 2])), unit="(NTK units)",
                           reference=PAPER["lambda_min_theta"], source="paper, width 200"),
                  Quantity(f"median lambda_min(Theta*), m={PAPER_M}",
                           float(np.median(rows[rows[:, 0] == PAPER_M, 3])), unit="(NTK units)",
                           reference=PAPER["lambda_min_block"], source="paper, width 200"),
                  Quantity("median ratio lambda_min(Theta*) / lambda_min(Theta)",
                           float(np.median(ratio)), reference=round(paper_ratio, 3), source="paper"),
                  Quantity("median ratio with the trace weights (Prop. 3)",
                           float(np.median(rows[:, 4] / rows[:, 2])))],
      figures=[str(path)],
      notes=(f"Kernel part: ratios {np.round(ratio, 4).tolist()} over {len(rows)} draws. "
             f"lambda_min depends strongly on the closest pair of random angles (two nearly "
             f"equal angles give lambda_min ~ 0 for both kernels), so only the inequality and "
             f"the order of the ratio, not the paper's absolute values, are reproducible "
             f"without its points (the paper gives neither m nor the draws; its values are of a "
             f"finite width-200 network in an unstated parameterisation). With the trace weights the smallest eigenvalue of W^1/2 "
             f"Theta* W^1/2 is below lambda_min(Theta) in {int(np.sum(rows[:, 4] < rows[:, 2]))} "
             f"of {len(rows)} draws."))


KERNEL_EXPECTED = "lambda_min(Theta*) < lambda_min(Theta) (paper: 0.0066 vs 0.0116)"
KERNEL_TOLERANCE = "n eps ||Theta*|| (eigvalsh backward error)"
PARTS = [kernel_part, dlab3_training_part]


def run(ctx):
  return combine_parts([part(ctx) for part in PARTS],
                       expected=KERNEL_EXPECTED + "; value loss larger with derivative labels",
                       tolerance=KERNEL_TOLERANCE + "; mean log loss ratio over seeds, 3 standard errors")


CLAIMS = [Claim(id="DLAB-3", paper="derivative-labels-ntk",
                statement="lambda_min of the block kernel Theta* is below lambda_min(Theta) (paper: "
                          "x1*x2 on the unit circle, 4 layers, ~0.0066 vs 0.0116), so training with "
                          "derivative labels converges slower.", run=run)]
