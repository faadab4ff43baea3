"""ntkpde.problems: exact solutions satisfy every channel (by finite differences, a route
independent of the symbolic targets), the issue's stated data, samplers, user problems.

Finite-difference tolerance: central differences with step ``h`` have truncation error
``h^2 omega^2 / 12`` relative to a term whose highest frequency is ``omega`` (at most
``8 pi`` here: ``(8 pi)^2 (5e-4)^2 / 12 = 1.3e-5``) and rounding ``eps / h^2 = 1e-9``
relative to ``|u|``; we assert ``1e-4`` times the size of the largest term.
"""
import numpy as np
import pytest
import sympy
from scipy.stats import qmc

from ntkpde import problems

H = 5e-4


def finite_difference(f, x, multi_index, h=H):
  """``D^alpha f`` at points ``x`` by nested central differences (orders 0-2 per axis)."""
  if not any(multi_index):
    return f(x)
  axis = next(i for i, k in enumerate(multi_index) if k)
  rest = list(multi_index)
  rest[axis] -= 1 if multi_index[axis] == 1 else 2
  e = np.zeros(x.shape[1])
  e[axis] = h

  def g(y):
    return finite_difference(f, y, rest, h)
  if multi_index[axis] == 1:
    return (g(x + e) - g(x - e)) / (2 * h)
  return (g(x + e) - 2 * g(x) + g(x - e)) / h ** 2


@pytest.mark.parametrize("name", [n for n in problems.names()  # nonlinear: test_nonlinear_problems
                                  if not isinstance(problems.get(n), problems.NonlinearProblem)])
def test_exact_solution_satisfies_every_channel_by_finite_differences(name):
  problem = problems.get(name)
  u = problem.exact_fn()
  sample = problem.sample(sizes={c.name: 12 for c in problem.channels}, sampler="sobol", seed=3)
  for channel, target in zip(sample.channels, sample.targets):
    pts = channel.points
    terms = []
    for term in channel.operator.terms:
      coeff = sympy.lambdify(problem.symbols, term.coefficient, "numpy")(*pts.T)
      terms.append(np.broadcast_to(coeff, (len(pts),)) * finite_difference(u, pts, term.multi_index))
    scale = max(np.abs(terms).max(), 1.0)
    assert np.abs(np.sum(terms, axis=0) - target).max() <= 1e-4 * scale, channel.name


def test_issue_data_poisson1d_and_wave1d():
  x = np.linspace(0, 1, 11)[:, None]
  p = problems.get("poisson1d")
  assert np.allclose(p.target_fn("interior")(x), -16 * np.pi ** 2 * np.sin(4 * np.pi * x[:, 0]),
                     rtol=0, atol=1e-11)
  assert np.allclose(p.target_fn("boundary")(np.array([[0.0], [1.0]])), 0, atol=1e-14)
  w = problems.get("wave1d")
  xt0 = np.stack([x[:, 0], np.zeros(11)], 1)
  assert w.operator("interior") == problems.operators.parse("u_tt - 4*u_xx", ("x", "t"))
  assert np.allclose(w.target_fn("initial")(xt0),
                     np.sin(np.pi * x[:, 0]) + np.sin(4 * np.pi * x[:, 0]) / 2, atol=1e-14)
  assert np.allclose(w.target_fn("initial_velocity")(xt0), 0, atol=1e-12)
  bd = w.points("boundary", 10)
  assert set(bd[:, 0]) == {0.0, 1.0} and np.allclose(w.target_fn("boundary")(bd), 0, atol=1e-14)


@pytest.mark.parametrize("sampler", problems.SAMPLERS)
def test_samplers_stay_in_the_domain_and_are_seeded(sampler):
  p = problems.get("heat1d")
  a = p.sample(sampler=sampler, seed=4)
  b = p.sample(sampler=sampler, seed=4)
  for ca, cb in zip(a.channels, b.channels):
    assert np.array_equal(ca.points, cb.points)
    assert np.all(ca.points >= 0) and np.all(ca.points <= 1)
  initial = dict(zip(a.sizes, a.channels))["initial"].points
  assert np.all(initial[:, 1] == 0.0)
  boundary = dict(zip(a.sizes, a.channels))["boundary"].points
  assert set(boundary[:, 0]) == {0.0, 1.0}
  if sampler != "grid":
    c = p.sample(sampler=sampler, seed=5)
    assert not np.array_equal(c.channels[0].points, a.channels[0].points)
    assert a.sizes == {"interior": 256, "boundary": 32, "initial": 32}


def test_grid_and_lhs_structure():
  p = problems.get("poisson2d")
  grid = p.points("interior", 50, "grid")
  assert len(grid) == 49 and len(np.unique(grid[:, 0])) == 7  # round(sqrt(50))^2
  lhs = p.points("interior", 40, "lhs", seed=1)
  for axis in range(2):  # Latin hypercube: one point per stratum in every coordinate
    assert sorted(np.floor(lhs[:, axis] * 40).astype(int)) == list(range(40))
  sob = p.points("interior", 64, "sobol", seed=2)
  assert qmc.discrepancy(sob) < qmc.discrepancy(p.points("interior", 64, "uniform", seed=2))


def test_user_problem_in_a_few_lines_and_params():
  problem = problems.Problem(
      name="test_cubic", coords=("x",), domain=((0.0, 1.0),), exact="x**3 - x",
      channels=(problems.ChannelSpec("interior", "u_xx", "interior", 8),
                problems.ChannelSpec("boundary", "u", ({"x": 0.0}, {"x": 1.0}), 2)))
  problems.register(problem)
  try:
    sample = problems.get("test_cubic").sample(sampler="lhs", seed=1)
    pts = sample.channels[0].points[:, 0]
    assert np.allclose(sample.targets[0], 6 * pts, atol=1e-14)
    assert np.allclose(sample.targets[1], 0, atol=1e-14)
    with pytest.raises(ValueError, match="exists"):
      problems.register(problem)
  finally:
    problems.PROBLEMS.pop("test_cubic")
  rd = problems.get("reaction_diffusion1d").with_params(a=10.0)
  x = np.array([[0.3]])
  assert rd.target_fn("interior")(x)[0] == pytest.approx((4 * np.pi ** 2 + 10) * np.sin(0.6 * np.pi),
                                                       rel=1e-13)


def test_bad_problems_and_requests_fail_clearly():
  with pytest.raises(ValueError, match="nonlinear"):
    problems.Problem("bad", ("x",), ((0, 1),), "x", (problems.ChannelSpec("i", "u*u_x", "interior", 4),))
  with pytest.raises(ValueError, match="unknown name .z."):
    problems.Problem("bad", ("x",), ((0, 1),), "x + z", (problems.ChannelSpec("i", "u", "interior", 4),))
  with pytest.raises(ValueError, match="empty interval"):
    problems.Problem("bad", ("x",), ((1, 0),), "x", (problems.ChannelSpec("i", "u", "interior", 4),))
  p = problems.get("poisson1d")
  with pytest.raises(ValueError, match="unknown sampler"):
    p.sample(sampler="halton")
  with pytest.raises(ValueError, match="unknown channel"):
    p.sample(sizes={"nope": 3})
  with pytest.raises(KeyError, match="unknown problem"):
    problems.get("nope")
  with pytest.raises(ValueError, match="parameters"):
    p.with_params(a=1.0)
