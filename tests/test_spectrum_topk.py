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
