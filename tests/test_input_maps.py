"""ntkpde.input_maps: values, dimensions and errors (kernels through input maps are
tested against finite differences in test_operator_kernels.py). Values are compared
with formulas evaluated by NumPy; both are a handful of float64 operations, so
``rtol = 1e-14``."""
import jax
import numpy as np
import pytest

import ntkpde
from ntkpde.input_maps import box_normalization, fourier_features, periodic_embedding

PTS = np.array([[0.0, 0.0], [2.0, 1.0], [0.5, 0.25], [1.5, 0.9]])


def test_box_normalization_maps_the_box_onto_the_unit_cube():
  m = box_normalization([0, 0], [2, 1])
  np.testing.assert_allclose(m(PTS), np.stack([PTS[:, 0] - 1, 2 * PTS[:, 1] - 1], 1), rtol=1e-14)
  assert m.out_dim(2) == 2
  with pytest.raises(ValueError, match="2-d inputs, got 3-d"):
    m.out_dim(3)


@pytest.mark.parametrize("lower, upper", [([0, 1], [1, 1]), ([0], [1, 2]), ([[0]], [[1]])])
def test_box_normalization_rejects_bad_bounds(lower, upper):
  with pytest.raises(ValueError, match="upper > lower"):
    box_normalization(lower, upper)


def test_periodic_embedding_values_and_period():
  m = periodic_embedding([0], period=2.0)
  w = np.pi
  expected = np.stack([np.cos(w * PTS[:, 0]), np.sin(w * PTS[:, 0]), PTS[:, 1]], 1)
  np.testing.assert_allclose(m(PTS), expected, rtol=1e-14, atol=1e-15)
  np.testing.assert_allclose(m(PTS + [2.0, 0.0]), m(PTS), rtol=0, atol=1e-14)
  assert m.out_dim(2) == 3 and periodic_embedding().out_dim(2) == 4
  assert periodic_embedding()(PTS).shape == (4, 4)


@pytest.mark.parametrize("kwargs, message", [
    ({"period": 0.0}, "period must be a positive"),
    ({"period": -1.0}, "period must be a positive"),
    ({"periodic_axes": [0, 0]}, "distinct non-negative"),
    ({"periodic_axes": [-1]}, "distinct non-negative"),
])
def test_periodic_embedding_rejects_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    periodic_embedding(**kwargs)


def test_periodic_embedding_rejects_missing_axis():
  with pytest.raises(ValueError, match=r"periodic_axes \[2\] do not exist in 2-d inputs"):
    periodic_embedding([2]).out_dim(2)


def test_fourier_features_are_fixed_by_the_seed():
  a, b, c = (fourier_features(2, 5, scale=2.0, seed=s) for s in (0, 0, 1))
  np.testing.assert_array_equal(a(PTS), b(PTS))
  assert not np.allclose(a(PTS), c(PTS))
  z = np.asarray(a(PTS))
  assert z.shape == (4, 10) and a.out_dim(2) == 10
  np.testing.assert_allclose(z[:, :5] ** 2 + z[:, 5:] ** 2, 1.0, rtol=1e-14)  # cos^2 + sin^2
  with pytest.raises(ValueError, match="built for 2-d inputs, got 3-d"):
    a.out_dim(3)


def test_then_composes_maps():
  m = box_normalization([0, 0], [2, 1]).then(periodic_embedding([0], period=2.0))
  assert m.name == "box->periodic" and m.out_dim(2) == 3
  np.testing.assert_allclose(m(PTS)[:, 2], 2 * PTS[:, 1] - 1, rtol=1e-14)
  np.testing.assert_allclose(m(PTS)[:, 0], np.cos(np.pi * (PTS[:, 0] - 1)), rtol=1e-14, atol=1e-15)


def test_network_with_input_map_has_mapped_parameter_shapes():
  net = ntkpde.mlp(depth=1, width=8, activation="erf",
                   input_map=periodic_embedding([0], period=2.0))
  out_shape, params = net.init_fn(jax.random.PRNGKey(0), (4, 2))
  assert params[0][0].shape == (3, 8) and out_shape == (4, 1)
  assert net.apply_fn(params, PTS).shape == (4, 1)


@pytest.mark.parametrize("args, message", [
    ((1, 3, float("nan")), "scale must be a finite number > 0"),   # was: NaN features, silently
    ((1, 3, float("inf")), "scale must be a finite number > 0"),
    ((1, 3, 0.0), "scale must be a finite number > 0"),
    ((1, 0, 1.0), "num_features must be an integer >= 1"),     # was: a 0-column map
    ((0, 3, 1.0), "in_dim must be an integer >= 1"),
    ((1, 2.5, 1.0), "num_features must be an integer >= 1"),
])
def test_fourier_features_reject_bad_arguments(args, message):
  with pytest.raises(ValueError, match=message):
    fourier_features(*args)


@pytest.mark.parametrize("lower, upper", [([np.nan], [1.0]), ([-np.inf], [1.0]), ([0.0], [np.inf])])
def test_box_normalization_rejects_non_finite_bounds(lower, upper):
  """Was: a map returning NaN (NaN bounds) or 0 / NaN (infinite ones) at every point."""
  with pytest.raises(ValueError, match="finite 1-d bounds"):
    box_normalization(lower, upper)
