# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Closed-form dynamics of infinite-width PINNs
#
# An infinitely wide network trained by gradient descent on the physics loss
# `L = 1/(2n) sum_c w_c sum_i r_i^2` moves its residuals as `dr/dt = -(eta/n) K A r`, with `K`
# the block operator NTK of the channels. `ntkpde.predict` solves this in closed form: the
# mean (and covariance) of the trained ensemble at any time, from one factorisation.
# `NTKPDE_SMALL=1` (set by the test suite) keeps the sizes tiny.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import ntkpde
from ntkpde import problems, weights
from ntkpde.predict import gradient_descent_mse_ensemble, residual_flow

small = os.environ.get("NTKPDE_SMALL") == "1"
n_interior = 12 if small else 32

# %% [markdown]
# ## A benchmark problem
# `poisson1d`: `u_xx = -16 pi^2 sin(4 pi x)` on [0, 1], `u(0) = u(1) = 0`. Targets come from
# applying each channel operator to the exact solution symbolically.

# %%
problem = problems.get("poisson1d")
sample = problem.sample({"interior": n_interior}, sampler="grid")
net = ntkpde.mlp(depth=1, activation="erf", input_map=problem.input_map())
print(problem.description, sample.sizes)

# %% [markdown]
# ## The trained ensemble at several times
# Time counts optimiser steps at learning rate `eta`; `t=None` is `t = inf`. We take `eta`
# at half the stability limit `2 n / lambda_max(K)`.

# %%
G = ntkpde.gram(net.kernel_fn, sample.channels)
K = np.asarray(G.matrix)
n = len(K)
eta = n / np.linalg.eigvalsh(K)[-1]
predict_fn = gradient_descent_mse_ensemble(net.kernel_fn, sample.channels, sample.targets,
                                           learning_rate=eta, diag_reg=1e-12)
x = np.linspace(0, 1, 201)[:, None]
exact = problem.exact_fn()(x)
times = np.array([1e1, 1e3, 1e5])
means = predict_fn(times, x)
converged = predict_fn(None, x)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(x, exact, "k", lw=2, label="exact")
for t, m in zip(times, means):
  ax.plot(x, m, "--", label=f"t = {t:g}")
ax.plot(x, converged, ":", label="t = inf")
ax.legend()
plt.show()
print("max error at t = inf:", np.abs(converged - exact).max())

# %% [markdown]
# ## Per-channel residual energy, with and without the NTK trace weights
# `weights.trace_weights` gives `lambda_c = Tr(K) / Tr(K_cc)` (NTKW paper eq. 5).

# %%
lam = weights.trace_weights(G)
print(lam)
steps = np.logspace(-1, 8, 100)
r0 = -np.concatenate(sample.targets) + np.r_[np.zeros(n_interior), np.ones(2)]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for ax, (title, w) in zip(axes, [("no weights", None), ("trace weights", weights.per_residual(lam, G.sizes))]):
  r = residual_flow(K, r0, w, learning_rate=eta / n)(steps)
  for c in G.names:
    ax.loglog(steps, np.clip(0.5 * np.sum(r[:, G.slices[c]] ** 2, 1), 1e-30, None), label=c)
  ax.set_title(title)
  ax.set_xlabel("steps")
axes[0].legend()
plt.show()

# %% [markdown]
# ## Discrete gradient descent and the stability limit
# `flow.steps(k)` is `(I - c K A)^k r0`; above `2 / lambda_max` it diverges.

# %%
flow = residual_flow(K, r0, learning_rate=eta / n)
limit = flow.max_stable_learning_rate * n
print(f"largest stable eta: {limit:.3e} (we use {eta:.3e})")
k = np.arange(0, 2001, 100)
for factor in (0.9, 1.01):
  r_k = residual_flow(K, r0, learning_rate=factor * limit / n).steps(k)
  print(f"eta = {factor} x limit: ||r_k|| at k = 2000: {np.linalg.norm(r_k[-1]):.3e}")
print("gradient descent vs gradient flow after 1000 steps:",
      np.abs(flow.steps(1000) - flow(1000.0)).max() / np.abs(r0).max())
