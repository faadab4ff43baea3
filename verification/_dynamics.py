"""Setups shared by the dynamics claims (NTKW-1, DLAB-2..4, ADV-1..8); no claims here.

* :func:`poisson1d` -- the NTKW paper's example ``u_xx = -16 pi^2 sin(4 pi x)`` on [0, 1]
  with zero Dirichlet data (``ntkpde.problems`` "poisson1d"), interior points on a grid,
  erf MLP (NTK parameterisation, W_std 1.5, b_std 0.1) on ``[-1, 1]``-normalised inputs.
* :func:`circle_channels`, :func:`circle` -- the derivative-labels paper's setup: fit ``x1 x2`` at
  ``x = (cos g, sin g)``, ``g ~ N(0, 1)``, with labels of ``d_h f`` (default
  ``h = e_1``, label ``x2``); a 4-layer network = 3 hidden erf layers + readout.
"""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

import ntkpde  # noqa: E402
from ntkpde import operators, problems  # noqa: E402
from verification import B_STD, W_STD  # noqa: E402

XY = ("x", "y")


def poisson1d(n_interior: int, depth: int = 1):
  """``(block NTK Gram, Sample, Network)`` of the 1D Poisson problem, channels
  ``interior`` (``u_xx``) and ``boundary`` (``u`` at 0 and 1)."""
  problem = problems.get("poisson1d")
  net = ntkpde.mlp(depth, activation="erf", W_std=W_STD, b_std=B_STD,
                   input_map=problem.input_map())
  sample = problem.sample({"interior": n_interior}, sampler="grid")
  return ntkpde.gram(net.kernel_fn, sample.channels, "ntk"), sample, net


def circle_channels(m: int, seed: int, direction=(1, 0), equispaced: bool = False):
  """``(channels f and df, labels (L, L'), X)`` of the derivative-labels problem: ``m``
  points ``x = (cos g, sin g)`` (``g ~ N(0, 1)`` drawn by ``default_rng(seed)``, or
  equispaced), ``L = x1 x2`` and ``L' = d_h (x1 x2)`` along ``direction`` ``h``."""
  rng = np.random.default_rng(seed)
  g = (np.linspace(0, 2 * np.pi, m, endpoint=False) if equispaced else rng.normal(size=m))
  X = np.stack([np.cos(g), np.sin(g)], axis=1)
  d = operators.directional_derivative(XY, direction)
  # d_h (x y) = h_1 y + h_2 x, with h possibly depending on x (e.g. tangential (-y, x)).
  h = {t.multi_index: c for t, c in zip(d.terms, d.coefficients(X))}
  labels = (X[:, 0] * X[:, 1],
            np.asarray(h.get((1, 0), 0.0) * X[:, 1] + h.get((0, 1), 0.0) * X[:, 0]))
  return [("f", operators.identity(XY), X), ("df", d, X)], labels, X


def circle(m: int, seed: int, depth: int = 3, direction=(1, 0), equispaced: bool = False,
           w_std: float = W_STD):
  """``(block NTK Gram over channels f and df, labels (L, L'), X)`` of
  :func:`circle_channels` for an erf MLP with ``depth`` hidden layers."""
  chans, labels, X = circle_channels(m, seed, direction, equispaced)
  net = ntkpde.mlp(depth, activation="erf", W_std=w_std, b_std=B_STD)
  return ntkpde.gram(net.kernel_fn, chans, "ntk"), labels, X


def energy(r: np.ndarray) -> np.ndarray:
  """Residual energy ``E = ||r||^2 / 2`` along the last axis."""
  return 0.5 * np.sum(np.asarray(r) ** 2, axis=-1)


def generator_kernel(n_interior: int = 8):
  """``(K, r0)``: the generator's residual NTK (Poisson 1D block Gram, see :func:`poisson1d`)
  and the ensemble-mean initial residuals ``-y`` plus a unit boundary offset."""
  G, sample, _ = poisson1d(n_interior)
  r0 = -np.concatenate(sample.targets) + np.r_[np.zeros(n_interior), np.ones(2)]
  return np.asarray(G.matrix), r0


def eigenvalue_error_bounds(M: np.ndarray):
  """Eigenvalues of ``M`` and first-order error bounds ``n eps ||M||_2 kappa_j`` with
  ``kappa_j = 1 / |y_j^H x_j|`` (unit left/right eigenvectors): the perturbation bound for a
  backward-stable eigensolver (Wilkinson)."""
  import scipy.linalg
  lam, left, right = scipy.linalg.eig(M, left=True, right=True)
  left = left / np.linalg.norm(left, axis=0)
  right = right / np.linalg.norm(right, axis=0)
  kappa = 1 / np.abs(np.sum(left.conj() * right, axis=0))
  return lam, len(M) * np.finfo(np.float64).eps * np.linalg.norm(M, 2) * kappa


class Discriminator:
  """The discriminator in its NTK regime over residual values (ADV-3/4/5).

  ``kD`` is the analytic NTK of a small stax MLP on scalar inputs (2 hidden erf layers).
  Residual samples ``r_i`` are the Poisson generator's initial interior residuals ``-f(x_i)``
  at 10 Sobol points, scaled to ``max |r_i| = 1`` (distinct values); the support is ``S = (r_1..r_N, 0)``. The
  evaluation set ``Z = S, r_i + h, r_i - h`` (``h = 1e-4``) serves the numerical ODE and
  the finite-difference derivatives ``d_r f(r_i)``.

  Function-space flow of a discriminator trained by gradient flow on an objective with
  functional gradient ``g(f_S)`` w.r.t. the values on ``S`` (ascent):
  ``d f(z)/dt = sum_s kD(z, s) g_s(f_S)`` -- integrated here with ``solve_ivp``.
  """
  h = 1e-4

  def __init__(self):
    sample = problems.get("poisson1d").sample({"interior": 10}, sampler="sobol", seed=0)
    r0 = -sample.targets[0]
    self.r = r0 / np.abs(r0).max()
    self.N = len(self.r)
    self.S = np.r_[self.r, 0.0]
    self.Z = np.r_[self.S, self.r + self.h, self.r - self.h]
    net = ntkpde.mlp(2, activation="erf", W_std=W_STD, b_std=B_STD)
    self.kernel_fn = net.kernel_fn
    ident = operators.identity(("r",))
    d = operators.parse("u_r", ("r",))
    self.K_ZS = np.asarray(ntkpde.operator_kernel(self.kernel_fn, ident, ident)(
        self.Z[:, None], self.S[:, None]))
    self.K_SS = self.K_ZS[:len(self.S)]
    self.dK_rS = np.asarray(ntkpde.operator_kernel(self.kernel_fn, d, ident)(
        self.r[:, None], self.S[:, None]))

  def integrate(self, gradient, times, f0=None, rtol=1e-11, atol=1e-13):
    """``f(Z, t)`` for ``t`` in ``times`` by DOP853 (rows: times)."""
    import scipy.integrate
    nS = len(self.S)
    f0 = np.zeros(len(self.Z)) if f0 is None else f0

    def rhs(_, f):
      return self.K_ZS @ gradient(f[:nS])
    sol = scipy.integrate.solve_ivp(rhs, (0, times[-1]), f0, method="DOP853", t_eval=times,
                                    rtol=rtol, atol=atol)
    return sol.y.T

  def fd_derivative(self, fZ):
    """Central differences ``d_r f(r_i)`` from values on ``Z`` (error ``h^2 f''' / 6``)."""
    nS, N = len(self.S), self.N
    return (fZ[..., nS:nS + N] - fZ[..., nS + N:]) / (2 * self.h)
