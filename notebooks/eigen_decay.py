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
# # Eigen-decay of operator-informed kernels
#
# Spectra of `K` and `T_x T_x' K` (Gan, Li, Lin & Shi: the operator does not make the
# decay faster in most cases), checked first against two exact references: circulant
# Gram matrices on the circle and the Funk-Hecke formula on the sphere.
# `NTKPDE_SMALL=1` (set by the test suite) keeps the sizes tiny.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import ntkpde
from ntkpde import exact_spectra, large_eigen, quadrature, spectrum
from ntkpde.operators import identity, parse

small = os.environ.get("NTKPDE_SMALL") == "1"

# %% [markdown]
# ## 1. The circle: circulant Gram, `d^2/dt^2` multiplies mode `n` by `n^4`
#
# With the periodic embedding `t -> (cos t, sin t)` the MLP kernel depends on `t - t'`
# only, so at equispaced angles the Gram matrix is circulant and its eigenvalues are the
# DFT of one row. Differentiating twice in each argument multiplies the Fourier
# coefficient of mode `n` by `n^4`: the operator makes the decay *slower*.

# %%
net = ntkpde.mlp(2, activation="erf", input_map=ntkpde.input_maps.periodic_embedding())
theta, _ = quadrature.circle(64)
g = np.asarray(ntkpde.operator_kernel(net.kernel_fn, identity(("t",)))(theta))
g_tt = np.asarray(ntkpde.operator_kernel(net.kernel_fn, parse("u_tt", coords=("t",)))(theta))
dft, dft_tt = exact_spectra.circulant_eigenvalues(g[0]), exact_spectra.circulant_eigenvalues(g_tt[0])
print("max |eigh - DFT| / lambda_1 =",
      np.max(np.abs(spectrum.eigenvalues(g) - np.sort(dft)[::-1])) / dft.max())
m = np.arange(1, 17)
print("lambda_tt(m) / (m^4 lambda(m)) - 1 for m = 1..16:\n", dft_tt[m] / (m**4.0 * dft[m]) - 1)

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.semilogy(m, dft[m], "o-", label="K")
ax.semilogy(m, dft_tt[m], "s-", label="d_tt d_t't' K")
ax.semilogy(m, m**4.0 * dft[m], "k:", label="m^4 x K")
ax.set_xlabel("frequency m")
ax.legend()
plt.show()

# %% [markdown]
# ## 2. The sphere: Funk-Hecke eigenvalues and multiplicities
#
# On `S^2` the NTK of an MLP is a dot-product kernel `k(x . y)`; the eigenvalue of degree
# `l` is `2 pi int k(t) P_l(t) dt` with multiplicity `2l + 1`. The Nystrom spectrum on a
# product Gauss rule converges to it geometrically.

# %%
kfn = ntkpde.mlp(2, activation="erf").kernel_fn
mu = exact_spectra.funk_hecke_eigenvalues(exact_spectra.dot_product_profile(kfn, 3), 3, range(10))
exact = exact_spectra.sphere_spectrum(mu, 3)[:64]
for n_polar in ((6, 8, 10) if small else (6, 8, 10, 12, 14)):
  x, w = quadrature.sphere2(n_polar)
  lam = spectrum.eigenvalues(kfn(x, x, "ntk"), weights=w)[:64]
  print(f"n_polar = {n_polar:2d} (N = {len(x):3d}): max |Nystrom - Funk-Hecke| / mu_max = "
        f"{np.max(np.abs(lam - exact)) / exact[0]:.1e}")
print("degree, mu_l, multiplicity:", [(l, f"{v:.3g}", 2 * l + 1) for l, v in enumerate(mu[:6])])

# %% [markdown]
# ## 3. Nystrom convergence in N on a box, and decay fits of `K` vs `T_x T_x' K`
#
# Gauss-Legendre grids on `[-1, 1]`: the top eigenvalues of the `d^2/dx^2` kernel settle
# geometrically as the grid is refined, but need more nodes than `K` itself (the 4th
# derivative of the kernel varies on a shorter scale). Then power-law fits on a common window of ranks, and the direct
# fit of the ratio `lambda_k(K_T) / lambda_k(K)` (`delta > 0` would mean faster decay).

# %%
lap = parse("u_xx", coords=("x",))
kfn1 = ntkpde.mlp(2, activation="erf").kernel_fn
previous = None
for n in (16, 32, 48, 64):
  x, w = quadrature.gauss_legendre_box([-1.0], [1.0], n)
  lam = spectrum.eigenvalues(ntkpde.operator_kernel(kfn1, lap)(x), weights=w)[:8]
  if previous is not None:
    print(f"N = {n}: max relative change of the top 8 = {np.max(np.abs(lam - previous) / lam):.1e}")
  previous = lam

# %%
x, w = quadrature.gauss_legendre_box([-1.0, -1.0], [1.0, 1.0], 8 if small else 14)
lap2 = parse("u_xx + u_yy", coords=("x", "y"))
spectra = {"K": spectrum.eigenvalues(ntkpde.operator_kernel(kfn1, identity(("x", "y")))(x), weights=w),
           "Lap Lap' K": spectrum.eigenvalues(ntkpde.operator_kernel(kfn1, lap2)(x), weights=w)}
window = spectrum.common_window(*spectra.values())
print(spectrum.comparison_table({name: spectrum.summary(lam, window=window)
                                 for name, lam in spectra.items()}))
print("delta = alpha(Lap Lap' K) - alpha(K):", spectrum.relative_decay(*spectra.values(), window=window))

fig, ax = plt.subplots(figsize=(5, 3.5))
for name, lam in spectra.items():
  pos = lam[lam > 0]
  ax.loglog(np.arange(1, pos.size + 1), pos / pos[0], label=name)
ax.axvspan(*window, color="grey", alpha=0.15, label="fit window")
ax.set_xlabel("k")
ax.set_ylabel("lambda_k / lambda_1")
ax.legend()
plt.show()

# %% [markdown]
# ## 4. Top eigenvalues without forming the matrix
#
# `large_eigen.top_eigenvalues` runs block subspace iteration over kernel tiles; every
# Ritz value comes with a residual bound. (`benchmarks/spectrum_large_n.py` does
# N = 65,536.)

# %%
n = 1024 if small else 4096
pts = np.random.default_rng(0).uniform(-1, 1, (n, 2))
kernel = ntkpde.operator_kernel(kfn1, identity(("x", "y")), tile=512)
top = large_eigen.top_eigenvalues(kernel, pts, 50, block=100, tile=512)
dense = spectrum.eigenvalues(kernel(pts))[:50]
print(f"passes {top.passes}, max |tiled - dense| / lambda_1 = "
      f"{np.max(np.abs(top.values - dense)) / dense[0]:.1e}, "
      f"max residual bound / lambda_1 = {top.residuals.max() / top.values[0]:.1e}")
