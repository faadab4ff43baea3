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
    if not block_trace > 0:
      raise ValueError(f"channel {name!r} has kernel trace {block_trace}; trace weights need a "
                       f"positive trace on every channel.")
    out[name] = total / block_trace
  return out


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


def per_residual(weights: Weights, sizes: Mapping[str, int], gram: BlockGram = None) -> np.ndarray:
  """Resolves a weighting to a vector ``(n,)`` or a matrix ``(n, n)`` over the residuals.

  ``weights`` is ``None`` (all ones), a mapping ``{channel: w_c}`` (missing channels
  get 1), a sequence with one weight per channel, a vector with one weight per
  residual, an ``(n, n)`` matrix, or the name of a rule in :data:`RULES` (needs
  ``gram``). ``sizes`` maps channel names (in order) to their sizes. Raises
  ``ValueError`` for non-finite entries, wrong shapes or unknown channels.
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
    per_channel = [float(weights.get(c, 1.0)) for c in names]
    out = np.repeat(per_channel, [sizes[c] for c in names])
  else:
    arr = np.asarray(weights, dtype=np.float64)
    if arr.ndim == 1 and len(arr) == len(names) and len(names) != n:
      out = np.repeat(arr, [sizes[c] for c in names])
    elif arr.shape == (n,) or arr.shape == (n, n):
      out = arr
    else:
      raise ValueError(f"weights must be one per channel ({len(names)}), one per residual "
                       f"({n}) or an ({n}, {n}) matrix; got shape {arr.shape}.")
  if not np.all(np.isfinite(out)):
    raise ValueError("weights must be finite.")
  return out
