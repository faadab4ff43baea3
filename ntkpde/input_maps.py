"""Fixed maps applied to the inputs before the network, so that operators act on
physical coordinates while the network sees normalised or embedded features.

An ``InputMap`` is a row-local function ``(..., d) -> (..., m)``; derivative
operators differentiate through it by the chain rule (JAX does this).
"""
import dataclasses
from typing import Callable, Optional, Sequence

import jax.numpy as jnp
import numpy as np

from ntkpde import _checks


@dataclasses.dataclass(frozen=True)
class InputMap:
  """``fn`` maps points ``(..., in_dim)`` to features ``(..., out_dim(in_dim))``."""
  name: str
  fn: Callable
  out_dim: Callable[[int], int]

  def __call__(self, x):
    return self.fn(x)

  def then(self, other: "InputMap") -> "InputMap":
    """``other`` applied after ``self``."""
    return InputMap(f"{self.name}->{other.name}", lambda x: other.fn(self.fn(x)),
                    lambda d: other.out_dim(self.out_dim(d)))


def box_normalization(lower: Sequence[float], upper: Sequence[float]) -> InputMap:
  """Affine map of the box ``[lower, upper]`` onto ``[-1, 1]^d``."""
  lo = np.asarray(lower, dtype=np.float64)
  hi = np.asarray(upper, dtype=np.float64)
  if lo.shape != hi.shape or lo.ndim != 1 or not np.all(np.isfinite(lo) & np.isfinite(hi)) \
     or np.any(hi <= lo):
    raise ValueError(f"box_normalization needs finite 1-d bounds with upper > lower, got {lower}, "
                     f"{upper}.")
  centre, half = (hi + lo) / 2, (hi - lo) / 2

  def out_dim(d):
    if d != lo.size:
      raise ValueError(f"box_normalization is for {lo.size}-d inputs, got {d}-d.")
    return d
  return InputMap("box", lambda x: (x - centre) / half, out_dim)


def periodic_embedding(periodic_axes: Optional[Sequence[int]] = None, period: float = 2 * np.pi
                       ) -> InputMap:
  """``theta -> (cos(2 pi theta / P), sin(2 pi theta / P))`` on the chosen axes
  (default: all), other axes passed through; the kernel becomes periodic in them."""
  if not np.isfinite(period) or period <= 0:
    raise ValueError(f"period must be a positive number, got {period}.")
  if periodic_axes is not None and (len(set(periodic_axes)) != len(periodic_axes) or
                                    any(int(a) != a or a < 0 for a in periodic_axes)):
    raise ValueError(f"periodic_axes must be distinct non-negative axis indices, got {periodic_axes}.")

  def fn(x):
    axes = range(x.shape[-1]) if periodic_axes is None else periodic_axes
    w = 2 * np.pi / period
    cols = []
    for i in range(x.shape[-1]):
      if i in axes:
        cols += [jnp.cos(w * x[..., i]), jnp.sin(w * x[..., i])]
      else:
        cols.append(x[..., i])
    return jnp.stack(cols, axis=-1)

  def out_dim(d):
    if periodic_axes is not None and max(periodic_axes, default=-1) >= d:
      raise ValueError(f"periodic_axes {list(periodic_axes)} do not exist in {d}-d inputs.")
    return d + (d if periodic_axes is None else len(periodic_axes))
  return InputMap("periodic", fn, out_dim)


def fourier_features(in_dim: int, num_features: int, scale: float = 1.0, seed: int = 0
                     ) -> InputMap:
  """Fixed random Fourier features ``x -> (cos(2 pi B x), sin(2 pi B x))`` with
  ``B_ij ~ N(0, scale^2)`` drawn once from ``seed`` (Tancik et al. 2020). ``in_dim`` and
  ``num_features`` are positive integers, ``scale`` a finite number > 0."""
  for value, name in ((in_dim, "in_dim"), (num_features, "num_features")):
    _checks.integer(value, f"fourier_features: {name}")
  if not (np.isfinite(scale) and scale > 0):
    raise ValueError(f"fourier_features: scale must be a finite number > 0, got {scale!r}.")
  b = np.random.default_rng(seed).normal(0.0, scale, size=(num_features, in_dim))

  def fn(x):
    z = 2 * np.pi * x @ b.T
    return jnp.concatenate([jnp.cos(z), jnp.sin(z)], axis=-1)

  def out_dim(d):
    if d != in_dim:
      raise ValueError(f"fourier_features was built for {in_dim}-d inputs, got {d}-d.")
    return 2 * num_features
  return InputMap("fourier", fn, out_dim)
