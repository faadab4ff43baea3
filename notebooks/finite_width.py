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
# # Finite-width cross-checks
# The empirical operator NTK of finite networks against the analytic kernel, and a short
# training run against the infinite-width prediction (small sizes).

# %%
import jax
import numpy as np

import ntkpde
from ntkpde import finite, operators, training

chans = [("r", operators.parse("u_xx", "x"), np.linspace(-0.9, 0.9, 5)[:, None]),
         ("b", operators.identity("x"), np.array([[-1.0], [1.0]]))]
K = np.asarray(ntkpde.gram(ntkpde.mlp(1, 64, "erf").kernel_fn, chans).matrix)
for width in (64, 512):
  net = ntkpde.mlp(1, width, "erf")
  _, params = net.init_fn(jax.random.PRNGKey(0), (-1, 1))
  K_hat = finite.empirical_gram(net.apply_fn, params, chans).matrix
  print(width, finite.relative_frobenius_error(K_hat, K))

# %% [markdown]
# Gradient descent on `1/(2n) sum r^2` with `eta = n / lambda_max(K)`; the infinite-width
# prediction `(I - (eta/n) K)^k r0` starts from the network's own `r0`.

# %%
targets = [-np.pi ** 2 * np.sin(np.pi * chans[0][2][:, 0]), np.zeros(2)]
eta = len(K) / np.linalg.eigvalsh(K).max()
res = training.train(net.apply_fn, params, chans, targets, learning_rate=eta, steps=50,
                     checkpoints=[0, 10, 25, 50])
pred = training.kernel_residuals(K, res.residuals[0], res.steps, learning_rate=eta)
print(np.linalg.norm(res.residuals - pred, axis=1) / np.linalg.norm(res.residuals[0]))
