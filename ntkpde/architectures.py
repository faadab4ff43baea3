"""Networks as neural-tangents stax triples with the smoothness their kernels have.

``mlp`` builds a fully-connected network in the NTK parameterisation; ``network``
wraps any user stax triple. Both return a :class:`Network` whose ``kernel_fn``
carries ``max_operator_order``: the highest derivative order an operator may
apply on each side of the analytic kernel (``None``: not declared, probed first). ReLU-family
kernels are not differentiable at ``x = x'`` (their derivatives blow up on the
diagonal), so only order-0 operators are allowed with them.
"""
import dataclasses
import math
import numbers
from typing import Callable, Optional

from ntkpde import _checks
from ntkpde._compat import import_neural_tangents
from ntkpde.expressions import MAX_DERIVATIVE_ORDER
from ntkpde.input_maps import InputMap
from ntkpde.taylor_engine import SUPPORTED, MlpStructure

stax = import_neural_tangents().stax

# name -> (layer factory, max_operator_order)
ACTIVATIONS = {
    "erf": (lambda **kw: stax.Erf(**kw), None),
    "sin": (lambda **kw: stax.Sin(**kw), None),
    "cos": (lambda **kw: stax.Cos(**kw), None),
    "gelu": (lambda **kw: stax.Gelu(**kw), None),
    "gaussian": (lambda **kw: stax.Gaussian(**kw), None),
    "sigmoid_like": (lambda **kw: stax.Sigmoid_like(**kw), None),
    "relu": (lambda **kw: stax.Relu(**kw), 0),
    "abs": (lambda **kw: stax.Abs(**kw), 0),
    "abrelu": (lambda a=0.2, b=1.0, **kw: stax.ABRelu(a, b, **kw), 0),
}
SMOOTH_ACTIVATIONS = tuple(a for a, (_, order) in ACTIVATIONS.items() if order is None)
# The declared order of smooth networks: every operator the parser admits.
SMOOTH_ORDER = MAX_DERIVATIVE_ORDER


@dataclasses.dataclass(frozen=True, eq=False)
class KernelFn:
  """A stax ``kernel_fn(x1, x2=None, get=None)`` with its admissible operator order,
  and the input map (if any) applied to both arguments first."""
  base: Callable
  max_operator_order: Optional[int] = None
  input_map: Optional[InputMap] = None
  description: str = "user kernel"
  # Set by `mlp` for smooth activations: the scalar structure K = F(p, q, r) that
  # ntkpde.taylor_engine differentiates (None: generic nested-jvp route).
  structure: Optional[MlpStructure] = None

  def __call__(self, x1, x2=None, get=None, **kwargs):
    if self.input_map is not None:
      x1 = self.input_map(x1)
      x2 = None if x2 is None else self.input_map(x2)
    return self.base(x1, x2, get, **kwargs)


@dataclasses.dataclass(frozen=True, eq=False)
class Network:
  """``init_fn(key, input_shape)``, ``apply_fn(params, x)``, ``kernel_fn(x1, x2, get)``
  over physical coordinates (the input map, if any, is inside all three)."""
  init_fn: Callable
  apply_fn: Callable
  kernel_fn: KernelFn
  description: str = "user network"


def network(init_fn, apply_fn, kernel_fn, max_operator_order: Optional[int] = None,
            input_map: Optional[InputMap] = None, description: str = "user network") -> Network:
  """Wraps any stax triple. ``max_operator_order`` declares the highest derivative order
  an operator may apply on each side of the kernel: 0 for ReLU-family activations,
  :data:`SMOOTH_ORDER` for smooth ones. ``None`` declares nothing: before a derivative
  operator the kernel is then probed for a non-smooth diagonal (:mod:`ntkpde.smoothness`)."""
  if input_map is None:
    wrapped_init, wrapped_apply = init_fn, apply_fn
  else:
    def wrapped_init(key, input_shape):
      mapped = tuple(input_shape[:-1]) + (input_map.out_dim(input_shape[-1]),)
      return init_fn(key, mapped)

    def wrapped_apply(params, x, **kwargs):
      return apply_fn(params, input_map(x), **kwargs)
  kfn = KernelFn(kernel_fn, max_operator_order, input_map, description)
  return Network(wrapped_init, wrapped_apply, kfn, description)


def _with_structure(net: Network, structure: MlpStructure) -> Network:
  kfn = dataclasses.replace(net.kernel_fn, structure=structure)
  return dataclasses.replace(net, kernel_fn=kfn)


def mlp(depth: int, width: int = 512, activation: str = "erf", W_std: float = 1.5,
        b_std: float = 0.1, out_dim: int = 1, input_map: Optional[InputMap] = None,
        parameterization: str = "ntk", **activation_kwargs) -> Network:
  """``depth`` hidden layers ``Dense(width) -> activation``, then ``Dense(out_dim)``.

  The analytic kernels are the infinite-width limits (width enters only
  ``init_fn``/``apply_fn``). ``activation`` is one of ``ACTIVATIONS``;
  ``activation_kwargs`` go to the stax layer (e.g. ``a``, ``b``, ``c`` of ``Erf``).
  ``W_std`` and ``b_std`` (``None``: no bias) are finite and ``>= 0``.
  """
  if activation not in ACTIVATIONS:
    raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}.")
  for value, name in ((depth, "depth"), (width, "width"), (out_dim, "out_dim")):
    _checks.integer(value, name)
  for value, name in ((W_std, "W_std"), (b_std, "b_std")):
    if not (value is None and name == "b_std") and not (
        isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
      raise ValueError(f"{name} must be a finite number >= 0 (a standard deviation), got "
                       f"{value!r}.")
  factory, max_order = ACTIVATIONS[activation]
  max_order = SMOOTH_ORDER if max_order is None else max_order
  layers = []
  for _ in range(int(depth)):
    layers += [stax.Dense(int(width), W_std, b_std, parameterization=parameterization),
               factory(**activation_kwargs)]
  layers.append(stax.Dense(out_dim, W_std, b_std, parameterization=parameterization))
  desc = (f"mlp(depth={depth}, width={width}, activation={activation}, W_std={W_std}, "
          f"b_std={b_std}{', input_map=' + input_map.name if input_map else ''})")
  net = network(*stax.serial(*layers), max_operator_order=max_order, input_map=input_map,
                description=desc)
  if activation not in SUPPORTED or out_dim < 1:
    return net
  structure = MlpStructure(int(depth), activation, float(W_std),
                           None if b_std is None else float(b_std), parameterization, int(width),
                           tuple(sorted(activation_kwargs.items())))
  return _with_structure(net, structure)
