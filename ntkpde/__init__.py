"""ntkpde: kernel theory of physics-informed learning in the infinite-width limit.

Precision: importing ntkpde enables JAX's float64 (``jax_enable_x64``) here, in
this one place. Fourth derivatives of kernels lose almost all digits in float32
(measured in docs/precision.md), so every kernel computation runs in float64.
"""
import jax

jax.config.update("jax_enable_x64", True)

from ntkpde import input_maps, operators  # noqa: E402
from ntkpde import predict, problems, weights  # noqa: E402
from ntkpde.architectures import ACTIVATIONS, KernelFn, Network, mlp, network  # noqa: E402
from ntkpde.operator_kernels import (BlockGram, Channel, NonFiniteKernelError, gram,  # noqa: E402
                                     operator_kernel)
from ntkpde import spectrum  # noqa: E402
from ntkpde import finite, sketch, training  # noqa: E402
from ntkpde import nonlinear, output_maps, references  # noqa: E402

__version__ = "0.1.0"

__all__ = ["ACTIVATIONS", "BlockGram", "Channel", "KernelFn", "Network", "NonFiniteKernelError",
           "finite", "gram", "input_maps", "mlp", "network", "nonlinear", "operator_kernel",
           "operators", "output_maps", "predict", "problems", "references", "sketch", "spectrum",
           "training", "weights"]
