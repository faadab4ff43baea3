"""ntkpde: kernel theory of physics-informed learning in the infinite-width limit.

Precision: importing ntkpde enables JAX's float64 (``jax_enable_x64``) here, in
this one place. Fourth derivatives of kernels lose almost all digits in float32
(measured in docs/precision.md), so every kernel computation runs in float64.
"""
import os

import jax

jax.config.update("jax_enable_x64", True)


def _compilation_cache() -> None:
  """JAX's persistent compilation cache, on by default in the user cache folder
  (``$XDG_CACHE_HOME/ntkpde/jax``, else ``~/.cache/ntkpde/jax``): a second run of the
  same kernels loads their programs instead of compiling again. ``NTKPDE_COMPILATION_CACHE``
  names another folder, or ``off`` turns it off; a cache folder set by the caller's own
  JAX configuration is left alone."""
  setting = os.environ.get("NTKPDE_COMPILATION_CACHE", "")
  if setting.lower() in ("off", "0", "none", "false") or jax.config.jax_compilation_cache_dir:
    return
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  folder = setting or os.path.join(base, "ntkpde", "jax")
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError:
    return  # an unwritable home: run without the cache
  jax.config.update("jax_compilation_cache_dir", folder)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _cpu_inlining() -> None:
  """Raises LLVM's inline threshold for XLA's CPU code (``XLA_FLAGS``, read when JAX
  starts its backend, so this works when ntkpde is imported before any JAX computation).
  Without it XLA outlines pieces of large fusions into calls that LLVM does not inline
  and the fusion runs as scalar code: the order-8 beam kernel ran 31x slower (0.98 s vs
  0.031 s, depth 2, N = 256). ``NTKPDE_XLA_INLINE=off`` or an ``XLA_FLAGS`` that already
  sets ``--xla_backend_extra_options`` leaves the flags alone."""
  flags = os.environ.get("XLA_FLAGS", "")
  if (os.environ.get("NTKPDE_XLA_INLINE", "").lower() in ("off", "0", "false")
      or "xla_backend_extra_options" in flags):
    return
  os.environ["XLA_FLAGS"] = (flags + " --xla_backend_extra_options=-inline-threshold=100000").strip()


_compilation_cache()
_cpu_inlining()

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
