"""Operator-informed kernels ``T_x S_x' K(x, x')`` and their block Gram matrices.

For a network ``u(x; theta)`` trained on residuals ``T u(x_i) - f_i`` the NTK of
the residuals is ``T_x S_x' Theta(x, x')`` (operator-informed NTK; Wang, Yu &
Perdikaris 2022, eq. (4.6); Hirsch & Pichi eq. (3)); the same holds for the NNGP.
Mixed channels (interior operator ``T``, boundary operator ``S``) give the cross
blocks of the block Gram matrix.

Two routes compute the derivatives, chosen per kernel (reported as ``.method`` on
the returned function and in a log line of the ``ntkpde`` logger):

* ``"taylor"``: kernels built by :func:`ntkpde.mlp` with a smooth activation carry
  their scalar structure ``K = F(x.x', |x|^2, |x'|^2)``; :mod:`ntkpde.taylor_engine`
  pushes truncated Taylor series through ``F`` (compiled program polynomial in the
  order; theory/taylor_engine.md). Used at every order for erf, sigmoid_like, gelu and
  gaussian, and above total order ``NESTED_MAX_ORDER`` for sin and cos (:func:`route`
  gives the measurements).
* ``"nested-jvp"``: any other ``kernel_fn`` (a user's stax triple), and sin and cos
  ``ntkpde.mlp`` kernels up to total order ``NESTED_MAX_ORDER``, where it runs
  about as fast or faster: nested
  forward-mode ``jvp``s of the analytic ``kernel_fn``. Entry ``(a, b)`` of
  ``K(X1, X2)`` depends only on row ``a`` of ``X1`` and row ``b`` of ``X2``, so one
  ``jvp`` with the same tangent ``e_i`` on every row of ``X1`` gives ``d/dx_i K``
  for every pair at once (:func:`ntkpde.operators.differentiate`). Its program
  grows 3-7x per derivative order: total orders above ``MAX_TOTAL_ORDER`` are
  refused unless forced.

Large matrices are computed in ``tile x tile`` tiles of one compiled shape, so
device memory is bounded by the tile, not by ``N``; see docs/operator_kernels_speed.md.
Inputs no larger than a tile are padded to a few fixed sizes so that different
point counts share compilations.
"""
import collections
import dataclasses
import functools
import logging
import os
import queue
import threading
import warnings
from typing import Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkpde import _compat, smoothness, taylor_engine
from ntkpde.operators import LinearOperator, differentiate

LOG = logging.getLogger("ntkpde")

GETS = ("ntk", "nngp")
# Working memory of one compiled tile per entry of the tile: XLA's memory_analysis on CPU
# gives 8 B (plain kernel), 97 B (Lap x Lap, nested jvp, depth 2), 200 B (biharmonic x
# biharmonic, Taylor engine, depth 1) and 410 B (Lap x Lap, Taylor engine, depth 3),
# independent of the tile size.
TILE_BYTES_PER_ENTRY = 512
# The same for the Taylor engine's cores. Written out, their pairs fuse into kernels with
# 1-3 B of temporaries per entry; looped or stacked (many pairs of high order), the loop
# keeps the pair-independent values of every layer: 329-667 B (erf biharmonic x biharmonic,
# depths 2-4, pair loop), 731-947 B (erf depth 4, 2-D and 3-D, stacked), 979 B (gelu depth
# 4, 3-D Lap x Lap), 1,116-1,778 B (gelu depths 3-4, biharmonic, 2-D and 3-D) at N = 256
# (the 3-D gelu case at N = 128; the count per entry did not depend on N elsewhere). On CPU
# those cores run in blocks of rows (taylor_engine.row_block) and need 5-25 B per entry
# (erf and gelu biharmonic, depths 1-4, N = 512-1024); other devices take whole tiles.
TAYLOR_TILE_BYTES_PER_ENTRY = 2048
CPU_TILE_BUDGET = 2 << 30    # bytes for the tiles in flight on a device that reports no memory
DEVICE_MEMORY_FRACTION = 0.25  # of a device's free memory, for the tiles in flight
MAX_TILE = 8192
NESTED_MAX_ORDER = 4    # the highest total order routed to nested jvp for known structures
TAYLOR_AT_EVERY_ORDER = ("erf", "sigmoid_like", "gelu", "gaussian")  # activations that skip it
# Nested forward mode grows the compiled program about 3-4x per derivative order: first
# calls of a depth-2 erf MLP kernel (2 CPU cores) took 4 s at total order 4, 9 s at 5,
# 32-40 s at 6 and over 4 minutes at 8 (biharmonic on both sides) with XLA's default
# fusion emitters; from this order on the older ones are used: u_xxx x u_xxx 7 s (13 s with
# the default emitters), biharmonic x biharmonic 201 s (idle, 2026-12-07).
SLOW_COMPILE_ORDER = 6
# Above this total order (T.order + S.order) work is refused unless forced: nested jvp at
# order 8 already produced a 190k-line program that did not compile in 375 s / 9.4 GB.
MAX_TOTAL_ORDER = 8
# gram's peak memory in units of the finished float64 matrix, beyond the tiles in flight:
# its growth measured 1.016-1.078x at N = 8192-16384 (benchmarks/gram_memory.py; 2.97-3.04x
# before tiles were written in place).
GRAM_PEAK_FACTOR = 1.1


def _tile_for(budget: float, bytes_per_entry: int = TILE_BYTES_PER_ENTRY) -> int:
  """The largest power of two from 64 to ``MAX_TILE`` whose two tiles in flight
  (``2 * bytes_per_entry * tile^2`` bytes) fit in ``budget``."""
  tile = 64
  while 2 * tile <= MAX_TILE and 2 * bytes_per_entry * (2 * tile) ** 2 <= budget:
    tile *= 2
  return tile


DEFAULT_TILE = _tile_for(CPU_TILE_BUDGET)   # 1024


def default_tile(bytes_per_entry: int = TILE_BYTES_PER_ENTRY) -> int:
  """Tile side for the visible devices, for kernels of ``bytes_per_entry`` working memory:
  where JAX reports device memory (``device.memory_stats()``, GPUs) from
  ``DEVICE_MEMORY_FRACTION`` of the smallest free memory (``bytes_limit - bytes_in_use``);
  else (CPU) from the 2 GiB ``CPU_TILE_BUDGET`` (``DEFAULT_TILE`` = 1024 for
  ``TILE_BYTES_PER_ENTRY``, 512 for the Taylor engine's ``TAYLOR_TILE_BYTES_PER_ENTRY``).
  Two tiles per device are in flight (:func:`device_tiles`)."""
  free = []
  for device in jax.local_devices():
    stats = device.memory_stats()
    if stats and "bytes_limit" in stats:
      free.append(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
  budget = DEVICE_MEMORY_FRACTION * min(free) if free else CPU_TILE_BUDGET
  return _tile_for(budget, bytes_per_entry)


class NonFiniteKernelError(FloatingPointError):
  """A kernel evaluation produced NaN or inf."""


def _apply(k: Callable, op: LinearOperator, argnum: int) -> Callable:
  """``(X1, X2) -> op`` applied to ``k`` in argument ``argnum``."""
  def applied(x1, x2):
    x = (x1, x2)[argnum]
    coefficients = op.coefficients(x)
    total = 0.0
    for c, term in zip(coefficients, op.terms):
      if argnum == 0:
        d = differentiate(lambda a: k(a, x2), term.multi_index)(x1)
        total = total + c[:, None] * d
      else:
        d = differentiate(lambda b: k(x1, b), term.multi_index)(x2)
        total = total + c[None, :] * d
    return total
  return applied


@functools.lru_cache(maxsize=64)
def _kernel(kernel_fn: Callable, get: str) -> Callable:
  """The kernel as one jitted function: every ``jvp`` below then transforms its
  traced program instead of re-running neural-tangents' Python, which halves the
  tracing time and shares it between operator pairs."""
  return jax.jit(lambda x1, x2: kernel_fn(x1, x2, get))


@functools.lru_cache(maxsize=256)
def _compiled(kernel_fn: Callable, t: LinearOperator, s: LinearOperator, get: str) -> Callable:
  slow = t.order + s.order >= SLOW_COMPILE_ORDER
  if slow:
    warnings.warn(f"T_x S_x' K with T = {t}, S = {s} differentiates the kernel to total order "
                  f"{t.order + s.order}: compiling it takes from several seconds (order 6) to "
                  f"minutes (order 8) on a CPU, once per operator pair and input shape.",
                  stacklevel=3)
  # From order 6 on, XLA's older CPU fusion emitters compile this program faster and run it
  # about 3x faster (depth-2 erf u_xxx x u_xxx: 7 s and 25x plain against 13 s and 108x).
  options = _compat.cpu_compiler_options(older_emitters=True) if slow else None
  return _compat.jit(_apply(_apply(_kernel(kernel_fn, get), s, 1), t, 0), options)


def route(kernel_fn, T: LinearOperator, S: LinearOperator) -> str:
  """``"taylor"`` for kernels whose scalar structure ntkpde knows (``ntkpde.mlp`` with a
  smooth activation): at every order for the activations in :data:`TAYLOR_AT_EVERY_ORDER`,
  above total order :data:`NESTED_MAX_ORDER` for the others; else ``"nested-jvp"``.

  Measured on the idle 2-core CPU (2026-12-07, interleaved medians, steady state / plain
  kernel, docs/benchmarks.md "Route choice"): at ``Lap x Lap`` and ``(-Lap + I) x (-Lap + I)``,
  depths 1-3, the Taylor engine runs at 1.4-4.1x for erf (nested jvp 2.3-5.9x, N = 256 and
  1024), 1.4-3.0x for sigmoid_like (2.0-4.9x) and 3.7-10.6x for gelu (4.2-46x), and compiles
  faster (erf depth 3: 2.0-2.3 s against 4.5-6.6 s). gaussian, since half-integer powers
  are square roots (session 8, same cases at N = 256): 2.3-9.8x against 2.7-97x, first
  calls 0.2-2.7 s against 0.2-6.1 s. For sin and cos at N = 256 nested jvp is as fast or
  up to 2x faster at total order <= 4 (sin at N = 1024 about equal); above order 4 its
  compilation explodes (order 6: 5-14 s, order 8: not finished after 375 s)."""
  structure = getattr(kernel_fn, "structure", None)
  if structure is None:
    return "nested-jvp"
  if T.order + S.order <= NESTED_MAX_ORDER and structure.activation not in TAYLOR_AT_EVERY_ORDER:
    return "nested-jvp"
  return "taylor"


def _check_total_order(method: str, T: LinearOperator, S: LinearOperator, force: bool) -> None:
  total = T.order + S.order
  if total <= MAX_TOTAL_ORDER or force:
    return
  cost = ("the Taylor engine's program grows like (A+1)^2 (B+1)^2 in the orders A, B of T, S"
          if method == "taylor" else
          "nested jvp grows the compiled program 3-7x per order (order 8: ~2e5 lines, "
          "not compiled after 375 s and 9.4 GB on a 2-core CPU)")
  raise ValueError(f"T_x S_x' K with T = {T}, S = {S} has total derivative order {total} > "
                   f"{MAX_TOTAL_ORDER} on the {method} route: {cost}. Pass force=True to run "
                   f"it anyway, or use operators of lower order.")


def _warn_slow_taylor(structure, T: LinearOperator, S: LinearOperator) -> None:
  """A line before compilations measured to take about 5 s or more on an idle 2-core CPU,
  N = 256 (docs/benchmarks.md, "Session 7"): total order >= 7 at depth >= 4 (5.5-6.4 s),
  and for gelu order >= 7 from depth 3 (6-20 s) and order >= 4 at depth >= 4 (4.3-6.4 s)."""
  total, depth = T.order + S.order, structure.depth
  gelu = structure.activation == "gelu"
  if (total >= 7 and depth >= 4) or (gelu and ((total >= 7 and depth >= 3)
                                                or (total >= 4 and depth >= 4))):
    warnings.warn(f"T_x S_x' K with T = {T}, S = {S} (total order {total}, "
                  f"{structure.activation}, depth {depth}): the first call compiles "
                  f"for 5-20 s on a CPU, once per input shape.",
                  stacklevel=3)


def _check_operator_order(kernel_fn, *ops: LinearOperator) -> None:
  limit = getattr(kernel_fn, "max_operator_order", None)
  for op in ops:
    if limit is not None and op.order > limit:
      raise ValueError(
          f"operator of order {op.order} ({op}) applied to "
          f"{getattr(kernel_fn, 'description', 'this kernel')}, whose kernel is only "
          f"differentiable to order {limit} on each side (ReLU-family kernels are not "
          f"smooth at x = x'). Use a smooth activation: erf, sin, cos, gelu, gaussian, "
          f"sigmoid_like.")


def _check_points(x, op: LinearOperator, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim == 1 and op.dim == 1:
    x = x[:, None]
  if x.ndim != 2 or x.shape[1] != op.dim:
    raise ValueError(f"{name} must have shape (n, {op.dim}) for coordinates {list(op.coords)}, "
                     f"got {x.shape}.")
  if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
    raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}.")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} must hold finite numbers.")
  return x.astype(np.float64)


def _bucket(n: int, tile: int) -> int:
  """Smallest of 8, 12, 16, 24, 32, 48, ... (powers of two and 1.5 times them)
  that holds ``n``, capped at ``tile``: at most 1.5x padding per axis, and a
  handful of compiled shapes instead of one per point count."""
  size = 8
  while size < n:
    size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
  return min(size, tile)


def _block_size(n: int, tile: int) -> int:
  """Rows of every block of ``n`` points in tiles of at most ``tile``."""
  return _bucket(n, tile) if n <= tile else tile


def _blocks(x: np.ndarray, tile: int):
  """``(start, padded block)`` pairs covering ``x``; every block has the same
  number of rows (padding repeats the block's first row, and is cut off)."""
  size = _block_size(len(x), tile)
  for start in range(0, len(x), size):
    piece = x[start:start + size]
    yield start, np.concatenate([piece, np.repeat(piece[:1], size - len(piece), 0)])


def _float_dtype() -> np.dtype:
  """JAX's floating dtype: float64 (ntkpde enables x64), float32 where a caller turned it
  off (theory/precision.py measures what that costs)."""
  return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def device_tiles(fn: Callable, tasks: Iterable[Tuple[np.ndarray, np.ndarray, int, int]]
                 ) -> Iterator[Tuple[np.ndarray, int]]:
  """``fn(a, b)`` for each task ``(a, b, rows, cols)`` (blocks of points of one padded
  shape; the first ``rows`` of ``a`` and ``cols`` of ``b`` are real), yielded in task
  order as ``(values[:rows, :cols] on the host, number of NaN/inf entries among them)``.

  Tasks go round-robin to every visible JAX device (``jax.local_devices()``), two per
  device in flight (one running, one queued) while the host takes finished ones: several
  GPUs, or ``--xla_force_host_platform_device_count`` CPU devices, share the work. Each
  tile is the same computation on whichever device, and the order of the results is
  fixed, so nothing depends on the number of devices.

  Finiteness is checked on the device: the tile's sum, reduced where the tile lies, is
  finite unless some entry is NaN or inf (or the sum overflows). Only then does the host
  count the non-finite entries of the tile, so the usual path makes no host pass over
  the values. (Padding rows repeat real points, so they add no false alarm, and a false
  alarm from overflow is counted exactly as 0.)"""
  devices = jax.local_devices()
  pending = collections.deque()
  for number, (a, b, rows, cols) in enumerate(tasks):
    device = devices[number % len(devices)]
    values = fn(jax.device_put(a, device), jax.device_put(b, device))
    pending.append((values, jnp.sum(values), rows, cols))
    if len(pending) == 2 * len(devices):
      yield _finished(*pending.popleft())
  for task in pending:
    yield _finished(*task)


def _compile_job(fn: Callable, a, b) -> Optional[Callable[[], object]]:
  """A function that compiles ``fn`` for blocks like ``a`` and ``b`` (``jax.ShapeDtypeStruct``s
  with a device sharding), after lowering it here: ``fn.prepare`` (the Taylor engine) or
  ``fn.lower(a, b).compile`` (a jitted ``fn``, the empirical NTK's tiles; JAX keeps the
  executable for later calls); ``None`` for other callables or a program already compiled."""
  if hasattr(fn, "prepare"):
    return fn.prepare(a, b)
  if hasattr(fn, "lower"):
    return fn.lower(a, b).compile
  return None


def compile_concurrently(jobs: Iterable[Optional[Callable[[], object]]]) -> None:
  """Runs the compile ``jobs`` (functions of no argument; ``None`` skipped) on up to one
  thread per available CPU while this thread draws the next job (lowering it) from
  ``jobs``, and waits for them. XLA releases Python's lock while it compiles, so independent
  programs compile side by side (docs/benchmarks.md, "Session 10"). The first error is
  raised once every job has stopped; the threads are daemons, so Ctrl-C does not wait for
  a compilation in flight."""
  pending: "queue.Queue" = queue.Queue()
  errors = []

  def worker():
    for job in iter(pending.get, None):
      if errors:
        continue
      try:
        job()
      except BaseException as err:  # noqa: BLE001 - re-raised in the calling thread
        errors.append(err)
  threads = []
  try:
    for job in jobs:
      if job is None:
        continue
      if len(threads) < _cpus():
        threads.append(threading.Thread(target=worker, daemon=True))
        threads[-1].start()
      pending.put(job)
  finally:  # also when drawing a job fails: every thread stops
    for _ in threads:
      pending.put(None)
  for thread in threads:
    while thread.is_alive():
      thread.join(0.1)
  if errors:
    raise errors[0]


def _cpus() -> int:
  """CPUs this process may run on."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _finished(values, total, rows: int, cols: int) -> Tuple[np.ndarray, int]:
  block = np.asarray(values)[:rows, :cols]
  if np.isfinite(total):
    return block, 0
  return block, block.size - int(np.count_nonzero(np.isfinite(block)))


def _tiled(fn: Callable, x1: np.ndarray, x2: np.ndarray, tile: int, out: np.ndarray,
           symmetric: bool) -> int:
  """Writes ``fn(x1, x2)`` into ``out`` from calls on blocks of at most ``tile`` rows
  of each (one compiled shape per axis, spread over devices by :func:`device_tiles`);
  returns the number of its entries that are not finite. ``symmetric`` (``x2`` is
  ``x1`` and ``fn`` a symmetric kernel): only tiles on and above the diagonal are
  computed, each placed with its transpose, and diagonal tiles are symmetrised, so
  ``out`` is exactly symmetric."""
  n1, n2 = len(x1), len(x2)
  rows = list(_blocks(x1, tile))
  columns = rows if symmetric else list(_blocks(x2, tile))
  places = [(i, a, j, b) for p, (i, a) in enumerate(rows) for q, (j, b) in enumerate(columns)
            if q >= p or not symmetric]
  tasks = ((a, b, min(len(a), n1 - i), min(len(b), n2 - j)) for i, a, j, b in places)
  bad = 0
  for (i, _, j, _), (block, count) in zip(places, device_tiles(fn, tasks)):
    bad += _place(out, symmetric, i, j, block, count)
  return bad


def _tile_programs(fn: Callable, a: np.ndarray, b: np.ndarray, tile: int, symmetric: bool
                   ) -> list:
  """``(key, lower)`` for the one tile shape of ``_tiled(fn, a, b, tile, ...)`` on each device
  :func:`device_tiles` gives a tile to: ``lower()`` lowers ``fn`` there and returns its
  :func:`_compile_job`; ``key`` names the program (``fn.program``, shared by tile functions
  that compile one program, else ``fn``; shapes; device)."""
  size_a, size_b = _block_size(len(a), tile), _block_size(len(b), tile)
  rows, cols = -(-len(a) // size_a), -(-len(b) // size_b)
  tiles = rows * (rows + 1) // 2 if symmetric else rows * cols
  programs = []
  for device in jax.local_devices()[:tiles]:
    sharding = jax.sharding.SingleDeviceSharding(device)
    blocks = [jax.ShapeDtypeStruct((size,) + x.shape[1:], _float_dtype(), sharding=sharding)
              for size, x in ((size_a, a), (size_b, b))]
    programs.append(((getattr(fn, "program", fn), size_a, size_b, device),
                     functools.partial(_compile_job, fn, *blocks)))
  return programs


def _compile_programs(programs: Iterable[Tuple[tuple, Callable]]) -> None:
  """Lowers each distinct program of ``programs`` (:func:`_tile_programs`) here and compiles
  them side by side (:func:`compile_concurrently`)."""
  seen = set()

  def jobs():
    for key, lower in programs:
      if key not in seen:
        seen.add(key)
        yield lower()
  compile_concurrently(jobs())


def _place(out: np.ndarray, symmetric: bool, i: int, j: int, block: np.ndarray,
           count: int) -> int:
  """Copies a finished tile into ``out`` (and its transpose below the diagonal when
  ``symmetric``); returns its non-finite count over the entries it fills."""
  r, c = block.shape
  if symmetric and i == j:
    diagonal = out[i:i + r, j:j + c]
    np.multiply(block, 0.5, out=diagonal)
    diagonal += 0.5 * block.T      # halves first: no overflow near the largest float
    return int(count)
  out[i:i + r, j:j + c] = block
  if symmetric:
    out[j:j + c, i:i + r] = block.T
    return 2 * int(count)
  return int(count)


def check_operator_pair(T: LinearOperator, S: Optional[LinearOperator], tile: int,
                        tile_name: str = "tile") -> LinearOperator:
  """Validates the operators and tile size of a (possibly mixed) kernel block before
  any work; returns ``S`` (default ``T``). Shared by the analytic and the empirical
  operator kernels."""
  S = T if S is None else S
  for name, op in (("T", T), ("S", S)):
    if not isinstance(op, LinearOperator):
      raise TypeError(f"{name} must be an ntkpde.operators.LinearOperator, got "
                      f"{type(op).__name__}; build one with ntkpde.operators.parse.")
  if T.coords != S.coords:
    raise ValueError(f"T and S act on different coordinates: {T.coords} vs {S.coords}.")
  if int(tile) < 1:
    raise ValueError(f"{tile_name} must be >= 1, got {tile}.")
  return S


def tiled_evaluator(fn: Callable, T: LinearOperator, S: LinearOperator, tile: int,
                    what: str) -> Callable:
  """``(x1, x2=None, out=None) -> fn(x1, x2)``, an ``(n1, n2)`` float64 NumPy array:
  inputs checked against the operators' coordinates, computed in ``tile x tile``
  tiles written straight into ``out`` (a preallocated float64 array of that shape,
  e.g. a block of a larger matrix; allocated if ``None``, and returned), and a
  ``NonFiniteKernelError`` naming ``what`` if any entry is NaN or inf. Without
  ``x2`` and with ``T == S`` the matrix is symmetric: half the tiles are computed.
  ``fn(a, b)`` is a JAX function of two equally padded blocks of points; it is kept as
  ``evaluate.tile_fn`` (with ``evaluate.coords`` and ``evaluate.tile``) for callers that
  schedule their own tiles (:mod:`ntkpde.large_eigen`)."""
  def programs(x1, x2=None) -> list:
    """The programs ``evaluate(x1, x2)`` will call (:func:`_tile_programs`: one tile shape,
    on each device that takes a tile), for :func:`_compile_programs`."""
    a = _check_points(x1, T, "x1")
    b = a if x2 is None else _check_points(x2, S, "x2")
    return _tile_programs(fn, a, b, int(tile), symmetric=x2 is None and T == S)

  prepared = set()  # programs this evaluator has had compiled: later calls skip the lookup

  def evaluate(x1, x2=None, out=None):
    a = _check_points(x1, T, "x1")
    b = a if x2 is None else _check_points(x2, S, "x2")
    programs = [p for p in _tile_programs(fn, a, b, int(tile), x2 is None and T == S)
                if p[0] not in prepared]
    _compile_programs(programs)
    prepared.update(key for key, _ in programs)
    shape, dtype = (len(a), len(b)), _float_dtype()
    if out is None:
      out = np.empty(shape, dtype)
    elif not (isinstance(out, np.ndarray) and out.shape == shape and out.dtype == dtype
              and out.flags.writeable):
      raise ValueError(f"out must be a writable {dtype} NumPy array of shape {shape}, got "
                       f"{type(out).__name__} {getattr(out, 'shape', '')} "
                       f"{getattr(out, 'dtype', '')}.")
    bad = _tiled(fn, a, b, int(tile), out, symmetric=x2 is None and T == S)
    if bad:
      raise NonFiniteKernelError(
          f"{what}: {bad} of {out.size} entries are NaN or inf. Check that the activation "
          f"is smooth enough for the operators and that the inputs are in range.")
    return out
  evaluate.tile_fn, evaluate.coords, evaluate.tile = fn, T.coords, int(tile)
  evaluate.programs = programs
  return evaluate


def operator_kernel(kernel_fn: Callable, T: LinearOperator, S: Optional[LinearOperator] = None,
                    get: str = "ntk", tile: Optional[int] = None, force: bool = False,
                    method: Optional[str] = None) -> Callable:
  """Returns ``(x1, x2=None, out=None) -> T_x S_x' K(x1, x2)``, an ``(n1, n2)`` float64
  NumPy array (:func:`tiled_evaluator`: ``x2`` defaults to ``x1``, ``out`` is an optional
  preallocated array to write into).

  ``K`` is ``kernel_fn(., ., get)`` with ``get`` in ``("ntk", "nngp")``; ``S``
  defaults to ``T``. Inputs are ``(n, d)`` arrays over ``T.coords``. The returned
  function's ``.method`` is the route: ``method=None`` chooses it (:func:`route`),
  ``"taylor"`` (``ntkpde.mlp`` kernels only) or ``"nested-jvp"`` forces one; ``.tile`` is
  the tile side (``tile=None``: :func:`default_tile` for the route's working memory, 1024
  on CPU for nested jvp, 512 for the Taylor engine). Raises ``ValueError``
  before any work for a ReLU-family kernel under an operator of order >= 1, for a
  total order above ``MAX_TOTAL_ORDER`` unless ``force=True``, and for badly shaped
  inputs; ``NonFiniteKernelError`` for NaN/inf.
  """
  if get not in GETS:
    raise ValueError(f"get must be one of {GETS}, got {get!r}.")
  S = check_operator_pair(T, S, 1 if tile is None else tile)
  _check_operator_order(kernel_fn, T, S)
  smoothness.check_kernel_fn(kernel_fn, get, T.dim, T.order + S.order,
                             f"T_x S_x' K with T = {T}, S = {S}")
  if method is None:
    method = route(kernel_fn, T, S)
  elif method not in ("taylor", "nested-jvp"):
    raise ValueError(f"method must be None, 'taylor' or 'nested-jvp', got {method!r}.")
  elif method == "taylor" and getattr(kernel_fn, "structure", None) is None:
    raise ValueError("method='taylor' needs a kernel whose scalar structure ntkpde knows "
                     "(ntkpde.mlp with a smooth activation); this one takes 'nested-jvp'.")
  _check_total_order(method, T, S, force)
  LOG.info("operator_kernel: %s route for T = %s, S = %s (%s)", method, T, S, get)
  if method == "taylor":
    _warn_slow_taylor(kernel_fn.structure, T, S)
    fn = taylor_engine.operator_kernel_fn(kernel_fn.structure, kernel_fn.input_map, T, S, get)
  else:
    fn = _compiled(kernel_fn, T, S, get)
  if tile is None:
    tile = default_tile(TAYLOR_TILE_BYTES_PER_ENTRY if method == "taylor" else TILE_BYTES_PER_ENTRY)
  evaluate = tiled_evaluator(fn, T, S, tile, f"T_x S_x' K with T = {T}, S = {S}")
  evaluate.method = method
  return evaluate


@dataclasses.dataclass(frozen=True)
class Channel:
  """A residual channel: its name, the operator applied to ``u``, and its points.
  Unpacks like the tuple ``(name, operator, points)``."""
  name: str
  operator: LinearOperator
  points: np.ndarray

  def __iter__(self):
    return iter((self.name, self.operator, self.points))


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class BlockGram:
  """Block Gram matrix over channels: block ``(a, b)`` is ``T_a,x T_b,x' K`` at the
  points of channels ``a`` and ``b``. ``matrix`` (a NumPy array from :func:`gram`) is
  symmetric by construction."""
  matrix: np.ndarray
  names: Tuple[str, ...]
  sizes: Dict[str, int]

  @property
  def slices(self) -> Dict[str, slice]:
    out, start = {}, 0
    for name in self.names:
      out[name] = slice(start, start + self.sizes[name])
      start += self.sizes[name]
    return out

  def block(self, a: str, b: str) -> np.ndarray:
    for name in (a, b):
      if name not in self.sizes:
        raise KeyError(f"no channel {name!r}; channels are {list(self.names)}.")
    return self.matrix[self.slices[a], self.slices[b]]

  def tree_flatten(self):
    return (self.matrix,), (self.names, tuple(self.sizes.items()))

  @classmethod
  def tree_unflatten(cls, aux, children):
    return cls(children[0], aux[0], dict(aux[1]))


def as_channels(channels: Sequence) -> Tuple[Channel, ...]:
  """Validates ``[(name, operator, points), ...]`` (or ``Channel``s) before any work."""
  out = []
  for item in channels:
    ch = item if isinstance(item, Channel) else Channel(*item)
    if not isinstance(ch.operator, LinearOperator):
      raise TypeError(f"channel {ch.name!r}: operator must be a LinearOperator, got "
                      f"{type(ch.operator).__name__}.")
    out.append(Channel(str(ch.name), ch.operator, _check_points(ch.points, ch.operator,
                                                                f"points of channel {ch.name!r}")))
  if not out:
    raise ValueError("gram needs at least one channel.")
  names = [c.name for c in out]
  if len(set(names)) != len(names):
    raise ValueError(f"channel names must be distinct, got {names}.")
  if len({c.operator.coords for c in out}) != 1:
    raise ValueError(f"all channels must use the same coordinates, got "
                     f"{[c.operator.coords for c in out]}.")
  return tuple(out)


def available_memory() -> Optional[int]:
  """Bytes of memory the machine can still give (``MemAvailable``), or ``None``."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return None


def compile_blocks(kernel_fn: Callable, blocks: Iterable[tuple]) -> None:
  """Compiles, side by side (:func:`compile_concurrently`), every program that the kernel
  blocks ``(T, S, x1, x2, get)`` (``x2=None``: ``x1`` against itself) will call through
  :func:`operator_kernel` with the default tile, so that a caller about to compute several
  Grams and cross blocks (``predict``) compiles them in one wave."""
  _compile_programs(program for T, S, x1, x2, get in blocks
                    for program in operator_kernel(kernel_fn, T, S, get).programs(x1, x2))


def cross_kernel(kernel_fn: Callable, T: LinearOperator, channels: Sequence, x,
                 get: str = "ntk") -> np.ndarray:
  """``[T_x S_c,x' K(x, X_c)]_c``: the kernel of points ``x`` under ``T`` against every
  channel ``(name, S_c, X_c)``, one ``(n, sum_c n_c)`` float64 array (the cross blocks of
  prediction), written block by block into one array after every block's program has been
  compiled side by side (:func:`compile_concurrently`)."""
  chans = [c if isinstance(c, Channel) else Channel(*c) for c in channels]
  compile_blocks(kernel_fn, [(T, c.operator, x, c.points, get) for c in chans])
  starts = np.cumsum([0] + [len(c.points) for c in chans])
  out = np.empty((len(x), starts[-1]), _float_dtype())
  for c, lo, hi in zip(chans, starts[:-1], starts[1:]):
    operator_kernel(kernel_fn, T, c.operator, get)(x, c.points, out=out[:, lo:hi])
  return out


def check_gram_memory(n: int, force: bool = False, tile: Optional[int] = None) -> None:
  """Refuses (``ValueError``) an ``n x n`` float64 Gram whose estimated peak host memory
  exceeds the available memory, unless forced: ``GRAM_PEAK_FACTOR * 8 n^2`` bytes, plus
  the working memory of the tiles in flight on CPU devices (``2 * TILE_BYTES_PER_ENTRY *
  tile^2`` each; a GPU's tiles live in its own memory)."""
  side = min(default_tile() if tile is None else int(tile), n)
  cpus = sum(d.platform == "cpu" for d in jax.local_devices())
  need = GRAM_PEAK_FACTOR * 8.0 * n * n + cpus * 2 * TILE_BYTES_PER_ENTRY * side ** 2
  have = available_memory()
  if force or have is None or need <= have:
    return
  raise ValueError(
      f"a {n} x {n} float64 Gram matrix needs about {need / 2**30:.1f} GiB at its peak, but "
      f"only {have / 2**30:.1f} GiB is available. Use fewer points, "
      f"ntkpde.large_eigen.top_eigenvalues (top eigenvalues from tiles, never forming the "
      f"matrix), or operator_kernel tile by tile; pass force=True to try anyway.")


def gram(kernel_fn: Callable, channels: Sequence, get: str = "ntk",
         tile: Optional[int] = None, force: bool = False) -> BlockGram:
  """The block Gram matrix ``[T_a,x T_b,x' K(X_a, X_b)]_{a,b}`` over ``channels``.

  ``channels`` is a sequence of ``(name, operator, points)``. Upper blocks are
  computed, lower blocks are their transposes. Refuses before any work (unless
  ``force=True``) a total operator order above ``MAX_TOTAL_ORDER`` and a matrix
  larger than the available memory; raises ``NonFiniteKernelError`` naming the
  block if any entry is NaN or inf.
  """
  chans = as_channels(channels)
  _check_operator_order(kernel_fn, *[c.operator for c in chans])
  top = max(chans, key=lambda c: c.operator.order).operator
  _check_total_order(route(kernel_fn, top, top), top, top, force)
  check_gram_memory(sum(len(c.points) for c in chans), force, tile)
  return assemble_gram(chans, lambda T, S: operator_kernel(kernel_fn, T, S, get, tile, force))


def assemble_gram(chans: Sequence[Channel], block_kernel: Callable) -> BlockGram:
  """``BlockGram`` of validated channels, block ``(a, b)`` written in place by
  ``block_kernel(T_a, T_b)`` (a :func:`tiled_evaluator`) into one preallocated matrix,
  every block's program compiled first, side by side (:func:`compile_concurrently`):
  upper blocks computed, lower blocks their transposes, diagonal blocks from their upper
  tiles, symmetrised (``T_x T_x' K(X, X)`` is symmetric only up to rounding: the ``jvp``
  nesting order differs). Peak memory is the matrix plus a few tiles. A
  ``NonFiniteKernelError`` names the block."""
  n = sum(len(c.points) for c in chans)
  out = np.empty((n, n), _float_dtype())
  starts = np.cumsum([0] + [len(c.points) for c in chans])
  blocks = {(i, j): block_kernel(chans[i].operator, chans[j].operator)
            for i in range(len(chans)) for j in range(i, len(chans))}
  _compile_programs(program for (i, j), kernel in blocks.items() for program in
                    kernel.programs(chans[i].points, None if i == j else chans[j].points))
  for i, a in enumerate(chans):
    for j in range(i, len(chans)):
      b = chans[j]
      rows, cols = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
      try:
        blocks[i, j](a.points, None if i == j else b.points, out=out[rows, cols])
      except NonFiniteKernelError as err:
        raise NonFiniteKernelError(f"block ({a.name!r}, {b.name!r}): {err}") from None
      if i != j:
        out[cols, rows] = out[rows, cols].T
  return BlockGram(out, tuple(c.name for c in chans), {c.name: len(c.points) for c in chans})
