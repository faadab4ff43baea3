"""The speed devices inside ``operator_kernel`` change no value.

``operator_kernel`` jits the kernel once per ``(kernel_fn, get)`` and
differentiates that program, pads inputs to a few bucket sizes and assembles
big matrices from padded tiles, and counts non-finite entries tile by tile.
Here each is checked against a route that does not use it: tiled vs a single
block, the operator kernel vs per-pair ``jax.grad`` of the scalar kernel
(shares only ``kernel_fn``), and the NaN count vs NumPy.

Tolerances: every entry is the same float64 arithmetic on the same row pair
whatever the tiling, up to the order XLA vectorises it in, so tiled and single
block differ by rounding only; a 2nd derivative of the NTK runs through ~10^3
floating-point operations, so rounding is below 10^3 * 2.2e-16 ~ 2e-13 of the
matrix's largest entry (seen: <= 5e-16). Per-pair reverse-mode autodiff rounds
differently but equally finely: same bound.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkpde
from ntkpde import operator_kernels
from ntkpde.operators import identity, parse

ROUNDING = 2e-13
COORDS = ("x", "y")


@pytest.fixture(scope="module")
def kernel_fn():
  return ntkpde.mlp(2, activation="erf").kernel_fn


def _rel(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return np.max(np.abs(a - b)) / np.max(np.abs(b))


def test_tiles_and_padding_change_no_value(kernel_fn):
  # A coefficient depending on x makes a misplaced row or column visible.
  T, S = parse("u_xx + u_yy", COORDS), parse("u_x + x*u_y", COORDS)
  rng = np.random.default_rng(0)
  x1, x2 = rng.uniform(-1, 1, (13, 2)), rng.uniform(-1, 1, (21, 2))
  whole = operator_kernel_values(kernel_fn, T, S, x1, x2, tile=1024)  # one padded block
  tiled = operator_kernel_values(kernel_fn, T, S, x1, x2, tile=8)  # 2 x 3 blocks, padded edges
  assert whole.shape == tiled.shape == (13, 21)
  assert _rel(tiled, whole) < ROUNDING


def operator_kernel_values(kernel_fn, T, S, x1, x2, tile):
  return np.asarray(ntkpde.operator_kernel(kernel_fn, T, S, tile=tile)(x1, x2))


def test_matches_per_pair_gradient(kernel_fn):
  # (u_x + x u_y) in x, pair by pair with jax.grad (reverse mode) of the scalar kernel.
  def k(x, xp):
    return kernel_fn(x[None], xp[None], "ntk")[0, 0]

  def t_x(x, xp):
    g = jax.grad(k, argnums=0)(x, xp)
    return g[0] + x[0] * g[1]
  rng = np.random.default_rng(1)
  x1, x2 = rng.uniform(-1, 1, (13, 2)), rng.uniform(-1, 1, (5, 2))
  per_pair = jax.jit(jax.vmap(jax.vmap(t_x, (None, 0)), (0, None)))(x1, x2)
  fast = operator_kernel_values(kernel_fn, parse("u_x + x*u_y", COORDS), identity(COORDS),
                                x1, x2, tile=1024)
  assert _rel(fast, per_pair) < ROUNDING


def test_bucket_sizes():
  sizes = [operator_kernels._bucket(n, 1024) for n in range(1, 1025)]
  assert all(b >= n for n, b in enumerate(sizes, 1))
  assert all(b <= max(8, 1.5 * n) for n, b in enumerate(sizes, 1))
  assert len(set(sizes)) == 15  # 8, 12, 16, ..., 768, 1024: one compilation each at most
  assert operator_kernels._bucket(700, 500) == 500


def test_non_finite_entries_counted_over_all_tiles():
  def sqrt_kernel(x1, x2, get):  # NaN wherever x . x' < 0
    return jnp.sqrt(x1 @ x2.T)
  kfn = ntkpde.KernelFn(sqrt_kernel, description="sqrt of the dot product")
  rng = np.random.default_rng(2)
  x1, x2 = rng.normal(size=(19, 2)), rng.normal(size=(11, 2))
  expected = int(np.sum(x1 @ x2.T < 0))
  assert 0 < expected < x1.shape[0] * x2.shape[0]
  with pytest.raises(ntkpde.NonFiniteKernelError,
                     match=re.escape(f"{expected} of {19 * 11} entries are NaN or inf")):
    ntkpde.operator_kernel(kfn, identity(COORDS), tile=8)(x1, x2)


def test_no_points_gives_an_empty_matrix(kernel_fn):
  out = ntkpde.operator_kernel(kernel_fn, identity(COORDS))(np.zeros((0, 2)), np.ones((3, 2)))
  assert out.shape == (0, 3)


def test_tiles_spread_over_several_devices_give_identical_values(tmp_path):
  """Four host CPU devices (a subprocess: the device count is fixed when JAX starts)
  against one: every tile is the same computation, so the values are identical."""
  import os
  import subprocess
  import sys
  code = (
      "import numpy as np, jax, ntkpde\n"
      "from ntkpde.operators import parse\n"
      "assert len(jax.local_devices()) == {n}, jax.local_devices()\n"
      "x = np.random.default_rng(0).uniform(-1, 1, (21, 2))\n"
      "lap = parse('u_xx + u_yy', ('x', 'y'))\n"
      "k = ntkpde.operator_kernel(ntkpde.mlp(1).kernel_fn, lap, tile=8)\n"
      "np.save(r'{out}', np.asarray(k(x, x[:13])))\n")
  for n in (1, 4):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
    subprocess.run([sys.executable, "-c", code.format(n=n, out=tmp_path / f"{n}.npy")],
                   env=env, check=True, capture_output=True, text=True)
  np.testing.assert_array_equal(np.load(tmp_path / "4.npy"), np.load(tmp_path / "1.npy"))
