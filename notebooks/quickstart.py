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
# # ntkpde quickstart
#
# The infinite-width NTK of a network `u(x; theta)` trained on the residuals of a linear
# PDE `T u = f` is the operator-informed kernel `T_x T_x' Theta(x, x')`. This notebook
# builds one for the 2-D Laplacian, assembles the block Gram matrix of interior and
# boundary channels, and checks one entry against finite differences.
# `NTKPDE_SMALL=1` (set by the test suite) keeps the sizes tiny.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import ntkpde

small = os.environ.get("NTKPDE_SMALL") == "1"
n_int, n_bd = (40, 16) if small else (400, 80)

# %% [markdown]
# A depth-2 erf network (NTK parameterisation). Only `init_fn`/`apply_fn` depend on the
# width; `kernel_fn` is the analytic infinite-width limit.

# %%
net = ntkpde.mlp(depth=2, width=512, activation="erf", W_std=1.5, b_std=0.1)
lap = ntkpde.operators.parse("u_xx + u_yy", coords=("x", "y"))
ident = ntkpde.operators.identity(("x", "y"))
print(lap, "| order", lap.order)

# %% [markdown]
# Interior points in the unit square, boundary points on its edges.

# %%
rng = np.random.default_rng(0)
x_int = rng.uniform(0, 1, (n_int, 2))
s = rng.uniform(0, 1, n_bd)
side = np.arange(n_bd) % 4
x_bd = np.stack([np.where(side == 0, 0.0, np.where(side == 1, 1.0, s)),
                 np.where(side == 2, 0.0, np.where(side == 3, 1.0, s))], axis=1)

G = ntkpde.gram(net.kernel_fn, [("interior", lap, x_int), ("boundary", ident, x_bd)], get="ntk")
print(G.sizes, G.matrix.shape)
print("trace per block:", {c: float(np.trace(G.block(c, c))) for c in G.names})

# %% [markdown]
# An independent check: `Lap_x Lap_x' K` at one pair by central finite differences of the
# plain kernel (step `h`, 4th-order difference: error about `h^2 K^(6)` plus rounding
# `eps |K| / h^4`).

# %%
K = ntkpde.operator_kernel(net.kernel_fn, lap, lap, get="ntk")
a, b = x_int[:1], x_int[1:2]
h = 1e-2
offsets = [(h, 0), (-h, 0), (0, h), (0, -h)]


def k(p, q):
  return float(net.kernel_fn(p, q, "ntk")[0, 0])


def lap_q(p):
  return (sum(k(p, b + np.array([o])) for o in offsets) - 4 * k(p, b)) / h**2


fd = (sum(lap_q(a + np.array([o])) for o in offsets) - 4 * lap_q(a)) / h**2
exact = float(K(a, b)[0, 0])
print(f"autodiff {exact:.8f}  finite differences {fd:.8f}  relative gap {abs(fd - exact) / abs(exact):.1e}")

# %% [markdown]
# Eigenvalues of the blocks: the Laplacian block decays differently from the boundary block.

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
for c in G.names:
  ev = np.sort(np.linalg.eigvalsh(np.asarray(G.block(c, c))))[::-1]
  ax.loglog(np.arange(1, len(ev) + 1), np.clip(ev, 1e-16, None), label=c)
ax.set_xlabel("k")
ax.set_ylabel("eigenvalue")
ax.legend()
plt.show()
