"""Loss weights for the physics loss ``L = 1/(2n) sum_c w_c sum_{i in c} r_i^2``.

A weighting is stored as ``A`` in the residual flow ``dr/dt = -(eta/n) K A r``:
a vector (one weight per residual, ``A = diag(a)``) or an ``(n, n)`` matrix
(the general quadratic loss ``1/(2n) r^T A r``; Bonfanti et al., eq. (1)).

Rules:

* :func:`trace_weights` -- ``w_c = Tr(K) / Tr(K_cc)``: the NTK weights of Wang,
  Yu & Perdikaris (2022) quoted as eq. (5) of the NTK-weights/sketching paper
  (NTKW-1), and, with the unit-weight block kernel ``Theta*``, the trace-balancing
  weights ``lambda_r = tr(Theta*)/tr(Theta)``, ``lambda_g = tr(Theta*)/tr(Theta'')``
  of the derivative-labels paper (Prop. 3, eq. (13); eq. (A-20) for many
  channels), which are the same formula.
* :func:`inverse_kernel_weights` -- ``Lambda = Tr(K) K^{-1}``: every residual then
  decays as ``exp(-Tr(K) t)`` (NTKW paper, text after eq. (6)).
"""
from typing import Dict, Mapping, Sequence, Union

import numpy as np

from ntkpde.operator_kernels import BlockGram

Weights = Union[None, Mapping[str, float], Sequence[float], np.ndarray, str]


def trace_weights(gram: BlockGram) -> Dict[str, float]:
  """``{channel: Tr(K) / Tr(K_cc)}`` over the channels of a block Gram matrix.

  NTKW paper eq. (5); derivative-labels paper eq. (13)/(A-20) (``Theta*`` there is
  the block kernel at unit weights, i.e. ``gram.matrix``). After weighting, every
  channel contributes ``Tr(K)`` to ``Tr(K A)``: the channels' mean decay rates are equal.
  """
  total = float(np.trace(np.asarray(gram.matrix)))
  out = {}
  for name in gram.names:
    block_trace = float(np.trace(np.asarray(gram.block(name, name))))
    check_block_trace(name, block_trace)
    out[name] = total / block_trace
  return out


def check_block_trace(name: str, block_trace: float, where: str = "") -> None:
  """Trace weights ``Tr(K) / Tr(K_cc)`` need ``Tr(K_cc) > 0``: ``ValueError`` otherwise."""
  if not block_trace > 0:
    shown = "<= 0" if np.isnan(block_trace) else block_trace
    raise ValueError(f"channel {name!r} has kernel trace {shown}{where}; trace weights "
                     f"need a positive trace on every channel.")


def inverse_kernel_weights(K) -> np.ndarray:
  """``Tr(K) K^{-1}`` (NTKW paper, after eq. (6)): ``K A = Tr(K) I``, so every residual
  decays as ``exp(-Tr(K) t)``. Raises ``ValueError`` if ``K`` is singular to working
  precision (reciprocal condition number below ``n * eps``)."""
  K = np.asarray(K, dtype=np.float64)
  if K.ndim != 2 or K.shape[0] != K.shape[1]:
    raise ValueError(f"K must be a square matrix, got shape {K.shape}.")
  cond = np.linalg.cond(K)
  if not cond * len(K) * np.finfo(np.float64).eps < 1:
    raise ValueError(f"K is singular to working precision (condition number {cond:.2e}); "
                     f"Tr(K) K^-1 does not exist. Use fewer or better-separated points.")
  inverse = np.linalg.inv(K)
  return np.trace(K) * (inverse + inverse.T) / 2


RULES = {"trace": trace_weights}


def per_residual(weights: Weights, sizes: Mapping[str, int], gram: BlockGram = None,
                 signed: bool = False) -> np.ndarray:
  """Resolves a weighting to a vector ``(n,)`` or a matrix ``(n, n)`` over the residuals.

  ``weights`` is ``None`` (all ones), a mapping ``{channel: w_c}`` (missing channels
  get 1), a sequence with one weight per channel, a vector with one weight per
  residual, an ``(n, n)`` matrix, or the name of a rule in :data:`RULES` (needs
  ``gram``). ``sizes`` maps channel names (in order) to their sizes. Raises
  ``ValueError`` for non-finite or negative entries, all-zero weights, wrong shapes or
  unknown channels (:func:`check_nonnegative`). ``signed=True`` accepts any finite real
  ``A`` (not a loss weighting: the general linear flow of adversarial training, whose
  discriminator gives ``A = -G`` of either sign).
  """
  names = list(sizes)
  n = int(sum(sizes.values()))
  if isinstance(weights, str):
    if weights not in RULES:
      raise ValueError(f"unknown weight rule {weights!r}; rules are {sorted(RULES)}.")
    if gram is None:
      raise ValueError(f"weight rule {weights!r} needs the block Gram matrix.")
    weights = RULES[weights](gram)
  if weights is None:
    return np.ones(n)
  if isinstance(weights, Mapping):
    unknown = sorted(set(weights) - set(names))
    if unknown:
      raise ValueError(f"weights name unknown channel(s) {unknown}; channels are {names}.")
    try:
      per_channel = [float(weights.get(c, 1.0)) for c in names]
    except (TypeError, ValueError):
      raise ValueError(f"weights must map channels to numbers, got {dict(weights)!r}.") from None
    out = np.repeat(per_channel, [sizes[c] for c in names])
  else:
    try:
      arr = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
      raise ValueError(f"weights must be numbers, got {weights!r}.") from None
    if arr.ndim == 1 and len(arr) == len(names) and len(names) != n:
      out = np.repeat(arr, [sizes[c] for c in names])
    elif arr.shape == (n,) or arr.shape == (n, n):
      out = arr
    else:
      raise ValueError(f"weights must be one per channel ({len(names)}), one per residual "
                       f"({n}) or an ({n}, {n}) matrix; got shape {arr.shape}.")
  if signed:
    if not np.all(np.isfinite(out)):
      raise ValueError("weights must be finite; got NaN or inf entries.")
    return out
  return check_nonnegative(out)


def check_nonnegative(A: np.ndarray) -> np.ndarray:
  """``A`` (vector or matrix) if the loss ``1/(2n) r^T A r`` is a weighting: finite, ``>= 0``
  (vector) or with a positive semi-definite symmetric part to rounding (matrix), and not
  zero. Negative weights make the loss unbounded below and the flow diverge; all-zero
  weights make it constant. Raises ``ValueError`` naming the problem otherwise."""
  if not np.all(np.isfinite(A)):
    raise ValueError("weights must be finite; got NaN or inf entries.")
  if A.ndim == 1 and np.any(A < 0):
    raise ValueError(f"weights must be >= 0 (a negative weight makes the loss unbounded below "
                     f"and the flow diverge); got min weight {A.min():g}.")
  if A.ndim == 2:
    lam = np.linalg.eigvalsh((A + A.T) / 2)
    if lam[0] < -len(A) * np.finfo(np.float64).eps * max(abs(lam).max(), 1e-300):
      raise ValueError(f"a weight matrix A must have a positive semi-definite symmetric part "
                       f"(r^T A r >= 0); its smallest eigenvalue is {lam[0]:.3e}.")
  if not np.any(A):
    raise ValueError("weights are all zero: the loss is constant and nothing trains. Give at "
                     "least one channel a positive weight.")
  return A
