"""Hard-constraint output maps ``u(x) = A(x) + B(x) N(x)`` around a network ``N``.

With ``B = 0`` on a boundary and ``A`` equal to the boundary data there, ``u`` satisfies
the Dirichlet condition exactly for every parameter (Lagaris, Likas & Fotiadis 1998;
Sukumar & Srivastava 2022). ``A`` and ``B`` are fixed, so the Jacobian of ``u`` is
``B(x) dN/dtheta`` and the kernels of ``u - A`` are

    K_u(x, x') = B(x) B(x') K(x, x')         (NTK and NNGP alike),

differentiated as a whole by the operator kernels (``T_x S_x' K_u`` by the product rule,
through the same nested forward-mode derivatives as any kernel): :func:`constrain`
returns a network whose ``kernel_fn`` is ``K_u``. Targets of a residual channel
``T u = f`` become ``f - T A`` for ``u - A`` (:meth:`OutputMap.shift`). Boundary channels
where ``B = 0`` have zero kernel rows and are dropped from the training set.
"""
import dataclasses
from typing import Callable, Optional, Sequence

import jax.numpy as jnp
import numpy as np
import sympy

from ntkpde.architectures import Network
from ntkpde.expressions import parse_expression
from ntkpde.operators import LinearOperator, _check_coords


def _field(value, coords, what) -> Callable:
  """Text (parsed by the ``ast`` whitelist, coordinates only) or a row-local JAX function
  ``x (..., d) -> (...)``, as a row-local JAX function."""
  if callable(value):
    return value
  if not isinstance(value, (str, int, float)) or isinstance(value, bool):
    raise ValueError(f"{what} must be text in the coordinates {list(coords)}, a number or a "
                     f"JAX function of x; got {type(value).__name__}.")
  symbols = tuple(sympy.Symbol(c, real=True) for c in coords)
  expr = parse_expression(str(value), dict(zip(coords, symbols)), what=what)
  fn = sympy.lambdify(symbols, expr, modules=jnp)

  def evaluate(x):
    x = jnp.asarray(x)
    return jnp.broadcast_to(fn(*[x[..., i] for i in range(len(coords))]),
                            x.shape[:-1]).astype(x.dtype)
  return evaluate


@dataclasses.dataclass(frozen=True, eq=False)
class OutputMap:
  """``u = A + B N`` over named coordinates; ``A`` and ``B`` row-local JAX functions."""
  coords: tuple
  A: Callable
  B: Callable
  description: str

  def shift(self, op: LinearOperator) -> Callable:
    """``x -> (T A)(x)``: subtract it from the targets of a channel with operator ``T``."""
    return op(self.A)

  def shifts(self, channels) -> np.ndarray:
    """``[T_c A(X_c)]_c`` over ``(name, operator, points)`` channels, concatenated."""
    return np.concatenate([np.asarray(self.shift(op)(jnp.asarray(points)))
                           for _, op, points in channels])


def output_map(coords: Sequence[str], A="0", B="1") -> OutputMap:
  """``u = A + B N``; ``A``, ``B`` as text (``"x*(1 - x)"``) or JAX functions of ``x``."""
  coords = _check_coords(coords)
  text = f"u = ({A if not callable(A) else 'A(x)'}) + ({B if not callable(B) else 'B(x)'}) N"
  return OutputMap(coords, _field(A, coords, "output map A"), _field(B, coords, "output map B"),
                   text)


def check_channels(output, channels) -> None:
  """Raises ``ValueError`` unless ``output`` is an :class:`OutputMap` over the coordinates of
  ``channels`` (``(name, operator, points)`` triples); a channel of ``u`` alone (order 0) at
  a point where ``B = 0`` is refused (``u = A`` there already; its kernel row is zero)."""
  if not isinstance(output, OutputMap):
    raise ValueError(f"output must be an ntkpde.output_maps.OutputMap (output_maps.output_map), "
                     f"got {type(output).__name__}.")
  channels = [tuple(c) for c in channels]
  coords = channels[0][1].coords
  if output.coords != coords:
    raise ValueError(f"output map coordinates {output.coords} differ from the channels' {coords}.")
  for name, op, points in channels:
    if op.order == 0 and np.any(np.asarray(output.B(jnp.asarray(points))) == 0):
      raise ValueError(f"channel {name!r}: B = 0 at some of its points, where u = A holds "
                       f"exactly; drop those points (or the channel).")


@dataclasses.dataclass(frozen=True)
class ConstrainedKernel:
  """``(x1, x2, get) -> B(x1) B(x2)^T * kernel_fn(x1, x2, get)``."""
  base: Callable
  output: OutputMap

  @property
  def max_operator_order(self) -> Optional[int]:
    return getattr(self.base, "max_operator_order", None)

  @property
  def description(self) -> str:
    return f"{getattr(self.base, 'description', 'kernel')} under {self.output.description}"

  def __call__(self, x1, x2=None, get=None):
    x2 = x1 if x2 is None else x2
    return self.output.B(x1)[:, None] * self.base(x1, x2, get) * self.output.B(x2)[None, :]


def constrain(net: Network, output: OutputMap) -> Network:
  """The network ``u(x) = A(x) + B(x) N(x)`` (scalar ``N``): same ``init_fn``,
  ``apply_fn`` wrapped, ``kernel_fn`` the :class:`ConstrainedKernel` of ``u - A``."""
  def apply_fn(params, x, **kwargs):
    out = net.apply_fn(params, x, **kwargs)
    return output.A(x)[..., None] + output.B(x)[..., None] * out
  return Network(net.init_fn, apply_fn, ConstrainedKernel(net.kernel_fn, output),
                 f"{net.description} under {output.description}")
