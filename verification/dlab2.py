"""DLAB-2: joint dynamics of ``(f, d_h f)`` with derivative labels; the paper's decoupling.

With loss ``lr/2 ||f - L||^2 + lg/2 ||d_h f - L'||^2`` the training-set residuals
``(y, z) = (f - L, d_h f - L')`` evolve (infinite width, gradient flow) as
``d/dt (y, z) = -K W (y, z)``, ``K`` the block NTK ``[[Theta, Theta'], [Theta'^T, Theta'']]``
over the channels ``f`` and ``d_h f`` (:func:`ntkpde.gram`), ``W = diag(lr, lg)``: the
paper's ``Theta*`` (eq. 12). Checks, on the paper's setup (``x1 x2`` on the unit
circle, ``h = e_1``, :func:`verification._dynamics.circle`):

1. The closed form (:func:`ntkpde.predict.residual_flow` with weights ``(lr, lg)``)
   against the paper's coupled system (A-8)-(A-9) with the weights written into the
   blocks, integrated by ``scipy.integrate.solve_ivp`` (Radau with the exact Jacobian,
   rtol 1e-12, atol 1e-14: the weighted system is stiff, ``lambda_max / lambda_min ~ 1e6``
   times ``lg / lr`` up to 100, and the explicit DOP853 accumulates ~1e-9 of rounding
   there; Radau's error against ``scipy.linalg.expm`` was measured at <= 3e-14), for every
   ``(lr, lg)`` in ``{0.1, 1, 10}^2``: tolerance ``1e-8`` relative.
2. The paper's decoupled equation (appendix A.2, ``lr = lg = 1``)
   ``Y'' + (Theta + Theta'') Y' + (Theta Theta'' - Theta'^2) Y = (Theta Theta'' - Theta'^2) L``
   with ``Theta'^2 := Theta' Theta'^T``, solved exactly (``expm`` of its companion
   matrix), against the exact ``Y(t)``. Its derivation assumes the blocks commute; we
   report the gap ``max_t ||Y_dec - Y|| / ||L||`` and the relative commutators. As a
   control, the tangential derivative (``h = (-y, x)``) at equispaced angles makes every
   block circulant (commuting): the gap there must be at rounding level.

Verdict: the block dynamics (check 1) and the control (below ``1e-8``) must hold, else the
claim does not hold; with them, the claim holds in a weaker form, because the paper's
decoupled scalar equation -- part of its analysis -- is exact only for commuting blocks,
and its gap on the paper's own setup is reported.
"""
import matplotlib.pyplot as plt
import numpy as np
import scipy.integrate
import scipy.linalg

from ntkpde.predict import residual_flow
from verification import FAILS, WEAKER, Claim, Outcome, Quantity
from verification._dynamics import circle

# (lr, lg) of the loss lr/2 ||f - L||^2 + lg/2 ||d_h f - L'||^2: equal, and either 100x larger
WEIGHT_GRID = [(lr, lg) for lr in (0.1, 1.0, 10.0) for lg in (0.1, 1.0, 10.0)]


def blocks(G):
  return (np.asarray(G.block("f", "f")), np.asarray(G.block("f", "df")),
          np.asarray(G.block("df", "df")))


def decoupled_y(G, labels, times):
  """Y(t) from the paper's decoupled second-order equation, Y(0) = 0 and Y'(0) from (A-8)."""
  T, Tp, Tpp = blocks(G)
  L, Lp = labels
  m = len(L)
  C = T @ Tpp - Tp @ Tp.T
  companion = np.block([[np.zeros((m, m)), np.eye(m)], [-C, -(T + Tpp)]])
  y0 = -L                                       # Y - L at t = 0 (f_0 = 0: ensemble mean)
  dy0 = -T @ (0 - L) - Tp @ (0 - Lp)            # at t = 0
  state0 = np.r_[y0, dy0]
  return np.stack([L + (scipy.linalg.expm(companion * t) @ state0)[:m] for t in times])


def run(ctx):
  m = 10 if ctx.quick else 20
  times = np.linspace(0, 2.0, 41)
  G, labels, _ = circle(m, seed=0)
  K = np.asarray(G.matrix)
  L, Lp = labels
  r0 = -np.r_[L, Lp]
  ctx.log(f"paper setup: m = {m}, block Gram {K.shape}")
  T, Tp, Tpp = blocks(G)
  ode_gaps = {}
  for lr, lg in WEIGHT_GRID:
    # in residual form with the weights written into the blocks
    M = -np.block([[lr * T, lg * Tp], [lr * Tp.T, lg * Tpp]])
    sol = scipy.integrate.solve_ivp(lambda _, s, M=M: M @ s, (0, times[-1]), r0, method="Radau",
                                    jac=M, t_eval=times, rtol=1e-12, atol=1e-14)
    weighted = residual_flow(K, r0, np.r_[np.full(m, lr), np.full(m, lg)])(times)
    ode_gaps[(lr, lg)] = np.abs(sol.y.T - weighted).max() / np.abs(r0).max()
  ode_gap = max(ode_gaps.values())
  closed = residual_flow(K, r0)(times)
  y_exact = closed[:, :m] + L
  y_dec = decoupled_y(G, labels, times)
  gap = np.abs(y_dec - y_exact).max() / np.abs(L).max()
  comm = {
      "commutator_Theta_Theta2":
          np.linalg.norm(T @ Tpp - Tpp @ T) / (np.linalg.norm(T) * np.linalg.norm(Tpp)),
      "commutator_Theta1_Theta2":
          np.linalg.norm(Tp @ Tpp - Tpp @ Tp) / (np.linalg.norm(Tp) * np.linalg.norm(Tpp)),
      "asymmetry_Theta1": np.linalg.norm(Tp - Tp.T) / np.linalg.norm(Tp)}
  ctx.log(f"ODE gap {ode_gap:.1e}; decoupled gap {gap:.3g}; commutators {comm}")
  Gc, labels_c, _ = circle(12, seed=0, direction=("-y", "x"), equispaced=True)
  yc_exact = residual_flow(np.asarray(Gc.matrix), -np.r_[labels_c])(times)[:, :12] + labels_c[0]
  control_gap = np.abs(decoupled_y(Gc, labels_c, times) - yc_exact).max() / np.abs(labels_c[0]).max()
  ctx.log(f"control (commuting blocks): gap {control_gap:.1e}")
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  for j, c in zip(range(3), ("C0", "C1", "C2")):
    axes[0].plot(times, y_exact[:, j], "-", color=c, label=f"exact Y_{j}" if j == 0 else None)
    axes[0].plot(times, y_dec[:, j], "--", color=c, label="decoupled (paper)" if j == 0 else None)
  axes[0].set_xlabel("t")
  axes[0].set_ylabel("f(x_j)")
  axes[0].legend()
  axes[0].set_title("paper setup (h = e1, random angles)")
  axes[1].semilogy(times[1:], np.abs(y_dec - y_exact).max(1)[1:] / np.abs(L).max(), "o-",
                   label="paper setup")
  axes[1].semilogy(times[1:], np.clip(np.abs(decoupled_y(Gc, labels_c, times) - yc_exact).max(1)[1:]
                                      / np.abs(labels_c[0]).max(), 1e-17, None), "s-",
                   label="tangential h, equispaced (commuting)")
  axes[1].set_xlabel("t")
  axes[1].set_ylabel("max |Y_dec - Y| / max |L|")
  axes[1].legend()
  path = ctx.save_figure(fig, "dlab2.png")
  if ode_gap > 1e-8 or control_gap > 1e-8:
    verdict = FAILS
    reason = (f"the block flow differs from the integrated coupled system by {ode_gap:.1e} over the "
              f"(lr, lg) grid (control gap {control_gap:.1e}).")
  else:
    verdict = WEAKER
    reason = (f"the joint dynamics with [[lr Theta, lg Theta'], [lr Theta'^T, lg Theta'']] hold to "
              f"{ode_gap:.0e} on all {len(ode_gaps)} (lr, lg) of the grid, but the paper's decoupled "
              f"scalar equation holds only for commuting blocks: off by {gap:.2g} of max|L| on its own "
              f"setup (exact to {control_gap:.0e} with circulant blocks).")
  worst = max(ode_gaps, key=ode_gaps.get)
  return Outcome(
      measured={"block_flow_vs_ode_max_over_grid": float(f"{ode_gap:.1e}"),
                "worst_(lr,lg)": list(worst),
                "decoupled_gap_paper_setup": float(f"{gap:.3g}"),
                "decoupled_gap_commuting_control": float(f"{control_gap:.1e}"),
                **{k: float(f"{v:.2g}") for k, v in comm.items()}},
      verdict=verdict, reason=reason,
      quantities=[Quantity("block flow vs integrated system, max over (lr, lg) in {0.1, 1, 10}^2",
                           float(ode_gap), unit="of max|r0|", reference=1e-8, source="tolerance"),
                  Quantity("decoupled formula vs exact Y(t), paper setup (lr = lg = 1)", float(gap),
                           unit="of max|L|", reference=0.0, source="paper (exact if blocks commute)"),
                  Quantity("same, commuting (circulant) control", float(control_gap), unit="of max|L|",
                           reference=1e-8, source="tolerance"),
                  Quantity("relative commutator [Theta, Theta'']",
                           float(comm["commutator_Theta_Theta2"]))],
      expected="block flow = coupled ODE; decoupled formula exact only if blocks commute",
      tolerance="1e-8 (ODE integration error ~1e-10)",
      figures=[path],
      notes=(f"The joint dynamics with the block matrix hold (gap {ode_gap:.1e} to the "
             f"integrated system). The paper's scalar decoupling does NOT hold on its own setup: "
             f"the blocks do not commute (relative commutators {comm['commutator_Theta_Theta2']:.2g}, "
             f"{comm['commutator_Theta1_Theta2']:.2g}; Theta' is not symmetric, asymmetry "
             f"{comm['asymmetry_Theta1']:.2g}) and the decoupled Y(t) is off by {gap:.3g} of max|L| "
             f"over t in [0, {times[-1]}]. With commuting (circulant) blocks the same formula is exact "
             f"to {control_gap:.1e}."))


CLAIMS = [Claim(id="DLAB-2", paper="derivative-labels-ntk",
                statement="(f, d_h f) on the training set evolve linearly with the block matrix "
                          "[[lr Theta, lg Theta'], [lr Theta'^T, lg Theta'']]; the paper's scalar "
                          "decoupling assumes commuting blocks (gap reported).", run=run)]
