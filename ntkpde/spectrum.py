"""Spectra of kernel Gram matrices: eigenvalues, power-law decay fits, conditioning.

For a symmetric positive semi-definite Gram matrix ``G = [K(x_i, x_j)]`` (or a
block Gram of operator-informed kernels ``T_a,x T_b,x' K``, Gan, Li, Lin & Shi,
"Neural Tangent Kernel of Neural Networks with Loss Informed by Differential
Operators", Sec. 3) this module gives:

* :func:`eigenvalues`: descending eigenvalues (and vectors) of ``G``, or of the
  Nystrom matrix ``W^(1/2) G W^(1/2)`` when quadrature weights ``w`` are given:
  for a rule ``sum_j w_j f(x_j) ~ int f d mu`` its eigenvalues approximate those
  of the integral operator ``(L f)(x) = int K(x, y) f(y) d mu(y)``;
* :func:`decay_rate`: the exponent ``alpha`` of ``lambda_k ~ C k^(-alpha)`` by
  least squares on ``log lambda_k = log C - alpha log k`` over a reported window
  of indices, with an uncertainty;
* :func:`decay_models`: power-law, exponential and stretched-exponential fits on one
  window and the model chosen by AIC (smooth kernels decay faster than any power);
* :func:`condition_number`, :func:`effective_rank`, :func:`block_traces` and
  :func:`convergence_times` (mode ``k`` of the residual flow
  ``dr/dt = -eta K r`` decays like ``exp(-eta lambda_k t)``: e-folding time
  ``1 / (eta lambda_k)``);
* :func:`summary` and :func:`comparison_table` for tables across kernels.

Eigenvalues are computed by LAPACK ``eigh`` (``numpy.linalg.eigh``), whose
backward error is a small multiple of ``n eps ||G||_2``: eigenvalues below
:func:`roundoff_floor` are not resolved and are excluded from decay fits.
"""
import dataclasses
import math
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

EPS = float(np.finfo(np.float64).eps)
# Safety factor on LAPACK's ``c n eps ||G||`` eigenvalue error bound (c is O(1)
# for eigh; 100 leaves room for the rounding already present in the entries).
FLOOR_FACTOR = 100.0


def as_matrix(G, name: str = "G") -> np.ndarray:
  """``G`` (array or :class:`ntkpde.BlockGram`) as a float64 square finite array."""
  matrix = getattr(G, "matrix", G)
  try:
    a = np.asarray(matrix, dtype=np.float64)
  except (TypeError, ValueError) as err:
    raise TypeError(f"{name} must be a square matrix or an ntkpde.BlockGram, got "
                    f"{type(G).__name__}.") from err
  if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
    raise ValueError(f"{name} must be a non-empty square matrix, got shape {a.shape}.")
  if not np.all(np.isfinite(a)):
    raise ValueError(f"{name} has {int(a.size - np.isfinite(a).sum())} NaN/inf entries; "
                     f"a kernel Gram matrix must be finite.")
  return a


def _check_symmetric(a: np.ndarray, name: str) -> None:
  scale = float(np.max(np.abs(a))) or 1.0
  gap = float(np.max(np.abs(a - a.T)))
  # G_ij and G_ji of an operator kernel come from differently nested derivatives and
  # differ by rounding (measured: ~2 eps |G|_max for Laplacian kernels, depth 1-3);
  # 1e-10 leaves room for user-built matrices and still rejects real asymmetry (O(1)).
  if gap > 1e-10 * scale:
    raise ValueError(f"{name} is not symmetric: max |G - G^T| = {gap:.3e} (max |G| = "
                     f"{scale:.3e}). Kernel spectra need a symmetric G; a mixed block "
                     f"T_x S_x' K with T != S is not. Pass (G + G.T) / 2 if the asymmetry "
                     f"is rounding.")


def _check_weights(weights, n: int) -> np.ndarray:
  w = np.asarray(weights, dtype=np.float64)
  if w.shape != (n,):
    raise ValueError(f"weights must have shape ({n},) (one quadrature weight per point), "
                     f"got {w.shape}.")
  if not np.all(np.isfinite(w)) or np.any(w <= 0):
    raise ValueError("weights must be finite and > 0 (quadrature weights, e.g. from "
                     "ntkpde.quadrature).")
  return w


def eigenvalues(G, vectors: bool = False, weights=None, k: Optional[int] = None):
  """Descending eigenvalues of the symmetric matrix ``G`` (the top ``k`` only if given).

  ``G`` is an array or an :class:`ntkpde.BlockGram` (its full ``matrix``; pass
  ``G.block(a, a)`` for one channel). With ``weights`` ``w`` (quadrature weights
  of the points), returns the Nystrom eigenvalues of ``W^(1/2) G W^(1/2)``, which
  approximate the integral operator's; the vectors are then the eigenfunctions at
  the points, ``phi = W^(-1/2) v``, orthonormal in ``sum_j w_j phi(x_j) psi(x_j)``.

  Returns ``lam`` (shape ``(n,)``, or ``(k,)``), or ``(lam, V)`` with ``V[:, j]`` the
  vector of ``lam[j]`` when ``vectors=True``. With ``k``, LAPACK's subset driver
  (``scipy.linalg.eigh(subset_by_index=...)``, dsyevr) computes only the top ``k`` after
  the same tridiagonal reduction, which then dominates: it saved only 0-10% of the
  full solver at n = 4096-8192. For a kernel whose spectrum decays, ``ntkpde.large_eigen``
  was 10-30x faster there, kernel evaluations included, with errors relative to
  ``lambda_1``; ``k=`` is the route for a formed G with a slowly decaying spectrum or
  small eigenvalues needed to full relative accuracy (docs/spectrum.md). Raises ``ValueError`` for a non-square, non-finite or
  non-symmetric ``G``, bad weights and ``k`` outside ``1 .. n``.
  """
  a = as_matrix(G)
  _check_symmetric(a, "G")
  n = a.shape[0]
  if k is not None and (int(k) != k or not 1 <= k <= n):
    raise ValueError(f"k must be an integer in 1 .. {n} (the matrix size), got {k!r}.")
  if weights is not None:
    root = np.sqrt(_check_weights(weights, a.shape[0]))
    a = root[:, None] * a * root[None, :]
  if k is not None:
    import scipy.linalg
    out = scipy.linalg.eigh(a, eigvals_only=not vectors, subset_by_index=(n - int(k), n - 1),
                            driver="evr")
    lam, v = (out, None) if not vectors else out
  elif not vectors:
    return np.linalg.eigvalsh(a)[::-1].copy()
  else:
    lam, v = np.linalg.eigh(a)
  if not vectors:
    return lam[::-1].copy()
  lam, v = lam[::-1].copy(), v[:, ::-1].copy()
  if weights is not None:
    v = v / root[:, None]
  return lam, v


def _as_spectrum(values, name: str = "eigenvalues") -> np.ndarray:
  lam = np.asarray(values, dtype=np.float64)
  if lam.ndim != 1 or lam.size == 0:
    raise ValueError(f"{name} must be a non-empty 1-d array, got shape {lam.shape}; use "
                     f"ntkpde.spectrum.eigenvalues(G) for a matrix.")
  if not np.all(np.isfinite(lam)):
    raise ValueError(f"{name} contain NaN or inf.")
  return np.sort(lam)[::-1]


def roundoff_floor(eigenvalues, n: Optional[int] = None) -> float:
  """``FLOOR_FACTOR * n * eps * lambda_max``: eigenvalues below it are rounding.

  ``n`` is the matrix size (default: the number of eigenvalues given)."""
  lam = _as_spectrum(eigenvalues)
  n = lam.size if n is None else int(n)
  return FLOOR_FACTOR * n * EPS * max(float(lam[0]), 0.0)


@dataclasses.dataclass(frozen=True)
class DecayFit:
  """``lambda_k ~ prefactor * k^(-alpha)`` fitted on ``k_min <= k <= k_max`` (1-based).

  ``stderr`` is the least-squares standard error of the slope; ``spread`` is half
  the difference of the slopes fitted on the two halves of the window (how far
  the spectrum is from a power law there); ``uncertainty = max(stderr, spread)``.
  """
  alpha: float
  uncertainty: float
  stderr: float
  spread: float
  prefactor: float
  k_min: int
  k_max: int

  @property
  def window(self) -> Tuple[int, int]:
    return (self.k_min, self.k_max)

  def __str__(self):
    return f"alpha = {self.alpha:.3f} +- {self.uncertainty:.3f} (k in [{self.k_min}, {self.k_max}])"


def _slope(logk: np.ndarray, loglam: np.ndarray) -> Tuple[float, float, float]:
  """Least-squares line ``loglam = b + s logk``: ``(s, b, standard error of s)``."""
  xm = logk - logk.mean()
  sxx = float(xm @ xm)
  s = float(xm @ (loglam - loglam.mean())) / sxx
  b = float(loglam.mean() - s * logk.mean())
  resid = loglam - (b + s * logk)
  dof = logk.size - 2
  se = math.sqrt(float(resid @ resid) / dof / sxx) if dof > 0 else math.inf
  return s, b, se


MIN_FIT_POINTS = 4


def default_window(eigenvalues, n: Optional[int] = None, floor: Optional[float] = None
                   ) -> Tuple[int, int]:
  """The fit window ``(k_min, k_max)`` (1-based, inclusive) used by :func:`decay_rate`.

  ``k_max``: the last index with ``lambda_k > floor`` (default
  :func:`roundoff_floor`), at most ``n // 2`` (the upper half of a discrete
  spectrum of ``n`` points resolves the operator's eigenvalues poorly).
  ``k_min = max(2, k_max // 10)``: the first eigenvalues are pre-asymptotic, and a
  decade of ``k`` is used when there is one.
  """
  lam = _as_spectrum(eigenvalues)
  n = lam.size if n is None else int(n)
  floor = roundoff_floor(lam, n) if floor is None else float(floor)
  above = np.nonzero(lam > max(floor, 0.0))[0]
  k_resolved = 0 if above.size == 0 else int(above[-1]) + 1
  k_max = min(k_resolved, max(n // 2, 1), lam.size)
  k_min = max(2, k_max // 10)
  if k_max - k_min + 1 < MIN_FIT_POINTS:
    raise ValueError(
        f"only {k_resolved} of {lam.size} eigenvalues lie above the rounding floor "
        f"{floor:.3e} (window [{k_min}, {k_max}]); a power-law fit needs "
        f"{MIN_FIT_POINTS}. Use more points, or pass window=(k_min, k_max) explicitly.")
  return k_min, k_max


def _window(window, size: int) -> Tuple[int, int]:
  try:
    k_min, k_max = (int(window[0]), int(window[1]))
  except (TypeError, ValueError, IndexError) as err:
    raise ValueError(f"window must be (k_min, k_max), got {window!r}.") from err
  if not 1 <= k_min < k_max <= size or k_max - k_min + 1 < MIN_FIT_POINTS:
    raise ValueError(f"window {window!r} must satisfy 1 <= k_min < k_max <= {size} "
                     f"with at least {MIN_FIT_POINTS} eigenvalues.")
  return k_min, k_max


def _fit(values: np.ndarray, k_min: int, k_max: int, what: str) -> DecayFit:
  """Power-law fit of ``values[k-1] ~ C k^(-alpha)`` for ``k_min <= k <= k_max``."""
  sel = values[k_min - 1:k_max]
  if np.any(sel <= 0):
    raise ValueError(f"{what} in the window [{k_min}, {k_max}] must be > 0 "
                     f"(smallest {sel.min():.3e}); choose a window above the rounding floor.")
  logk, loglam = np.log(np.arange(k_min, k_max + 1, dtype=np.float64)), np.log(sel)
  s, b, se = _slope(logk, loglam)
  half = logk.size // 2
  if half >= 3:
    s1, s2 = _slope(logk[:half], loglam[:half])[0], _slope(logk[half:], loglam[half:])[0]
    spread = abs(s1 - s2) / 2
  else:
    spread = 0.0
  return DecayFit(alpha=-s, uncertainty=max(se, spread), stderr=se, spread=spread,
                  prefactor=math.exp(b), k_min=k_min, k_max=k_max)


def decay_rate(eigenvalues, window: Optional[Tuple[int, int]] = None,
               n: Optional[int] = None, floor: Optional[float] = None) -> DecayFit:
  """Power-law exponent ``alpha`` of ``lambda_k ~ C k^(-alpha)`` with its uncertainty.

  ``eigenvalues`` are sorted descending first (ranks ``k = 1, 2, ...``). The fit is
  ordinary least squares of ``log lambda_k`` on ``log k`` over ``window``
  (1-based, inclusive; default :func:`default_window`). The uncertainty is the
  larger of the slope's standard error and half the gap between the exponents of
  the two halves of the window, so that a spectrum which is not a power law in
  the window (e.g. ``exp(-c k^(1/d))`` of an analytic kernel) gets a wide error.
  Raises ``ValueError`` for a window outside the spectrum, with fewer than 4
  points, or with eigenvalues ``<= 0`` in it.
  """
  lam = _as_spectrum(eigenvalues)
  k_min, k_max = default_window(lam, n, floor) if window is None else _window(window, lam.size)
  return _fit(lam, k_min, k_max, "eigenvalues")


def relative_decay(reference, other, window: Optional[Tuple[int, int]] = None,
                   model: str = "power", beta: float = 1.0) -> DecayFit:
  """Fit of the ratio ``lambda_k(other) / lambda_k(reference) ~ C k^(-delta)`` of
  two descending spectra, rank by rank: ``delta = alpha(other) - alpha(reference)``
  on the same window (least squares is linear in ``log lambda``), with the
  uncertainty of the difference itself (errors common to both spectra, such as
  curvature of an exponential decay, cancel). ``delta > 0``: ``other`` decays
  faster. Default window: :func:`common_window`. With ``model="exponential"`` or
  ``"stretched"`` (exponent ``beta``) the ratio is fitted as ``C exp(-delta k^beta)``
  instead: ``delta`` is then the difference of the :class:`ModelFit` rates (``beta`` a
  finite number > 0)."""
  if model not in DECAY_MODELS:
    raise ValueError(f"model must be one of {DECAY_MODELS}, got {model!r}.")
  if model == "stretched" and not (np.isfinite(beta) and beta > 0):
    raise ValueError(f"beta (the stretched exponent) must be a finite number > 0, got {beta!r}.")
  a, b = _as_spectrum(reference, "reference"), _as_spectrum(other, "other")
  if a.size != b.size:
    raise ValueError(f"spectra must have the same length, got {a.size} and {b.size}.")
  k_min, k_max = common_window(a, b) if window is None else _window(window, a.size)
  for lam, what in ((a, "reference eigenvalues"), (b, "other eigenvalues")):
    if np.any(lam[k_min - 1:k_max] <= 0):
      raise ValueError(f"{what} in the window [{k_min}, {k_max}] must be > 0.")
  if model == "power":
    return _fit(b / np.where(a > 0, a, 1.0), k_min, k_max, "ratios")
  k = np.arange(k_min, k_max + 1, dtype=np.float64)
  f = _model_fit(model, k, np.log(b[k_min - 1:k_max] / a[k_min - 1:k_max]),
                 1.0 if model == "exponential" else float(beta), 2)
  se = f.uncertainty
  return DecayFit(alpha=f.rate, uncertainty=se, stderr=se, spread=0.0, prefactor=f.prefactor,
                  k_min=k_min, k_max=k_max)


DECAY_MODELS = ("power", "exponential", "stretched")
STRETCH_EXPONENTS = np.round(np.arange(0.05, 2.0001, 0.01), 2)


@dataclasses.dataclass(frozen=True)
class ModelFit:
  """One decay model fitted to ``log lambda_k`` on ``k_min <= k <= k_max``:

  * ``"power"``: ``lambda_k ~ C k^(-rate)`` (``rate`` = alpha);
  * ``"exponential"``: ``lambda_k ~ C exp(-rate k)``;
  * ``"stretched"``: ``lambda_k ~ C exp(-rate k^beta)``, ``beta`` in (0, 2] by profile
    least squares (:data:`STRETCH_EXPONENTS`; ``beta = 1`` is the exponential).

  ``uncertainty`` of ``rate``: the larger of its standard error and half the gap between
  the rates fitted on the two halves of the window (at the same ``beta``), as for
  :class:`DecayFit`. ``rms``: root-mean-square residual of ``log lambda``; ``aic``:
  ``m log(RSS / m) + 2 p`` (``m`` points, ``p`` parameters: 2, 2, 3) -- lower is better."""
  model: str
  rate: float
  uncertainty: float
  beta: float
  prefactor: float
  rms: float
  aic: float
  k_min: int
  k_max: int

  def __str__(self):
    form = {"power": f"C k^-{self.rate:.3g}", "exponential": f"C exp(-{self.rate:.3g} k)",
            "stretched": f"C exp(-{self.rate:.3g} k^{self.beta:.2f})"}[self.model]
    return (f"{self.model}: lambda_k ~ {form}, rate +- {self.uncertainty:.2g}, rms log-residual "
            f"{self.rms:.2g} (k in [{self.k_min}, {self.k_max}])")


@dataclasses.dataclass(frozen=True)
class DecayModels:
  """The fits of every model in :data:`DECAY_MODELS` on one window and the chosen one
  (``best``: lowest ``aic``)."""
  fits: Mapping[str, ModelFit]
  best: str

  @property
  def chosen(self) -> ModelFit:
    return self.fits[self.best]

  def __str__(self):
    return f"best {self.chosen}; " + "; ".join(
        f"{m}: rms {f.rms:.2g}" for m, f in self.fits.items() if m != self.best)


def _abscissa(model: str, k: np.ndarray, beta: float) -> np.ndarray:
  return {"power": np.log(k), "exponential": k, "stretched": k ** beta}[model]


def _model_fit(model: str, k: np.ndarray, loglam: np.ndarray, beta: float, p: int) -> ModelFit:
  x = _abscissa(model, k, beta)
  s, b, se = _slope(x, loglam)
  half = k.size // 2
  spread = (abs(_slope(x[:half], loglam[:half])[0] - _slope(x[half:], loglam[half:])[0]) / 2
            if half >= 3 else 0.0)
  rss = float(np.sum((loglam - b - s * x) ** 2))
  m = k.size
  return ModelFit(model, -s, max(se, spread), beta, math.exp(b), math.sqrt(rss / m),
                  m * math.log(max(rss, 1e-300) / m) + 2 * p, int(k[0]), int(k[-1]))


def decay_models(eigenvalues, window: Optional[Tuple[int, int]] = None,
                 n: Optional[int] = None, floor: Optional[float] = None) -> DecayModels:
  """Power-law, exponential and stretched-exponential fits of a descending spectrum on
  one window (default :func:`default_window`), and the model with the lowest AIC.

  Kernels of smooth activations (erf, sin, gelu) are analytic, so their eigenvalues decay
  faster than any power (like ``exp(-c k^(1/d))`` in ``d`` dimensions); a power law's
  exponent is then a local slope that drifts with the window. Same errors as
  :func:`decay_rate`."""
  lam = _as_spectrum(eigenvalues)
  k_min, k_max = default_window(lam, n, floor) if window is None else _window(window, lam.size)
  sel = lam[k_min - 1:k_max]
  if np.any(sel <= 0):
    raise ValueError(f"eigenvalues in the window [{k_min}, {k_max}] must be > 0 (smallest "
                     f"{sel.min():.3e}); choose a window above the rounding floor.")
  k = np.arange(k_min, k_max + 1, dtype=np.float64)
  loglam = np.log(sel)
  fits = {"power": _model_fit("power", k, loglam, 1.0, 2),
          "exponential": _model_fit("exponential", k, loglam, 1.0, 2)}
  if k.size > 3:
    rss = [np.sum((loglam - np.polyval(np.polyfit(k ** b, loglam, 1), k ** b)) ** 2)
           for b in STRETCH_EXPONENTS]
    fits["stretched"] = _model_fit("stretched", k, loglam,
                                   float(STRETCH_EXPONENTS[int(np.argmin(rss))]), 3)
  return DecayModels(fits, min(fits, key=lambda m: fits[m].aic))


def common_window(*spectra, n: Optional[int] = None) -> Tuple[int, int]:
  """The intersection of the :func:`default_window` of several spectra, so their
  exponents are fitted on the same ranks and can be compared."""
  windows = [default_window(s, n) for s in spectra]
  k_min, k_max = max(w[0] for w in windows), min(w[1] for w in windows)
  if k_max - k_min + 1 < MIN_FIT_POINTS:
    raise ValueError(f"the fit windows {windows} share fewer than {MIN_FIT_POINTS} ranks.")
  return k_min, k_max


def condition_number(eigenvalues) -> float:
  """``lambda_max / lambda_min``; ``inf`` if ``lambda_min <= 0`` (numerically
  singular). Accepts a spectrum or a symmetric matrix."""
  lam = _spectrum_of(eigenvalues)
  return float(lam[0] / lam[-1]) if lam[-1] > 0 else math.inf


def effective_rank(eigenvalues) -> float:
  """``exp(H(p))`` with ``p_k = lambda_k / sum lambda`` over the positive
  eigenvalues (Roy & Vetterli 2007): between 1 and ``n``."""
  lam = _spectrum_of(eigenvalues)
  pos = lam[lam > 0]
  if pos.size == 0:
    raise ValueError("effective_rank needs at least one positive eigenvalue.")
  p = pos / pos.sum()
  return float(math.exp(-float(p @ np.log(p))))


def convergence_times(eigenvalues, learning_rate: float) -> np.ndarray:
  """Mode-wise e-folding times ``1 / (eta lambda_k)`` of ``dr/dt = -eta K r``
  (``inf`` for ``lambda_k <= 0``). With the loss ``1/(2n) sum r_i^2`` and steps of
  size ``eta``, pass ``learning_rate = eta / n``; times then count steps."""
  lam = _spectrum_of(eigenvalues)
  eta = float(learning_rate)
  if not math.isfinite(eta) or eta <= 0:
    raise ValueError(f"learning_rate must be finite and > 0, got {learning_rate}.")
  with np.errstate(divide="ignore"):
    return np.where(lam > 0, 1.0 / (eta * np.where(lam > 0, lam, 1.0)), np.inf)


def block_traces(G) -> dict:
  """``{channel: trace of its diagonal block}`` of an :class:`ntkpde.BlockGram`
  (``{"all": trace}`` for a plain matrix)."""
  if hasattr(G, "block") and hasattr(G, "names"):
    return {name: float(np.trace(np.asarray(G.block(name, name)))) for name in G.names}
  return {"all": float(np.trace(as_matrix(G)))}


def _spectrum_of(values) -> np.ndarray:
  a = np.asarray(getattr(values, "matrix", values))
  return eigenvalues(values) if a.ndim == 2 else _as_spectrum(values)


def summary(G, weights=None, window: Optional[Tuple[int, int]] = None) -> dict:
  """Size, trace, ``lambda_max``, ``lambda_min``, condition number, effective
  rank and power-law fit of a Gram matrix (or of a spectrum), as a flat dict.
  The fit is omitted (``alpha`` = None, ``fit_error`` says why) when the spectrum
  has too few resolved eigenvalues."""
  a = np.asarray(getattr(G, "matrix", G))
  if a.ndim != 2 and weights is not None:
    raise ValueError("weights apply to a Gram matrix; pass the matrix, not its eigenvalues.")
  lam = eigenvalues(G, weights=weights) if a.ndim == 2 else _as_spectrum(G)
  row = {"n": int(lam.size), "trace": float(lam.sum()), "lambda_max": float(lam[0]),
         "lambda_min": float(lam[-1]), "condition_number": condition_number(lam),
         "effective_rank": effective_rank(lam)}
  try:
    fit = decay_rate(lam, window=window)
    row.update(alpha=fit.alpha, alpha_uncertainty=fit.uncertainty, k_min=fit.k_min,
               k_max=fit.k_max, fit_error="")
  except ValueError as err:
    row.update(alpha=None, alpha_uncertainty=None, k_min=None, k_max=None, fit_error=str(err))
  return row


def comparison_table(rows: Mapping[str, dict],
                     columns: Sequence[str] = ("n", "lambda_max", "condition_number",
                                               "effective_rank", "alpha",
                                               "alpha_uncertainty", "k_min", "k_max")) -> str:
  """A Markdown table, one line per kernel, of :func:`summary` dicts."""
  def fmt(v):
    if v is None:
      return "-"
    if isinstance(v, (int, np.integer)):
      return str(int(v))
    if isinstance(v, (float, np.floating)):
      return f"{v:.4g}"
    return str(v)
  lines = ["| kernel | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
  for name, row in rows.items():
    lines.append(f"| {name} | " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
  return "\n".join(lines)

