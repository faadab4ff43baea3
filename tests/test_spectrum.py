"""ntkpde.spectrum, quadrature, exact_spectra and large_eigen against exact references.

Independent routes: the DFT of one row of a circulant Gram (exact spectrum,
Gray Thm 3.1) and the Funk-Hecke formula on S^2 (a 1-d Gauss-Gegenbauer integral
of the kernel profile, no Gram matrix) against LAPACK eigenvalues of Gram /
Nystrom matrices; closed-form spectra of polynomial kernels; synthetic power laws
with known exponents; scipy.linalg.expm for modal times.
"""
import json
import math

import numpy as np
import pytest
import scipy.linalg

import ntkpde
from ntkpde import exact_spectra, large_eigen, quadrature, spectrum
from ntkpde.operators import identity, parse

EPS = np.finfo(float).eps


@pytest.fixture(scope="module")
def circle_grams():
  """Depth-2 erf NTK with the periodic embedding at 64 equispaced angles: the
  Gram of K and of d^2/dt^2 d^2/dt'^2 K."""
  net = ntkpde.mlp(2, activation="erf", input_map=ntkpde.input_maps.periodic_embedding())
  theta, weights = quadrature.circle(64)
  g = np.asarray(ntkpde.operator_kernel(net.kernel_fn, identity(("t",)))(theta))
  g_tt = np.asarray(ntkpde.operator_kernel(net.kernel_fn, parse("u_tt", coords=("t",)))(theta))
  return g, g_tt


def test_circulant_gram_eigenvalues_are_the_dft_of_one_row(circle_grams):
  g, _ = circle_grams
  dft = exact_spectra.circulant_eigenvalues(g[0])
  lam = spectrum.eigenvalues(g)
  # Both routes are backward stable: errors <= c n eps ||G|| (c ~ 1 for FFT and eigh).
  assert np.max(np.abs(np.sort(dft)[::-1] - lam)) <= 10 * g.shape[0] * EPS * lam[0]


def test_second_derivative_multiplies_mode_n_by_n_to_the_fourth(circle_grams):
  g, g_tt = circle_grams
  n = g.shape[0]
  lam, lam_tt = exact_spectra.circulant_eigenvalues(g[0]), exact_spectra.circulant_eigenvalues(g_tt[0])
  m = np.arange(1, n // 4 + 1)
  ratio = lam_tt[m] / (m**4.0 * lam[m])
  # The DFT of samples aliases: lam(m) = sum_j c_(m + j n); with c decreasing in |m|
  # the alias c_(n-m) is at most c_(n/2) ~ lam(n/2), weighted (n-m)^4 / m^4 in lam_tt.
  # Rounding: n eps max|row| in each DFT.
  alias = ((n - m) / m) ** 4 * abs(lam[n // 2]) / lam[m]
  rounding = 10 * n * EPS * (np.abs(g[0]).max() + np.abs(g_tt[0]).max() / m**4) / lam[m]
  assert np.all(np.abs(ratio - 1) <= 2 * (alias + rounding))
  assert np.max(np.abs(ratio[:8] - 1)) < 1e-6  # low modes: the n^4 law to 6 digits


@pytest.fixture(scope="module")
def sphere_kernel():
  net = ntkpde.mlp(2, activation="erf")
  return net.kernel_fn


def test_funk_hecke_matches_nystrom_on_the_sphere(sphere_kernel):
  profile = exact_spectra.dot_product_profile(sphere_kernel, 3)
  mu = exact_spectra.funk_hecke_eigenvalues(profile, 3, range(10))
  exact = exact_spectra.sphere_spectrum(mu, 3)[:64]  # degrees 0..7 span 64 harmonics
  nystrom = {}
  for n_polar in (10, 12):
    x, w = quadrature.sphere2(n_polar)
    nystrom[n_polar] = spectrum.eigenvalues(sphere_kernel(x, x, "ntk"), weights=w)[:64]
  # The product rule converges geometrically in n_polar, so the coarse-fine gap
  # bounds the fine rule's error (factor 2 for a ratio per step up to 1/2).
  gap = np.max(np.abs(nystrom[10] - nystrom[12]))
  assert np.max(np.abs(nystrom[12] - exact)) <= 2 * gap
  assert np.max(np.abs(nystrom[12] - exact)) <= 1e-6 * exact[0]


def test_gram_eigenvalues_come_in_harmonic_multiplicities(sphere_kernel):
  profile = exact_spectra.dot_product_profile(sphere_kernel, 3)
  mu = exact_spectra.funk_hecke_eigenvalues(profile, 3, range(6))
  x, w = quadrature.sphere2(12)
  lam = spectrum.eigenvalues(sphere_kernel(x, x, "ntk"), weights=w)
  for degree, value in enumerate(mu):
    close = np.abs(lam - value) <= 1e-6 * mu[0]
    assert close.sum() == exact_spectra.harmonic_multiplicity(3, degree) == 2 * degree + 1


def test_funk_hecke_on_the_circle_matches_the_dft(circle_grams):
  """d = 2: the degree-l Funk-Hecke eigenvalue is the Fourier coefficient of k(cos t),
  i.e. (2 pi / n) times the DFT of the circulant row (trapezoidal rule)."""
  g, _ = circle_grams
  net = ntkpde.mlp(2, activation="erf")
  mu = exact_spectra.funk_hecke_eigenvalues(exact_spectra.dot_product_profile(net.kernel_fn, 2),
                                            2, range(8))
  dft = exact_spectra.circulant_eigenvalues(g[0])[:8] * 2 * np.pi / g.shape[0]
  np.testing.assert_allclose(dft, mu, rtol=1e-9, atol=1e-12 * mu[0])


def test_harmonic_multiplicities():
  assert [exact_spectra.harmonic_multiplicity(2, l) for l in range(4)] == [1, 2, 2, 2]
  assert [exact_spectra.harmonic_multiplicity(4, l) for l in range(4)] == [1, 4, 9, 16]


def test_nystrom_is_exact_for_a_polynomial_kernel_on_a_box():
  """K(x, y) = prod_i sum_j c_j P_j(x_i) P_j(y_i) with Legendre P_j on [-1, 1]^2 has
  eigenvalues c_j c_k * (2 / (2j+1)) * (2 / (2k+1)); Gauss-Legendre with 6 nodes per
  axis integrates the degree-<=8 products exactly."""
  c = np.array([1.0, 0.5, 0.25, 0.1, 0.02])
  x, w = quadrature.gauss_legendre_box([-1, -1], [1, 1], 6)
  assert math.isclose(w.sum(), 4.0)

  def k1(a, b):
    return sum(cj * np.polynomial.legendre.Legendre.basis(j)(a)[:, None] *
               np.polynomial.legendre.Legendre.basis(j)(b)[None, :] for j, cj in enumerate(c))
  g = k1(x[:, 0], x[:, 0]) * k1(x[:, 1], x[:, 1])
  one_d = c * 2 / (2 * np.arange(c.size) + 1)
  exact = np.sort(np.outer(one_d, one_d).ravel())[::-1]
  lam = spectrum.eigenvalues(g, weights=w)
  np.testing.assert_allclose(lam[:exact.size], exact, rtol=1e-12, atol=1e-14)
  assert np.all(np.abs(lam[exact.size:]) <= 1e-13)


def test_weighted_eigenvectors_are_orthonormal_in_the_quadrature_inner_product():
  x, w = quadrature.gauss_legendre_box([0.0], [2.0], 12)
  g = np.exp(-(x - x.T) ** 2)
  lam, phi = spectrum.eigenvalues(g, vectors=True, weights=w)
  np.testing.assert_allclose(phi.T @ (w[:, None] * phi), np.eye(12), atol=1e-10)
  np.testing.assert_allclose(g @ (w[:, None] * phi), phi * lam, atol=1e-10 * lam[0])


# --- decay fits on synthetic spectra ---------------------------------------------------

def test_decay_rate_recovers_an_exact_power_law():
  k = np.arange(1, 401)
  fit = spectrum.decay_rate(3.0 * k**-2.5)
  assert abs(fit.alpha - 2.5) < 1e-10 and abs(fit.prefactor - 3.0) < 1e-8
  assert fit.uncertainty < 1e-10 and fit.window == (20, 200)


def test_decay_rate_with_noise_is_within_its_uncertainty():
  k = np.arange(1, 1001)
  noise = np.exp(np.random.default_rng(1).normal(0, 0.2, k.size))
  fit = spectrum.decay_rate(k**-1.7 * noise, window=(10, 500))
  # For i.i.d. log-noise the slope error is normal with sd = stderr: 4 sd fails
  # with probability 6e-5 (and the seed is fixed).
  assert abs(fit.alpha - 1.7) <= 4 * fit.uncertainty and fit.stderr < 0.05


def test_decay_window_stops_at_the_rounding_floor():
  k = np.arange(1, 201)
  lam = np.where(k <= 60, k**-4.0, 1e-17 * np.cos(k))  # a rounding tail after k = 60
  fit = spectrum.decay_rate(lam)
  assert fit.k_max == 60 and abs(fit.alpha - 4.0) < 1e-10


def test_fit_statistics_match_scipy_linregress():
  """Independent route for every number of a fit: ``scipy.stats.linregress`` (slope,
  intercept, standard error of the slope) on the window and on its two halves, and the AIC
  ``m log(RSS/m) + 2 p`` and rms residual written out from linregress's line. Both are
  float64 least squares of <= 60 points with O(1) condition: 1e-12 relative."""
  from scipy import stats
  k = np.arange(1, 121, dtype=float)
  lam = k ** -1.7 * np.exp(np.random.default_rng(2).normal(0, 0.2, k.size))
  lo, hi = 7, 60
  kk, y = k[lo - 1:hi], np.log(np.sort(lam)[::-1][lo - 1:hi])
  half = kk.size // 2

  def line(x, yy):
    r = stats.linregress(x, yy)
    rss = float(np.sum((yy - r.intercept - r.slope * x) ** 2))
    return r, rss

  fit = spectrum.decay_rate(lam, window=(lo, hi))
  r, _ = line(np.log(kk), y)
  spread = abs(line(np.log(kk[:half]), y[:half])[0].slope - line(np.log(kk[half:]), y[half:])[0].slope) / 2
  assert fit.alpha == pytest.approx(-r.slope, rel=1e-12)
  assert fit.stderr == pytest.approx(r.stderr, rel=1e-12)
  assert fit.spread == pytest.approx(spread, rel=1e-12)
  assert fit.prefactor == pytest.approx(math.exp(r.intercept), rel=1e-12)
  assert fit.uncertainty == max(fit.stderr, fit.spread)
  models = spectrum.decay_models(lam, window=(lo, hi))
  m = kk.size
  for name, x, p in (("power", np.log(kk), 2), ("exponential", kk, 2),
                     ("stretched", kk ** models.fits["stretched"].beta, 3)):
    got = models.fits[name]
    r, rss = line(x, y)
    assert got.rate == pytest.approx(-r.slope, rel=1e-12), name
    assert got.rms == pytest.approx(math.sqrt(rss / m), rel=1e-12), name
    assert got.aic == pytest.approx(m * math.log(rss / m) + 2 * p, rel=1e-12), name
  # the stretched exponent minimises the residual over the grid of exponents
  assert models.fits["stretched"].rms <= min(
      math.sqrt(line(kk ** b, y)[1] / m) for b in spectrum.STRETCH_EXPONENTS) * (1 + 1e-12)
  assert models.best == min(models.fits, key=lambda name: models.fits[name].aic)


def test_curved_spectrum_gets_a_wide_uncertainty():
  k = np.arange(1, 200)
  fit = spectrum.decay_rate(np.exp(-k / 10), window=(5, 150))
  assert fit.spread > 1.0 and fit.uncertainty >= fit.spread


def test_relative_decay_cancels_the_common_shape():
  k = np.arange(1, 101)
  base = np.exp(-np.sqrt(k))
  delta = spectrum.relative_decay(base, base * k**-0.75 * 7.0, window=(5, 50))
  assert abs(delta.alpha - 0.75) < 1e-10 and delta.uncertainty < 1e-10


@pytest.mark.parametrize("lam, model, rate, beta", [
    (2.0 * np.exp(-0.3 * np.arange(1, 81)), "exponential", 0.3, 1.0),
    (3.0 * np.arange(1, 81, dtype=float) ** -2.5, "power", 2.5, 1.0),
    (np.exp(-2.0 * np.arange(1, 81) ** 0.5), "stretched", 2.0, 0.5)])
def test_decay_models_choose_and_recover_the_generating_law(lam, model, rate, beta):
  fits = spectrum.decay_models(lam, window=(2, 60))
  assert fits.best == model and fits.chosen.rms < 1e-8
  assert abs(fits.chosen.rate - rate) < 1e-8 * rate and fits.chosen.beta == beta
  # the other models are visibly wrong on a curved (or straight) log-log line
  assert all(f.rms > 1e-3 for m, f in fits.fits.items() if m != model and
             not (model == "exponential" and m == "stretched"))


def test_decay_models_pick_exponential_for_an_analytic_kernel_where_the_power_law_is_lost():
  """The erf NTK on 64 points of [-1, 1] (a new user's case): the power-law exponent is
  ~10 +- 7 (meaningless); the exponential fits with a rate resolved to a few per cent."""
  x = np.linspace(-1, 1, 64)[:, None]
  lam = spectrum.eigenvalues(np.asarray(ntkpde.mlp(2, activation="erf").kernel_fn(x, x, "ntk")))
  power = spectrum.decay_rate(lam)
  fits = spectrum.decay_models(lam)
  assert power.uncertainty > 0.3 * power.alpha
  assert fits.best in ("exponential", "stretched") and fits.chosen.rms < fits.fits["power"].rms / 3
  assert fits.chosen.uncertainty < 0.1 * fits.chosen.rate


def test_relative_decay_in_the_exponential_model():
  k = np.arange(1, 61)
  base = np.exp(-0.4 * k) * (1 + 0.5 * np.cos(k) ** 2)      # a common wiggle cancels
  delta = spectrum.relative_decay(base, base * np.exp(-0.25 * k) * 3.0, window=(3, 40),
                                  model="exponential")
  assert abs(delta.alpha - 0.25) < 1e-10 and delta.uncertainty < 1e-10
  with pytest.raises(ValueError, match="model"):
    spectrum.relative_decay(base, base, window=(3, 40), model="gaussian")


def test_effective_rank_equals_the_entropy_of_the_normalised_spectrum():
  """Independent route: the Shannon entropy written out by hand, and invariance under
  scaling, zero padding and order."""
  lam = np.array([3.0, 1.0, 0.5, 0.5])
  p = lam / lam.sum()
  by_hand = math.exp(-sum(q * math.log(q) for q in p))
  assert math.isclose(spectrum.effective_rank(lam), by_hand, rel_tol=1e-14)
  assert math.isclose(spectrum.effective_rank(np.r_[7 * lam[::-1], 0, 0]), by_hand, rel_tol=1e-14)
  assert math.isclose(spectrum.effective_rank([2.0, 2.0, 1e-300]), 2.0, rel_tol=1e-12)


def test_common_window_is_the_intersection_of_the_resolved_ranks():
  """Independent route: the windows written down from where each spectrum hits the
  rounding floor (k_max) and its tenth (k_min), by hand."""
  k = np.arange(1, 401, dtype=float)
  a = np.where(k <= 150, k ** -2.0, 0.0)                  # resolved to k = 150
  b = np.where(k <= 90, k ** -3.0, 0.0)                   # resolved to k = 90
  assert spectrum.default_window(a) == (15, 150) and spectrum.default_window(b) == (9, 90)
  assert spectrum.common_window(a, b) == (15, 90)
  with pytest.raises(ValueError, match="share fewer"):
    spectrum.common_window(a, np.where(k <= 12, k ** -1.0, 0.0))


def test_condition_effective_rank_and_convergence_times():
  lam = np.array([4.0, 2.0, 1.0, 1.0])
  assert spectrum.condition_number(np.diag(lam)) == 4.0
  assert spectrum.condition_number([1.0, 0.0]) == math.inf
  assert math.isclose(spectrum.effective_rank(np.ones(7)), 7.0)
  assert math.isclose(spectrum.effective_rank([5.0, 0.0, 0.0]), 1.0)
  # Mode k of dr/dt = -eta K r decays by e at t = 1/(eta lambda_k): check with expm.
  rng = np.random.default_rng(0)
  q = np.linalg.qr(rng.standard_normal((4, 4)))[0]
  kmat = q @ np.diag(lam) @ q.T
  eta = 0.3
  times = spectrum.convergence_times(kmat, eta)
  for j in range(4):
    v = q[:, j]
    np.testing.assert_allclose(scipy.linalg.expm(-eta * kmat * times[j]) @ v, v / math.e,
                               atol=1e-12)


def test_block_traces_and_summary_table():
  coords = ("x",)
  x = np.linspace(-1, 1, 9)[:, None]
  net = ntkpde.mlp(1, activation="erf")
  g = ntkpde.gram(net.kernel_fn, [("a", identity(coords), x[:5]), ("b", identity(coords), x[5:])])
  traces = spectrum.block_traces(g)
  diag = np.diag(np.asarray(net.kernel_fn(x, x, "ntk")))
  assert math.isclose(traces["a"], diag[:5].sum()) and math.isclose(traces["b"], diag[5:].sum())
  row = spectrum.summary(g)
  assert row["n"] == 9 and math.isclose(row["trace"], diag.sum(), rel_tol=1e-12)
  table = spectrum.comparison_table({"K": row})
  assert table.count("\n") == 2 and "| K |" in table


@pytest.mark.parametrize("call, message", [
    (lambda: spectrum.eigenvalues(np.ones((2, 3))), "square"),
    (lambda: spectrum.eigenvalues(np.array([[1.0, np.nan], [np.nan, 1.0]])), "NaN"),
    (lambda: spectrum.eigenvalues(np.array([[1.0, 2.0], [0.0, 1.0]])), "not symmetric"),
    (lambda: spectrum.eigenvalues(np.eye(3), weights=[1.0, 1.0, -1.0]), "weights"),
    (lambda: spectrum.eigenvalues(np.eye(3), weights=[1.0, 1.0]), "weights"),
    (lambda: spectrum.decay_rate(np.ones((3, 3))), "1-d"),
    (lambda: spectrum.decay_rate(np.arange(1.0, 10), window=(0, 5)), "window"),
    (lambda: spectrum.decay_rate([1.0, 0.5, 1e-20, 1e-20, 1e-20, 1e-20]), "rounding floor"),
    (lambda: spectrum.decay_rate([1.0, 0.5, -0.1, 0.1, 0.01], window=(1, 5)), "> 0"),
    (lambda: spectrum.convergence_times([1.0], 0.0), "learning_rate"),
    (lambda: quadrature.gauss_legendre_box([1.0], [0.0], 4), "upper > lower"),
    (lambda: exact_spectra.circulant_eigenvalues([1.0, 2.0, 3.0]), "not symmetric"),
    (lambda: exact_spectra.funk_hecke_eigenvalues(np.cos, 1, [0]), "d must be an integer >= 2 \\(the ambient"),
    # were: degree 1.5 truncated to 1 silently; beta = nan a NaN rate, beta = 0 ZeroDivisionError
    (lambda: exact_spectra.funk_hecke_eigenvalues(np.cos, 3, [1.5]), "degrees must be"),
    (lambda: spectrum.relative_decay(np.arange(9.0, 0, -1), np.arange(9.0, 0, -1), (2, 8),
                                     "stretched", float("nan")), "beta"),
    (lambda: spectrum.relative_decay(np.arange(9.0, 0, -1), np.arange(9.0, 0, -1), (2, 8),
                                     "stretched", 0.0), "beta"),
    (lambda: large_eigen.top_eigenvalues(lambda a, b: a @ b.T, np.eye(5), 6), "k <= block"),
])
def test_bad_input_is_rejected_with_a_clear_message(call, message):
  with pytest.raises(ValueError, match=message[:20].replace("(", r"\(")):
    call()


# --- matrix-free top eigenvalues --------------------------------------------------------

def _gaussian_kernel(a, b):
  return np.exp(-np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1))


@pytest.mark.parametrize("cache_bytes", [0, 1 << 30])
def test_tiled_top_eigenvalues_match_dense(cache_bytes):
  x = np.random.default_rng(0).uniform(-1, 1, (301, 2))
  w = np.random.default_rng(1).uniform(0.5, 1.5, 301)
  dense = spectrum.eigenvalues(_gaussian_kernel(x, x), weights=w)[:20]
  res = large_eigen.top_eigenvalues(_gaussian_kernel, x, 20, tile=64, weights=w,
                                    cache_bytes=cache_bytes, max_passes=10)
  assert res.converged
  # Each Ritz value is within its residual of an eigenvalue (Parlett Thm 4.5.1);
  # tol 1e-10 * theta_1 plus the dense route's own rounding n eps lambda_1.
  assert np.all(np.abs(res.values - dense) <= res.residuals + 1e3 * 301 * EPS * dense[0])
  assert np.max(np.abs(res.values - dense)) <= 1e-9 * dense[0]
  assert res.tiles_evaluated == (15 if cache_bytes else 15 * res.passes)  # 5 tile rows, upper triangle


# --- the sweep command resumes -----------------------------------------------------------

def test_spectrum_sweep_resumes_and_skips_done_configurations(tmp_path, capsys):
  from ntkpde.cli import main
  out = tmp_path / "sweep.json"
  argv = ["spectrum", "--operators", "identity", "laplacian", "--dims", "1", "--depths", "1",
          "--activations", "erf", "--points", "24", "--out", str(out)]
  assert main(argv) == 0
  first = json.loads(out.read_text())
  assert len(first) == 2 and {r["operator"] for r in first} == {"identity", "laplacian"}
  assert all(r["alpha"] is not None and r["n"] == 24 for r in first)
  # The identity record against a route that shares no ntkpde code: SciPy's Gauss-Legendre
  # nodes on [0, 1], neural-tangents' own kernel_fn, SciPy's eigh of W^1/2 K W^1/2. Both are
  # backward-stable eigensolves of the same matrix up to rounding: 10 n eps lambda_max.
  import scipy.special
  nodes, weights = scipy.special.roots_legendre(24)
  x, w = (nodes[:, None] + 1) / 2, weights / 2
  K = np.asarray(ntkpde.mlp(1, activation="erf", W_std=1.5, b_std=0.1).kernel_fn.base(x, x, "ntk"))
  expected = scipy.linalg.eigh(np.sqrt(w)[:, None] * K * np.sqrt(w)[None, :], eigvals_only=True)[::-1]
  got = np.array(next(r for r in first if r["operator"] == "identity")["eigenvalues"])
  assert np.abs(got - expected).max() <= 10 * 24 * EPS * expected[0]
  capsys.readouterr()
  assert main(argv + ["--activations", "sin"]) == 0  # argparse: the later value wins
  log = capsys.readouterr().out
  second = json.loads(out.read_text())
  assert len(second) == 4 and second[:2] == first and "skip" not in log
  assert main(argv + ["--plot", str(tmp_path / "sweep.png")]) == 0
  assert "2 already done" in capsys.readouterr().out
  assert json.loads(out.read_text()) == second
  assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
