"""Nonlinear problems and their references: symbolic targets against autodiff residuals,
the Cole-Hopf quadrature against a method-of-lines finite-difference solve and against
its short-time Taylor expansion, the Eikonal reference against the PDE by finite
differences and against a coarser grid."""
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.sparse
import sympy

import ntkpde  # noqa: F401  (float64)
from ntkpde import problems, references

NONLINEAR = ("nonlinear_elliptic2d", "allen_cahn1d", "burgers1d", "burgers1d_mild", "eikonal2d")


@pytest.mark.parametrize("name", ["nonlinear_elliptic2d", "allen_cahn1d"])
def test_symbolic_targets_match_autodiff_residual(name):
  """``f = N[u*]`` by SymPy substitution vs ``N.residual`` of ``u*`` through JAX autodiff."""
  problem = problems.get(name)
  u = sympy.lambdify(problem.symbols, problem._exact_expr(), "jax")
  u_fn = lambda p: u(*[p[..., i] for i in range(p.shape[-1])])  # noqa: E731
  sample = problem.sample({"interior": 16}, seed=3)
  ch = sample.channels[0]
  got = np.asarray(ch.operator.residual(u_fn)(jnp.asarray(ch.points)))
  np.testing.assert_allclose(sample.targets[0], got, rtol=1e-12,
                             atol=1e-12 * np.abs(got).max() + 1e-13)


def test_registry_and_reference_problems():
  for name in NONLINEAR:
    problem = problems.get(name)
    sample = problem.sample({c.name: 4 for c in problem.channels})
    assert all(np.all(np.isfinite(t)) for t in sample.targets)
    assert np.all(np.isfinite(problem.exact_fn()(sample.channels[0].points)))
  burgers = problems.get("burgers1d_mild")
  x0 = np.stack([np.linspace(-1, 1, 7), np.zeros(7)], 1)
  np.testing.assert_allclose(burgers.exact_fn()(x0), -np.sin(np.pi * x0[:, 0]), atol=1e-15)
  initial = dict(zip([c.name for c in burgers.channels], burgers.sample().targets))["initial"]
  assert np.abs(initial).max() > 0.5
  with pytest.raises(ValueError, match="exact solution or a reference"):
    problems.NonlinearProblem("bad", ("x",), ((0.0, 1.0),), "",
                              (problems.ChannelSpec("interior", "u_xx - u**2", "interior", 4),))


def _burgers_method_of_lines(nu, cells, times):
  """Conservative central differences in x (``-(u^2/2)_x + nu u_xx``), BDF in time."""
  x = np.linspace(-1, 1, cells + 1)
  h = x[1] - x[0]

  def rhs(_, v):
    u = np.concatenate([[0.0], v, [0.0]])
    return -(u[2:] ** 2 - u[:-2] ** 2) / (4 * h) + nu * (u[2:] - 2 * u[1:-1] + u[:-2]) / h ** 2
  band = scipy.sparse.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(cells - 1, cells - 1))
  out = scipy.integrate.solve_ivp(rhs, (0, times[-1]), -np.sin(np.pi * x[1:-1]), method="BDF",
                                  t_eval=times, rtol=1e-10, atol=1e-12, jac_sparsity=band)
  return x[1:-1], out.y.T


def test_cole_hopf_matches_finite_differences_mild_viscosity():
  nu, times = 0.1 / np.pi, np.array([0.25, 1.0])
  coarse_x, coarse = _burgers_method_of_lines(nu, 400, times)
  fine_x, fine = _burgers_method_of_lines(nu, 800, times)
  fine = fine[:, 1::2]                       # the coarse grid's nodes
  for k, t in enumerate(times):
    ref = references.burgers_cole_hopf(np.stack([coarse_x, np.full_like(coarse_x, t)], 1),
                                       {"nu": nu})
    # Second-order FD: |coarse - fine| is 3x the error of `fine`.
    estimate = np.abs(coarse[k] - fine[k]).max()
    assert np.abs(fine[k] - ref).max() <= estimate + 1e-8, (t, estimate)
    assert estimate < 1e-3


@pytest.mark.parametrize("nu", [0.01 / np.pi, 0.1 / np.pi])
def test_cole_hopf_short_time_taylor(nu):
  """``u(x, t) = u0 + t (nu u0'' - u0 u0') + O(t^2)`` with ``u0 = -sin(pi x)``."""
  t = 1e-5
  x = np.linspace(-0.95, 0.95, 9)
  u0, du0, d2u0 = -np.sin(np.pi * x), -np.pi * np.cos(np.pi * x), np.pi ** 2 * np.sin(np.pi * x)
  taylor = u0 + t * (nu * d2u0 - u0 * du0)
  got = references.burgers_cole_hopf(np.stack([x, np.full_like(x, t)], 1), {"nu": nu})
  # The O(t^2) term: |u_tt| <= ~ (pi^2 + pi^2 nu)^2 ~ 100, so the error is below 1e-8.
  np.testing.assert_allclose(got, taylor, rtol=0, atol=1e-8)
  assert np.abs(got - u0).max() > 1e-5      # the first-order term is resolved


def test_eikonal_reference_satisfies_the_pde():
  eps = 0.1
  params = {"eps": eps}
  pts = np.random.default_rng(0).uniform(0.1, 0.9, (20, 2))
  h = 1e-3

  def u(p):
    return references.eikonal_regularised(p, params, cells=128)
  e = np.eye(2) * h
  ux = (u(pts + e[0]) - u(pts - e[0])) / (2 * h)
  uy = (u(pts + e[1]) - u(pts - e[1])) / (2 * h)
  lap = sum(u(pts + e[i]) - 2 * u(pts) + u(pts - e[i]) for i in range(2)) / h ** 2
  residual = ux ** 2 + uy ** 2 + eps * lap - 1
  assert np.abs(residual).max() < 1e-4, np.abs(residual).max()
  coarse = references.eikonal_regularised(pts, params, cells=64)
  assert np.abs(coarse - u(pts)).max() < 1e-6
  edge = np.array([[0.0, 0.3], [1.0, 0.7], [0.5, 0.0], [0.2, 1.0]])
  np.testing.assert_allclose(u(edge), 0.0, atol=1e-12)
  with pytest.raises(ValueError, match="in \\[0, 1\\]"):
    u(np.array([[1.5, 0.5]]))
