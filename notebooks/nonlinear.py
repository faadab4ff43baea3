# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Nonlinear PDEs and hard constraints
#
# 1. A nonlinear operator from text, its residual and its Frechet derivative (a
#    `LinearOperator` whose coefficients come from the reference function).
# 2. Gauss-Newton kernel collocation (Chen, Hosseini, Owhadi & Stuart 2021) on
#    `-Lap u + u^3 = f` and on viscous Burgers, with a Gaussian kernel and the NTK.
# 3. Hard constraints `u = A + B N`: how `B` reshapes the spectrum of the operator kernel.
#
# `NTKPDE_SMALL=1` (set by the test suite) keeps the sizes tiny.

# %%
import os

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import ntkpde
from ntkpde import nonlinear, output_maps, problems, spectrum
from ntkpde.operators import parse, parse_nonlinear

small = os.environ.get("NTKPDE_SMALL") == "1"

# %% [markdown]
# ## 1. Nonlinear operators and their linearisation

# %%
N = parse_nonlinear("u_t + u*u_x - nu*u_xx", ("x", "t"), {"nu": 0.05})
u_ref = lambda p: jnp.sin(jnp.pi * p[..., 0]) * jnp.exp(-p[..., 1])  # noqa: E731
L = N.linearize(u_ref)
print("N =", N)
print("N'[u_ref] =", L)
x = jnp.asarray([[0.3, 0.2], [-0.4, 0.7]])
print("N[u_ref](x) =", N.residual(u_ref)(x))
print("linearised kernel L_x L_x' K at two points:\n",
      ntkpde.operator_kernel(nonlinear.gaussian_kernel(0.5), L)(np.asarray(x)))

# %% [markdown]
# ## 2. Gauss-Newton kernel collocation
#
# `-Lap u + u^3 = f` on the unit square with `u* = sin(pi x) sin(pi y) + 4 sin(4 pi x)
# sin(4 pi y)`: the Gaussian kernel (length scale 0.2) converges in a few iterations and
# its error falls with the number of collocation points.

# %%
elliptic = problems.get("nonlinear_elliptic2d")
x_test = np.random.default_rng(0).uniform(0, 1, (400, 2))
exact = elliptic.exact_fn()(x_test)
for n in ([36, 100] if small else [100, 400, 900]):
  sample = elliptic.sample({"interior": n, "boundary": 4 * int(np.sqrt(n))}, sampler="sobol")
  sol = nonlinear.solve(nonlinear.gaussian_kernel(0.2), sample.channels, sample.targets,
                        x_test=x_test, exact=exact)
  print(f"N = {n:4d}: {len(sol.history)} iterations, relative L2 error "
        f"{sol.history[-1].error:.2e}")

# %% [markdown]
# Viscous Burgers `u_t + u u_x = nu u_xx`, `nu = 0.1/pi`, against the Cole-Hopf
# reference (space-time collocation, anisotropic Gaussian kernel).

# %%
burgers = problems.get("burgers1d_mild")
sizes = ({"interior": 128, "boundary": 16, "initial": 16} if small
         else {"interior": 2048, "boundary": 64, "initial": 64})
sample = burgers.sample(sizes, sampler="sobol")
grid = np.stack(np.meshgrid(np.linspace(-1, 1, 81), np.linspace(0, 1, 41), indexing="ij"),
                -1).reshape(-1, 2)
reference = burgers.exact_fn()(grid)
sol = nonlinear.solve(nonlinear.gaussian_kernel((0.1, 0.2)), sample.channels, sample.targets,
                      x_test=grid, exact=reference)
for step in sol.history:
  print(step.iteration, f"residual {step.residual:.2e}, update {step.update:.2e}, "
                        f"error {step.error:.2e}")
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
for ax, values, title in zip(axes, [reference, sol(grid)], ["Cole-Hopf", "Gauss-Newton"]):
  im = ax.imshow(values.reshape(81, 41).T, origin="lower", extent=[-1, 1, 0, 1], aspect="auto")
  ax.set_title(title)
  ax.set_xlabel("x")
  ax.set_ylabel("t")
  fig.colorbar(im, ax=ax)

# %% [markdown]
# ## 3. Hard constraints reshape the operator kernel's spectrum
#
# `u = B N` with `B = 0` at `x = 0, 1` satisfies `u(0) = u(1) = 0` exactly. The interior
# operator kernel is then `T_x T_x' [B(x) B(x') K(x, x')]` (product rule inside). Its
# spectrum for `T = -d^2/dx^2`, no constraint and two choices of `B`, depth-2 erf NTK:

# %%
net = ntkpde.mlp(2, activation="erf", input_map=ntkpde.input_maps.box_normalization([0.0], [1.0]))
pts = (np.arange(24 if small else 128) + 0.5)[:, None] / (24 if small else 128)
T = parse("-u_xx", "x")
fig, ax = plt.subplots(figsize=(6, 4))
for label, B in [("B = 1 (no constraint)", "1"), ("B = x (1 - x)", "x*(1 - x)"),
                 ("B = sin(pi x)", "sin(pi*x)")]:
  kern = output_maps.constrain(net, output_maps.output_map("x", B=B)).kernel_fn
  lam = spectrum.eigenvalues(ntkpde.operator_kernel(kern, T)(pts))
  lam = lam / lam[0]
  print(f"{label:28s} lambda_2/lambda_1 {lam[1]:.2e}, lambda_10/lambda_1 {lam[9]:.2e}")
  ax.semilogy(np.arange(1, len(lam) + 1), np.clip(lam, 1e-18, None), label=label)
ax.set_xlabel("k")
ax.set_ylabel("lambda_k / lambda_1")
ax.legend(fontsize=8)
