"""Hard-constraint output maps: operator kernels of ``B(x) B(x') K`` against per-pair
autodiff of the composed kernel, the empirical NTK of the wrapped network against
``B B' Theta_hat`` of the bare one (same parameters), exact boundary values, safe text."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkpde
from ntkpde import finite, output_maps
from ntkpde.operators import identity, parse

XY = ("x", "y")
LAP = parse("u_xx + u_yy", XY)
BUBBLE = "x*(1 - x)*y*(1 - y)"


def test_operator_kernel_matches_per_pair_autodiff():
  """``d_xx d_x'x' [B(x) B(x') K(x, x')]`` in 1-D, ``B = sin(pi x)``: nested ``jax.grad``
  on one pair at a time against the batched nested-jvp operator kernel."""
  base = ntkpde.mlp(1, activation="erf")
  net = output_maps.constrain(base, output_maps.output_map("x", A="x", B="sin(pi*x)"))
  pts = np.linspace(0.05, 0.9, 5)[:, None]
  got = np.asarray(ntkpde.operator_kernel(net.kernel_fn, parse("u_xx", "x"))(pts, pts))

  def k(a, b):
    return (jnp.sin(np.pi * a) * jnp.sin(np.pi * b)
            * base.kernel_fn(a.reshape(1, 1), b.reshape(1, 1), "ntk")[0, 0])
  second = lambda f, i: jax.grad(jax.grad(f, i), i)  # noqa: E731
  pairs = jax.jit(jax.vmap(jax.vmap(second(second(k, 1), 0), (None, 0)), (0, None)))
  expected = np.asarray(pairs(jnp.asarray(pts[:, 0]), jnp.asarray(pts[:, 0])))
  np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())


def test_boundary_values_exact_and_kernel_vanishes(erf1):
  omap = output_maps.output_map(XY, A="x*y", B=BUBBLE)
  net = output_maps.constrain(ntkpde.mlp(1, width=64), omap)
  _, params = net.init_fn(jax.random.PRNGKey(0), (-1, 2))
  edge = np.array([[0.0, 0.3], [1.0, 0.6], [0.2, 0.0], [0.7, 1.0]])
  np.testing.assert_array_equal(np.asarray(net.apply_fn(params, edge))[:, 0],
                                edge[:, 0] * edge[:, 1])
  kern = output_maps.constrain(erf1, omap).kernel_fn
  np.testing.assert_array_equal(ntkpde.operator_kernel(kern, identity(XY))(edge, edge), 0.0)


def test_empirical_ntk_is_b_b_times_bare_ntk():
  """The wrapped network's finite-width NTK (its own Jacobian) equals ``B(x) B(x') Theta_hat``
  of the bare network with the same parameters."""
  bare = ntkpde.mlp(1, width=32)
  omap = output_maps.output_map(XY, A="sin(x)", B=BUBBLE)
  wrapped = output_maps.constrain(bare, omap)
  _, params = bare.init_fn(jax.random.PRNGKey(1), (-1, 2))
  pts = np.random.default_rng(2).uniform(0, 1, (4, 2))
  ident = identity(XY)
  got = np.asarray(finite.empirical_operator_ntk(wrapped.apply_fn, params, ident)(pts, pts))
  b = pts[:, 0] * (1 - pts[:, 0]) * pts[:, 1] * (1 - pts[:, 1])
  plain = np.asarray(finite.empirical_operator_ntk(bare.apply_fn, params, ident)(pts, pts))
  np.testing.assert_allclose(got, b[:, None] * b[None, :] * plain, rtol=1e-12)


def test_shift_and_callable_maps():
  omap = output_maps.output_map(XY, A="x**2*y", B=lambda p: p[..., 0])
  pts = jnp.asarray([[0.3, 0.5], [0.9, 0.1]])
  np.testing.assert_allclose(omap.shift(LAP)(pts), 2 * pts[:, 1], rtol=1e-14)
  np.testing.assert_array_equal(omap.B(pts), pts[:, 0])


@pytest.mark.parametrize("A, message", [
    ("__import__('os').system('true')", "not allowed"),
    ("z + 1", "unknown name"),
    ([1, 2], "must be text"),
])
def test_bad_maps(A, message):
  with pytest.raises(ValueError, match=message):
    output_maps.output_map(XY, A=A)
