"""The ```python blocks of README.md run as written and give what the README says.

Expectations per block: the quickstart Gram is the documented (220, 220) symmetric block
matrix; in the worked example the t = inf ensemble mean of Poisson 1D (24 grid points,
depth-2 erf) is within 1e-3 of the exact solution (docs/dynamics.md measures 4.2e-4), the
t = 1000 mean is not converged yet (spectral bias), and gradient descent lowers the loss.
"""
import re
from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
from ntkpde.operators import identity  # noqa: E402
from theory.finite_differences import richardson_check  # noqa: E402

EPS = np.finfo(np.float64).eps
README = Path(__file__).parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _run(index):
  namespace = {"__name__": "readme"}
  exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), namespace)
  return namespace


def test_readme_has_exactly_the_checked_examples():
  assert len(BLOCKS) == 3


def test_quickstart_block():
  """Shapes, and values by routes that share no code with ``gram``: the boundary block is
  neural-tangents' own kernel (identity operators); four interior-boundary entries are
  Richardson-checked central differences of that kernel (theory/finite_differences.py);
  the Gram of a positive semi-definite kernel has eigenvalues >= -100 n eps lambda_max
  (its exact symmetry holds by construction: only the upper tiles are computed)."""
  ns = _run(0)
  G = np.asarray(ns["G"].matrix)
  assert G.shape == (220, 220) and ns["G"].sizes == {"interior": 200, "boundary": 20}
  X_int, X_bd, net = ns["X_int"], ns["X_bd"], ns["net"]
  kernel = jax.jit(lambda a, b: net.kernel_fn(a, b, "ntk"))
  plain = lambda a, b: np.asarray(kernel(a, b))
  bb = plain(X_bd, X_bd)
  np.testing.assert_allclose(ns["G"].block("boundary", "boundary"), bb, rtol=0,
                             atol=100 * EPS * np.abs(bb).max())
  ib = np.asarray(ns["G"].block("interior", "boundary"))
  assert ib.shape == (200, 20)
  fd, bound = richardson_check(plain, ns["lap"], identity(("x", "y")), X_int[:2], X_bd[:2])
  assert np.all(np.abs(ib[:2, :2] - fd) <= bound), (ib[:2, :2], fd, bound)
  assert np.max(bound) < 1e-4 * np.abs(ib).max()        # the bound is tight enough to test
  lam = np.linalg.eigvalsh(G)
  assert lam[0] >= -100 * len(G) * EPS * lam[-1]


def test_worked_example_block():
  ns = _run(1)
  exact = ns["problem"].exact_fn()(ns["x"])
  assert np.abs(ns["mean_inf"] - exact).max() < 1e-3
  assert np.abs(ns["mean_t"] - exact).max() > 10 * np.abs(ns["mean_inf"] - exact).max()
  assert ns["fit"].alpha > 0 and np.isfinite(ns["fit"].uncertainty)
  run = ns["run"]
  total = sum(run.losses.values())
  assert total[-1] < total[0] and run.predictions.shape == (len(run.steps), 101)


def test_operator_kernel_block():
  """Biharmonic and beam kernels of the operator-kernel section take the Taylor route; the
  biharmonic block ``B_x B_x' K`` is symmetric (computed with x2 = x given: no symmetry by
  construction) and positive semi-definite to 100 n eps of its largest eigenvalue (the
  Taylor route's order-8 values against finite differences of its order-4 kernel:
  tests/test_taylor_engine.py)."""
  ns = _run(2)
  assert ns["K"].method == "taylor" and ns["block"].shape == (8, 8)
  block = np.asarray(ns["block"])
  scale = np.abs(block).max()
  np.testing.assert_allclose(block, block.T, rtol=0, atol=1e-12 * scale)
  lam = np.linalg.eigvalsh((block + block.T) / 2)
  assert lam[0] >= -100 * len(block) * EPS * lam[-1]
