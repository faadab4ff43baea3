"""ADV-7: channel coupling: with interior, boundary and initial channels the cross blocks
``K_rb, K_r0, K_b0`` couple the channels, so an adversarial (larger) weight on one channel
can speed up or slow down another.

Setting: heat equation ``u_t = 0.1 u_xx`` (``ntkpde.problems`` "heat1d"), 16 interior,
6 boundary, 6 initial points (Sobol), block NTK Gram of a depth-1 erf network; initial
residuals ``r0 = -y`` (ensemble mean); weights ``w`` on the boundary or the initial
channel (others 1); the interior residual energy ``E_r(T; w)`` at ``T = 10 / lmax(K)``
from :func:`ntkpde.predict.residual_flow`, relative to ``w = 1``.

Checks: (1) some weight on some channel gives ``E_r(T; w) / E_r(T; 1) < 0.99`` (speed-up)
and some gives ``> 1.01`` (slow-down) -- 1 % is far above the flow's error (~1e-10);
(2) control: with the cross blocks set to zero (block-diagonal ``K``) and a random
``r0``, the interior energy does not depend on the other channels' weights: ratio
``1`` to ``1e-10``. The exact interior forcing of the heat problem is 0, so the control
needs a random ``r0``.
"""
import matplotlib.pyplot as plt
import numpy as np

import ntkpde
from ntkpde import problems
from ntkpde.predict import residual_flow
from verification import Claim, Outcome
from verification._dynamics import B_STD, W_STD


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
  ws = np.logspace(-1, 2, 25)

  def interior_energy(kernel, r, channel, w):
    A = np.ones(n)
    A[sl[channel]] = w
    return np.sum(residual_flow(kernel, r, A)(T)[sl["interior"]] ** 2)
  curves = {}
  for channel in ("boundary", "initial"):
    base = interior_energy(K, r0, channel, 1.0)
    curves[channel] = np.array([interior_energy(K, r0, channel, w) for w in ws]) / base
  lowest = min((c.min(), ch, ws[np.argmin(c)]) for ch, c in curves.items())
  highest = max((c.max(), ch, ws[np.argmax(c)]) for ch, c in curves.items())
  block_diagonal = np.zeros_like(K)
  for c in G.names:
    block_diagonal[sl[c], sl[c]] = K[sl[c], sl[c]]
  r_rand = np.random.default_rng(0).normal(size=n)
  base = interior_energy(block_diagonal, r_rand, "boundary", 1.0)
  control = max(abs(interior_energy(block_diagonal, r_rand, ch, w) / base - 1)
                for ch in ("boundary", "initial") for w in (0.1, 10.0, 100.0))
  cross = {f"||K_{a}{b}||/||K||": float(f"{np.linalg.norm(G.block(a, b)) / np.linalg.norm(K):.3g}")
           for a, b in (("interior", "boundary"), ("interior", "initial"), ("boundary", "initial"))}
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for ch, c in curves.items():
    ax.loglog(ws, c, "o-", ms=3, label=f"weight on {ch}")
  ax.axhline(1, color="k", lw=0.5)
  ax.set_xlabel("weight w of one channel (others 1)")
  ax.set_ylabel("E_interior(T; w) / E_interior(T; 1)")
  ax.legend(fontsize=8)
  path = ctx.save_figure(fig, "adv7.png")
  passed = lowest[0] < 0.99 and highest[0] > 1.01 and control <= 1e-10
  return Outcome(
      measured={"speed_up": {"channel": lowest[1], "w": round(float(lowest[2]), 3),
                             "interior_energy_ratio": round(float(lowest[0]), 3)},
                "slow_down": {"channel": highest[1], "w": round(float(highest[2]), 3),
                              "interior_energy_ratio": round(float(highest[0]), 3)},
                "control_block_diagonal_max_dev": float(f"{control:.1e}"), **cross},
      expected="some weight speeds up, some slows down the interior; none without cross blocks",
      tolerance="ratios beyond 1 +- 0.01; control 1e-10",
      passed=bool(passed), figures=[path],
      notes=(f"At T = 10/lmax(K): up-weighting the boundary channel by w changes the interior "
             f"residual energy by factors {np.round(curves['boundary'][[0, 8, 16, 24]], 3).tolist()} "
             f"(w = 0.1, 1, 10, 100); up-weighting the initial channel by "
             f"{np.round(curves['initial'][[0, 8, 16, 24]], 3).tolist()}. Without the cross blocks "
             f"the interior does not notice (deviation {control:.1e})."))


CLAIMS = [Claim(id="ADV-7", paper="adversarial-pinn-ntk",
                statement="Cross blocks K_rb, K_r0, K_b0 couple interior, boundary and initial channels: "
                          "an adversarial weight on one channel can speed up or slow down another.",
                run=run)]
