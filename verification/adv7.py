"""ADV-7: channel coupling: with interior, boundary and initial channels the cross blocks
``K_rb, K_r0, K_b0`` couple the channels, so an adversarial (larger) weight on one channel
can speed up or slow down another.

Setting: heat equation ``u_t = 0.1 u_xx`` (``ntkpde.problems`` "heat1d"), 16 interior,
6 boundary, 6 initial points (Sobol), block NTK Gram of a depth-1 erf network; initial
residuals ``r0 = -y`` (ensemble mean); an adversarial up-weight ``w >= 1`` on one channel
(others 1; the claim is about up-weighting); the residual energy of each other channel
``E_o(T; w)`` at ``T = 10 / lmax(K)`` from :func:`ntkpde.predict.residual_flow`, relative
to ``w = 1``, for every (weighted, observed) pair of channels.

Checks: (1) some up-weight gives ``E_o(T; w) / E_o(T; 1) < 0.99`` (speed-up) and some
gives ``> 1.01`` (slow-down) -- 1 % is far above the flow's error (~1e-10);
(2) control: with the cross blocks set to zero (block-diagonal ``K``) and a random
``r0``, no channel's energy depends on another channel's weight: ratio ``1`` to
``1e-10``. The exact interior forcing of the heat problem is 0, so the control needs a
random ``r0``. Holds as stated if both effects appear; one of them only is a weaker form.
"""
import matplotlib.pyplot as plt
import numpy as np

import ntkpde
from ntkpde import problems
from ntkpde.predict import residual_flow
from verification import B_STD, FAILS, HOLDS, W_STD, WEAKER, Claim, Outcome, Quantity


def run(ctx):
  problem = problems.get("heat1d")
  net = ntkpde.mlp(1, activation="erf", W_std=W_STD, b_std=B_STD, input_map=problem.input_map())
  sample = problem.sample({"interior": 16, "boundary": 6, "initial": 6}, sampler="sobol", seed=0)
  G = ntkpde.gram(net.kernel_fn, sample.channels)
  K = np.asarray(G.matrix)
  sl = G.slices
  n = len(K)
  T = 10 / np.linalg.eigvalsh(K)[-1]
  r0 = -np.concatenate(sample.targets)
  ws = np.logspace(0, 2, 17)                     # up-weighting only: w >= 1

  def energy_of(kernel, r, weighted, w, observed):
    A = np.ones(n)
    A[sl[weighted]] = w
    return np.sum(residual_flow(kernel, r, A)(T)[sl[observed]] ** 2)
  pairs = [(a, b) for a in G.names for b in G.names if a != b]
  curves = {}
  for weighted, observed in pairs:
    base = energy_of(K, r0, weighted, 1.0, observed)
    curves[(weighted, observed)] = np.array([energy_of(K, r0, weighted, w, observed)
                                             for w in ws]) / base
  lowest = min((c.min(), p, ws[np.argmin(c)]) for p, c in curves.items())
  highest = max((c.max(), p, ws[np.argmax(c)]) for p, c in curves.items())
  block_diagonal = np.zeros_like(K)
  for c in G.names:
    block_diagonal[sl[c], sl[c]] = K[sl[c], sl[c]]
  r_rand = np.random.default_rng(0).normal(size=n)
  control = max(abs(energy_of(block_diagonal, r_rand, a, w, b)
                    / energy_of(block_diagonal, r_rand, a, 1.0, b) - 1)
                for a, b in pairs for w in (10.0, 100.0))
  cross = {f"||K_{a}{b}||/||K||": float(f"{np.linalg.norm(G.block(a, b)) / np.linalg.norm(K):.3g}")
           for a, b in (("interior", "boundary"), ("interior", "initial"), ("boundary", "initial"))}
  fig, ax = plt.subplots(figsize=(6, 4))
  for (a, b), c in curves.items():
    ax.loglog(ws, c, "o-", ms=3, label=f"weight on {a}, energy of {b}")
  ax.axhline(1, color="k", lw=0.5)
  ax.set_xlabel("up-weight w >= 1 of one channel (others 1)")
  ax.set_ylabel("E_other(T; w) / E_other(T; 1)")
  ax.legend(fontsize=7)
  path = ctx.save_figure(fig, "adv7.png")
  speeds_up, slows_down = lowest[0] < 0.99, highest[0] > 1.01
  both = "speeds up and slows down" if speeds_up and slows_down else (
      "only speeds up" if speeds_up else "only slows down" if slows_down else "changes nothing in")
  if control > 1e-10:
    verdict, reason = FAILS, f"without cross blocks a weight still changes another channel ({control:.1e})."
  elif speeds_up and slows_down:
    verdict = HOLDS
    reason = (f"up-weighting {lowest[1][0]} by {lowest[2]:.3g} cuts the {lowest[1][1]} energy to "
              f"{lowest[0]:.3f}x, up-weighting {highest[1][0]} by {highest[2]:.3g} raises the "
              f"{highest[1][1]} energy to {highest[0]:.3f}x; nothing moves without cross blocks.")
  else:
    verdict = WEAKER
    reason = (f"up-weighting one channel {both} the others here (extremes {lowest[0]:.3f}x, "
              f"{highest[0]:.3f}x): only one of the two stated effects is shown.")
  return Outcome(
      measured={"speed_up": {"weighted": lowest[1][0], "observed": lowest[1][1],
                             "w": round(float(lowest[2]), 3),
                             "energy_ratio": round(float(lowest[0]), 3)},
                "slow_down": {"weighted": highest[1][0], "observed": highest[1][1],
                              "w": round(float(highest[2]), 3),
                              "energy_ratio": round(float(highest[0]), 3)},
                "control_block_diagonal_max_dev": float(f"{control:.1e}"), **cross},
      expected="an up-weight on one channel speeds up another, an up-weight slows down another; "
               "none without cross blocks",
      tolerance="ratios beyond 1 +- 0.01; control 1e-10",
      verdict=verdict, reason=reason, figures=[path],
      quantities=[Quantity(f"lowest energy ratio ({lowest[1][1]} under up-weighted {lowest[1][0]})",
                           float(lowest[0]), reference=0.99, source="speed-up threshold"),
                  Quantity(f"highest energy ratio ({highest[1][1]} under up-weighted {highest[1][0]})",
                           float(highest[0]), reference=1.01, source="slow-down threshold"),
                  Quantity("control without cross blocks: max deviation", float(control),
                           reference=1e-10, source="tolerance")],
      notes=("Energy ratios at T = 10/lmax(K), w = 1, 10, 100: " + "; ".join(
          f"weight on {a}, {b}: {np.round(c[[0, 8, 16]], 3).tolist()}" for (a, b), c in curves.items())
          + f". Without the cross blocks nothing moves (deviation {control:.1e})."))


CLAIMS = [Claim(id="ADV-7", paper="adversarial-pinn-ntk",
                statement="Cross blocks K_rb, K_r0, K_b0 couple interior, boundary and initial channels: "
                          "an adversarial weight on one channel can speed up or slow down another.",
                run=run)]
