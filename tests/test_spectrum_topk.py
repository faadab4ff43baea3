"""``spectrum.eigenvalues(G, k=...)`` (LAPACK subset driver) against the full ``eigh``.

Both are backward stable: eigenvalues agree to ``~ n eps ||G||`` (Weyl); 1e-12 of the
largest eigenvalue leaves a factor ~100 at n = 40."""
import numpy as np
import pytest

from ntkpde import spectrum


def test_top_k_matches_full_spectrum():
  rng = np.random.default_rng(0)
  b = rng.normal(size=(40, 40))
  g = b @ b.T
  w = rng.uniform(0.5, 1.5, 40)
  full = spectrum.eigenvalues(g, weights=w)
  top = spectrum.eigenvalues(g, weights=w, k=6)
  np.testing.assert_allclose(top, full[:6], rtol=0, atol=1e-12 * full[0])
  lam, v = spectrum.eigenvalues(g, vectors=True, k=3)
  np.testing.assert_allclose(g @ v, v * lam, rtol=0, atol=1e-11 * lam[0])
  assert np.all(np.diff(lam) <= 0)


@pytest.mark.parametrize("k", [0, 41, 2.5, -1])
def test_bad_k(k):
  with pytest.raises(ValueError, match="k must be an integer in 1 .. 40"):
    spectrum.eigenvalues(np.eye(40), k=k)


def test_large_eigen_refuses_points_of_the_wrong_dimension_before_any_work():
  import ntkpde
  from ntkpde import large_eigen
  from ntkpde.operators import identity
  calls = []

  def kernel(x1, x2, get):
    calls.append(get)
    return x1 @ x2.T
  kfn = ntkpde.KernelFn(kernel, description="linear kernel")
  k = ntkpde.operator_kernel(kfn, identity(("x", "y")))
  with pytest.raises(ValueError, match=r"points must have shape \(N, 2\) for the kernel's "
                                       r"coordinates \['x', 'y'\], got \(20, 3\)"):
    large_eigen.top_eigenvalues(k, np.ones((20, 3)), 2)
  assert not calls


def test_large_eigen_reports_a_non_finite_tile():
  from ntkpde import large_eigen
  x = np.random.default_rng(1).normal(size=(30, 2))
  with np.errstate(invalid="ignore"), \
       pytest.raises(FloatingPointError, match=r"kernel tile \(0, 0\) has \d+ NaN/inf entries"):
    large_eigen.top_eigenvalues(lambda a, b: np.sqrt(np.asarray(a) @ np.asarray(b).T), x, 2,
                                tile=16, cache_bytes=0)
