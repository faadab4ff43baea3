"""Operator kernels of ``ntkpde.mlp`` networks from the kernel's scalar structure.

Every kernel ``ntkpde.mlp`` builds depends on its inputs only through three numbers
(after the input map ``phi``):

  K(x, x') = F(p, q, r),  p = phi(x).phi(x'),  q = |phi(x)|^2,  r = |phi(x')|^2,

where ``F`` is the depth-L NNGP/NTK recursion of the activation's dual (the closed
forms of neural-tangents 0.6.5: arcsine kernel for erf and sigmoid_like, Gaussian
integrals for sin/cos/gaussian, Tsuchida & Gallagher's GELU kernel). :func:`kernel`
writes ``F`` once with :mod:`ntkpde.jets` arithmetic, so the same code evaluates the
plain kernel (arrays) and its truncated bivariate Taylor expansion (jets).

An operator of order ``A`` is written along directions (theory/taylor_engine.md):
``D^alpha = sum_u w_{alpha,u} (u . grad)^{|alpha|}`` with integer directions ``u``
and exact rational weights (or, for a top-degree Laplacian power, a spherical design),
and ``(u . grad)^k f(x) = k! [s^k] f(x + s u)``. Hence

  T_x S_x' K(x, x') = sum_{u, v} sum_{k <= A, l <= B} omega_{u,k}(x) omega'_{v,l}(x')
                      k! l! [s^k t^l] K(x + s u, x' + t v),

one bivariate jet of order ``(A, B)`` per direction pair, computed by pushing the
jets of ``p``, ``q``, ``r`` through ``F``. The compiled program grows like
``(A + 1)^2 (B + 1)^2`` in the orders (the cost of one jet product), not exponentially;
direction pairs are written out where the program is small, else run as one compiled pair
in a loop or stacked by ``lax.map`` (:class:`CompiledCore`).
"""
import dataclasses
import functools
import itertools
import math
import threading
from fractions import Fraction
from typing import Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import sympy

from ntkpde import _compat, jets
from ntkpde.jets import Jet

SUPPORTED = ("erf", "sin", "cos", "gelu", "gaussian", "sigmoid_like")
SIGMOID_LIKE_SCALE = 2.4020563531719796  # neural-tangents' Sigmoid_like: Erf(0.5, 1/2.40.., 0.5)
# Jets of total order A + B >= LAYER_LOOP_MIN_ORDER at depth >= LAYER_LOOP_MIN_DEPTH may run
# layers 2 .. depth in a loop of one compiled layer (see LAYER_UNROLL_MAX_PRODUCTS);
# otherwise the layers are unrolled. Measured
# (2-core CPU, N = 256, order 8, emitters chosen as below; docs/benchmarks.md, "Session 7"):
# unrolled, depth 4 reached its first call as fast or faster than the loop for erf and sin
# (beam 3.1-3.7 s against 4.5-5.3 s, biharmonic 5.4-6.3 s against 5.7-6.4 s) and ran 1.2-7x
# faster; gelu took 10-15 s against 9-10 s but ran 1.3-6x faster. Beyond depth 4 the
# unrolled program keeps growing (the older emitters compile super-linearly beyond ~10,000
# products). Below order 7 the loop body fuses worse (Lap x Lap at depth 3: 16x plain
# against 3.9x).
LAYER_LOOP_MIN_ORDER = 7
LAYER_LOOP_MIN_DEPTH = 5
# ... and only where layers 2 .. depth unrolled would exceed this many full-size products
# (one layer's, counted on a trace, times depth - 1): the loop materialises every layer's
# jets, so it runs 4-9x slower than unrolled layers. Measured (beam u_xxxx x u_xxxx in 2-D,
# N = 256, 2-core CPU, first call / steady state, loop -> unrolled; erf and sin layers have
# about 900 products, gelu's about 1,800): sin depth 5 6.4 s / 131 ms -> 6.0 s / 14.7 ms,
# erf depth 5 7.9 s / 117 ms -> 8.4 s / 20 ms, depth 6 6.5 s / 106 ms -> 9.1 s / 30 ms,
# depth 7 7.6 s / 166 ms -> 12.7 s / 34 ms; gelu depth 5 11.7 s / 255 ms -> 25.3 s / 42 ms.
# So erf and sin unroll up to depth 6; gelu loops from depth 5, as before.
LAYER_UNROLL_MAX_PRODUCTS = 5000
# A written-out core whose largest straight-line region has at least this many full-size
# coefficient products (jets.counting) is compiled with XLA's older CPU fusion emitters
# (_compat.cpu_compiler_options). The default emitters compile one fusion of that size
# super-linearly and, from depth 4 (gelu from depth 2), run it up to 10x slower. Measured with
# half-integer powers as square roots (N = 256, 2-core CPU, first call / steady state, default
# -> older emitters; docs/benchmarks.md, "Session 8"): u_xxx x u_xxx sin depth 4 (1,343
# products) 3.7 s / 46.5 ms -> 1.1 s / 4.3 ms, erf depth 4 (1,380) 4.5 s / 8.3 ms -> 1.5 s /
# 7.5 ms, gelu depth 2 (1,455) 4.9 s / 65.9 ms -> 1.5 s / 6.8 ms; the 1-d beam, gelu depth 2
# (3,152) 32.4 s / 409 ms -> 3.3 s / 10.9 ms. From 974 to 1,468 products at depths 1-3 both are
# within 0.6 s and 1.4x of each other; gaussian too since session 10 (_gaussian; depth-3
# Lap x u_xxx, 1,222: 3.6 -> 5.3 ms; depth-4 Lap x Lap, 2,008: 4.4 s / 39.7 ms -> 1.7 s /
# 6.0 ms). The threshold is a measured heuristic.
OLDER_EMITTERS_MIN_PRODUCTS = 1300
# Direction pairs are written out (not looped) while pairs x products per pair is at most
# this: a loop body runs 1.3-7x slower per pair than straight-line pairs (not shared work:
# theory/taylor_engine.md, section 3b).
# Measured (N = 256, idle 2-core CPU, steady state / plain kernel, loop -> written out, first
# call in parentheses): Lap x Lap erf depth 2 3.5x -> 2.5x (0.8 -> 1.1 s), gelu depth 3
# (4,676 products) 25x -> 7.4x (2.7 -> 3.8 s); biharmonic x biharmonic erf depth 1 (8,208)
# 18x -> 14x but 1.1 -> 4.0 s, depth 2 102x -> 24x but 2.3 -> 15 s.
PAIR_UNROLL_MAX_PRODUCTS = 5000
# Looped direction pairs of at least STACKED_MIN_PRODUCTS products are stacked and compiled
# with the older emitters; below, they loop with the default emitters (CompiledCore;
# theory/taylor_engine.md, section 3c). Measured (N = 256, 2-core CPU, biharmonic x
# biharmonic, first call / steady state): erf depth 2 (1,556 products per pair) looped,
# default emitters 4.4-6.3 s / 39-45 ms, stacked 2.0-2.3 s / 60-63 ms; sin depth 2 (1,349)
# 2.1 s / 23 ms against 1.9 s / 54 ms; gelu depth 3 (4,950) looped under the older emitters
# 762 ms, stacked 589 ms. gelu depth 4 (6,748) looped until session 11 (1,435 against
# 2,267 ms stacked, before row blocks); stacked without loop-invariant code motion (below) it
# compiles in 12.0-16.7 s against 16.2-21.1 s and runs at 480-642 ms against 887-1,162 ms.
STACKED_MIN_PRODUCTS = 1500
# Stacked pairs of more than this many products compile without XLA's while-loop-invariant
# code motion (_compat.cpu_compiler_options). That pass hoists the work that does not depend
# on the direction pair (the jets' constant terms and their derivatives) out of the loop over
# pairs; on a body of thousands of products it and the simplification it triggers take half
# of the HLO passes' time (theory/taylor_engine.md, section 3e). Measured (biharmonic x
# biharmonic, N = 256, 2-core CPU, fresh processes, medians of 3, first call / steady state,
# with -> without; docs/benchmarks.md, "Session 11"): erf depth 4 (3,352 products) 7.4 s /
# 185 ms -> 4.8 s / 209 ms, sin depth 4 (3,145) 5.6 -> 4.8 s at equal speed, gaussian depth 4
# (3,326) 5.2 -> 4.9 s, gelu depth 2 (3,152) 6.2 s / 186 ms -> 4.5 s / 196 ms, depth 3 (4,950)
# 11.3 -> 10.9 s. Below, erf ran 1.06-1.24x slower without it (depths 2-3, 1,556-2,454
# products) for 0.6-1.6 s less compilation.
LOOP_INVARIANT_MOTION_MAX_PRODUCTS = 3000
# On CPU, looped and stacked pairs run over blocks of rows of at most ROW_BLOCK_MAX_ENTRIES
# entries (CompiledCore): their programs materialise intermediate jets between fusions
# (329-1,778 B per entry), which then stay in the caches (2 MiB L2 per core, 32 MiB L3 here).
# Measured (N = 512, one 512 x 512 tile, 2-core CPU, biharmonic x biharmonic, steady state,
# whole tile -> blocks of 8,192 entries, 4,096 for gelu depth 4): erf depth 1 (loop, 658
# products) 63 -> 44 ms, depth 2 (stacked, 1,556) 310 -> 275 ms, depth 3 (2,454) 1,011 -> 476
# ms, depth 4 (3,352) 1,505 -> 833 ms; sin depth 3 859 -> 405 ms; gaussian depth 4 1,367 ->
# 706 ms; gelu depth 2 (3,152) 1,395 -> 642 ms, depth 3 (4,950) 2,416 -> 1,255 ms, depth 4
# (loop, 6,748) 5,296 -> 3,740 ms. Blocks of 16,384 entries ran within 6% of these up to 2,048
# products (erf depth 2: 258 ms) and 1.8x slower for gelu depth 3; blocks of 32,768 gained
# nothing. Written-out pairs run 1.2-3x slower in blocks (a loop body fuses worse), so they
# take none. On other devices, tiles keep their parallelism (no blocks). gelu's larger pairs
# had smaller blocks (at most 2^25 / products entries) until session 11; stacked without loop-
# invariant code motion they run within 5% at 4,096 and 8,192 entries (depths 3-4, N =
# 256-512), and one block size for all pairs lets the program reuse the pair's first trace
# (lowering 0.4-1 s shorter).
ROW_BLOCK_MAX_ENTRIES = 8192
# Pairs of at least this total order are first traced at a row block's shape (CompiledCore).
# Lowering the erf depth-4 biharmonic x biharmonic (N = 256, blocks of 32 rows) took
# 1.28-1.35 s traced at the tile's shape and then at the block's, 0.82-0.84 s traced at the
# block's only (session 8, no blocks: 0.89-0.90 s); tracing erf depth-2 Lap x Lap (written
# out) first at a block's shape would raise its lowering from 0.14-0.22 s to 0.41-0.45 s.
BLOCK_TRACE_MIN_ORDER = 6
# Feature dot products of at most this many features are written as sums of outer products
# (fused by XLA into the work that consumes them; with the identity map, the row and column
# structure of p's first coefficients: depth-3 sin u_xxxx x u_xxxx in 2-D 25 -> 7-9 ms, depth-1
# erf Lap x Lap 2.7 -> 1.7 ms at N = 256).
OUTER_PRODUCT_MAX_FEATURES = 4


@dataclasses.dataclass(frozen=True)
class MlpStructure:
  """What ``F`` depends on: ``depth`` x [Dense -> activation], then Dense."""
  depth: int
  activation: str
  W_std: float
  b_std: Optional[float]
  parameterization: str
  width: int
  activation_kwargs: Tuple[Tuple[str, float], ...] = ()

  @property
  def kwargs(self):
    return dict(self.activation_kwargs)


def _dense(s: MlpStructure, nngp, cov1, cov2, ntk, fan_in):
  """neural-tangents' Dense: ``S -> W^2 S + b^2``; NTK ``nngp' + W^2 ntk`` (ntk
  parameterisation) or ``fan_in nngp + W^2 ntk + 1`` (standard)."""
  w2 = s.W_std ** 2
  b2 = 0.0 if s.b_std is None else s.b_std ** 2
  new = [w2 * v + b2 for v in (nngp, cov1, cov2)]
  if ntk is not None:
    if s.parameterization == "ntk":
      ntk = new[0] if isinstance(ntk, float) and ntk == 0.0 else new[0] + w2 * ntk
    else:
      ntk = fan_in * nngp + (0.0 if isinstance(ntk, float) else w2 * ntk)
      ntk = ntk + (1.0 if s.b_std is not None else 0.0)
  return new[0], new[1], new[2], ntk


def _erf(nngp, cov1, cov2, ntk, a=1.0, b=1.0, c=0.0):
  """``a erf(b z) + c``: ``(2/pi) arcsin(2 S12 / sqrt((1 + 2 S11)(1 + 2 S22)))`` and
  ``dot = (4/pi) / sqrt((1 + 2 S11)(1 + 2 S22) - 4 S12^2)`` (Williams 1997)."""
  b2 = b * b
  nngp, cov1, cov2 = b2 * nngp, b2 * cov1, b2 * cov2
  # Factors of x alone and of x' alone multiply a full jet as a row, then a column.
  inv1, inv2 = jets.power(1 + 2 * cov1, -0.5), jets.power(1 + 2 * cov2, -0.5)
  asin, (dasin,) = jets.arcsin_and_roots(2 * nngp * inv1 * inv2, (-0.5,))
  diag = [(2 / np.pi) * jets.arcsin_and_roots(2 * v / (1 + 2 * v))[0] for v in (cov1, cov2)]
  a2, c2 = a * a, c * c
  new_ntk = None if ntk is None else ntk * dasin * inv1 * inv2 * (b2 * a2 * 4 / np.pi)
  return (a2 * (2 / np.pi) * asin + c2, a2 * diag[0] + c2, a2 * diag[1] + c2, new_ntk)


def _sin(nngp, cov1, cov2, ntk, a=1.0, b=1.0, c=0.0):
  """``a sin(b z + c)``: ``a^2/2 (e^{b^2(S12 - (S11+S22)/2)} - e^{-b^2(S12 + (S11+S22)/2)} cos 2c)``."""
  b2, half_a2 = b * b, a * a / 2
  damp1, damp2 = jets.exp(-0.5 * b2 * cov1), jets.exp(-0.5 * b2 * cov2)
  grow, decay = jets.exp_and_reciprocal(b2 * nngp)
  decay = decay * np.cos(2 * c)
  # damp1 (x alone) and damp2 (x' alone) multiply the full jets as a row, then a column.
  diff, total = (grow - decay) * damp1 * damp2, (grow + decay) * damp1 * damp2
  diag = [half_a2 * (1 - jets.exp(-2 * b2 * v) * np.cos(2 * c)) for v in (cov1, cov2)]
  new_ntk = None if ntk is None else ntk * total * (half_a2 * b2)
  return half_a2 * diff, diag[0], diag[1], new_ntk


def _gaussian(nngp, cov1, cov2, ntk, a=1.0, b=-1.0):
  """``a exp(b z^2)``: ``1 / sqrt((1 - 2b S11)(1 - 2b S22) - 4 b^2 S12^2)``; ``dot`` has
  ``4 b^2 S12 / det^3``."""
  det2 = (1 - 2 * b * cov1) * (1 - 2 * b * cov2) - ((2 * b) * nngp) ** 2
  inv_det, inv_det3 = jets.powers(det2, (-0.5, -1.5))
  diag = [jets.power(1 - 4 * b * v, -0.5) for v in (cov1, cov2)]
  a2 = a * a
  new_ntk = None if ntk is None else ntk * (a2 * 4 * b * b) * nngp * inv_det3
  return a2 * inv_det, a2 * diag[0], a2 * diag[1], new_ntk


def _gelu(nngp, cov1, cov2, ntk, approximate=False):
  """GELU (Tsuchida & Gallagher 2020, as neural-tangents writes it) in the correlation
  ``rho = S12 r1 r2``, ``r_i = (1 + S_ii)^(-1/2)``: with ``delta^2 = (1 + S11)(1 + S22) - S12^2
  = (1 - rho^2) / (r1 r2)^2``, ``g = (1 - rho^2)^(-1/2)`` and ``s = 1 / g``,

    arctan2(S12, delta) = arcsin(rho),
    (S12^2 + delta^2 S11 S22) / ((1 + S11)(1 + S22) delta) = r1 r2 (g - s + s S11 S22)
                                                            (rho^2 g = g - s),
    S12 (delta^-3 + ((1 - S11 S22) r1^2 r2^2 + 1) / delta)
        = rho ((g^3 + g - g S11 S22) r1^2 r2^2 + g),

  so one set of powers of ``rho`` gives every function of the pair (no powers of
  ``delta^2``), and factors of ``x`` alone or ``x'`` alone multiply full jets as a row,
  then a column."""
  root1, inv1 = jets.powers(cov1 + 1, (-0.5, -1.0))
  root2, inv2 = jets.powers(cov2 + 1, (-0.5, -1.0))
  rho = nngp * root1 * root2
  angle, roots = jets.arcsin_and_roots(rho, (-0.5, 0.5) + ((-1.5,) if ntk is not None else ()))
  g, s = roots[:2]
  new = (g - s + s * cov1 * cov2) * root1 * root2 + nngp * angle
  new = new * (1 / (2 * np.pi)) + 0.25 * nngp

  def diag(v):
    inv_v1 = jets.power(v + 1, -1.0)
    ang = jets.arcsin_and_roots(v * inv_v1)[0]
    out = v * inv_v1 * jets.power(1 + 2 * v, -0.5) + ang * 0.5
    return (out * (1 / np.pi) + 0.25) * v
  new_ntk = None
  if ntk is not None:
    first = rho * ((roots[2] + g - g * cov1 * cov2) * inv1 * inv2 + g) * (1 / (2 * np.pi))
    new_ntk = ntk * (first + 0.25 + angle * (1 / (2 * np.pi)))
  return new, diag(cov1), diag(cov2), new_ntk


def _activation(s: MlpStructure):
  kw = s.kwargs
  if s.activation == "erf":
    return functools.partial(_erf, **kw)
  if s.activation == "sigmoid_like":
    return functools.partial(_erf, a=0.5, b=1 / SIGMOID_LIKE_SCALE, c=0.5)
  if s.activation == "sin":
    return functools.partial(_sin, **kw)
  if s.activation == "cos":
    return functools.partial(_sin, a=kw.get("a", 1.0), b=kw.get("b", 1.0),
                             c=kw.get("c", 0.0) + np.pi / 2)
  if s.activation == "gaussian":
    return functools.partial(_gaussian, **kw)
  if s.activation == "gelu":
    return functools.partial(_gelu, **kw)
  raise ValueError(f"no structured kernel for activation {s.activation!r}; "
                   f"supported: {SUPPORTED}.")


def _canonical(values, shapes):
  """Every coefficient present and broadcast to its variable's shape, so that one
  layer's output has the structure of its input (a loop carry)."""
  out = []
  for v, shape in zip(values, shapes):
    if v is None:
      out.append(None)
      continue
    a_max, b_max = v.order
    keys = [(k, l) for k in range(a_max + 1) for l in range(b_max + 1)
            if (shape[1] != 1 or l == 0) and (shape[0] != 1 or k == 0)]
    out.append({key: jnp.broadcast_to(jnp.asarray(v[key], jnp.float64), shape) for key in keys})
  return out


def kernel(s: MlpStructure, p, q, r, features: int, get: str):
  """``F(p, q, r)``: the NNGP (``get="nngp"``) or NTK of the network from the
  feature dot products (arrays or :class:`ntkpde.jets.Jet`); ``features`` is the
  input dimension the first Dense layer sees (covariances are ``x.x' / features``).

  On jets of total order >= :data:`LAYER_LOOP_MIN_ORDER` at depth >=
  :data:`LAYER_LOOP_MIN_DEPTH`, where the unrolled layers would exceed
  :data:`LAYER_UNROLL_MAX_PRODUCTS` products, layers 2 .. depth run as a ``lax.fori_loop``
  over one compiled layer (their inputs have the same structure), so the program does not
  grow with depth; otherwise the layers are unrolled (4-9x faster to run)."""
  act = _activation(s)
  nngp, cov1, cov2 = p * (1.0 / features), q * (1.0 / features), r * (1.0 / features)
  ntk = 0.0 if get == "ntk" else None
  nngp, cov1, cov2, ntk = act(*_dense(s, nngp, cov1, cov2, ntk, features))
  if (isinstance(nngp, Jet) and s.depth >= LAYER_LOOP_MIN_DEPTH
      and sum(nngp.order) >= LAYER_LOOP_MIN_ORDER):
    order = nngp.order
    n1 = max(jnp.shape(c)[0] if jnp.ndim(c) else 1 for c in q.coeffs.values())
    n2 = max(jnp.shape(c)[1] if jnp.ndim(c) == 2 else 1 for c in r.coeffs.values())
    shapes = [(n1, n2), (n1, 1), (1, n2), (n1, n2)]

    def layer(_, carry):
      values = [None if c is None else Jet(c, order) for c in carry]
      return _canonical(act(*_dense(s, *values, s.width)), shapes)
    carry = _canonical((nngp, cov1, cov2, ntk), shapes)
    with jets.counting() as count:
      jax.eval_shape(functools.partial(layer, 0), carry)
    looped = (s.depth - 1) * count.largest > LAYER_UNROLL_MAX_PRODUCTS
  else:
    looped = False
  if looped:
    with jets.loop_body():
      carry = jax.lax.fori_loop(1, s.depth, layer, carry)
    nngp, cov1, cov2, ntk = [None if c is None else Jet(c, order) for c in carry]
  else:
    for _ in range(1, s.depth):
      nngp, cov1, cov2, ntk = act(*_dense(s, nngp, cov1, cov2, ntk, s.width))
  nngp, cov1, cov2, ntk = _dense(s, nngp, cov1, cov2, ntk, s.width if s.depth else features)
  return ntk if get == "ntk" else nngp


def plain_kernel(s: MlpStructure, input_map=None) -> Callable:
  """``(x1, x2, get) -> F(phi(x1).phi(x2), |phi(x1)|^2, |phi(x2)|^2)`` in plain ``jnp``."""
  def k(x1, x2, get):
    f1 = x1 if input_map is None else input_map(x1)
    f2 = x2 if input_map is None else input_map(x2)
    p = f1 @ f2.T
    q = jnp.sum(f1 * f1, -1)[:, None]
    r = jnp.sum(f2 * f2, -1)[None, :]
    return kernel(s, p, q, r, f1.shape[-1], get)
  return k


# ---- operators along directions --------------------------------------------------------

def _primitive(v):
  g = math.gcd(*v)
  return tuple(int(c) // g for c in v)


def _compositions(k: int, d: int):
  """All ``c`` in N^d with ``|c| = k``."""
  for bars in itertools.combinations(range(k + d - 1), d - 1):
    prev, out = -1, []
    for b in bars + (k + d - 1,):
      out.append(b - prev - 1)
      prev = b
    yield tuple(out)


def _small_directions(d: int):
  """Primitive vectors with entries in {-1, 0, 1}, first nonzero entry positive: the
  axes first, then by number of nonzero entries."""
  out = [u for u in itertools.product((0, 1, -1), repeat=d)
         if any(u) and next(c for c in u if c) > 0]
  return sorted(out, key=lambda u: (sum(map(abs, u)), [-abs(c) for c in u], [-c for c in u]))


def _power_matrix(k: int, cs, dirs) -> sympy.Matrix:
  """``V[c, u] = k!/c! u^c``: column ``u`` holds the coefficients of ``(u . z)^k``."""
  return sympy.Matrix([[sympy.factorial(k) / sympy.prod([sympy.factorial(ci) for ci in c]) *
                        sympy.prod([sympy.Integer(ui) ** ci for ui, ci in zip(u, c)])
                        for u in dirs] for c in cs])


@functools.lru_cache(maxsize=256)
def _direction_weights(alpha: Tuple[int, ...], preferred: Tuple[Tuple[int, ...], ...] = ()
                       ) -> Tuple[Tuple[Tuple[int, ...], Fraction], ...]:
  """``((u, w_u), ...)`` with ``D^alpha = sum_u w_u (u . grad)^|alpha|`` exactly.

  ``(u . grad)^k = sum_{|c| = k} k!/c! u^c D^c``, so ``w`` solves ``V w = e_alpha`` with
  ``V[c, u] = k!/c! u^c`` (exact rationals). Directions are taken greedily, each only if
  it raises the rank of ``V``, until ``e_alpha`` is in its range: first ``preferred``
  (those another term of the operator already uses), then the vectors with entries in
  ``{-1, 0, 1}``, then the primitive vectors of all ``c`` with ``|c| = k``, which make
  ``V`` square and invertible (Griewank, Utke & Walther 2000), so the search ends. A
  pure power ``alpha = k e_i`` needs only ``u = e_i``; ``u_xxyy`` needs the axes and the
  two diagonals (``z0^2 z1^2 = ((z0 + z1)^4 + (z0 - z1)^4 - 2 z0^4 - 2 z1^4) / 12``),
  so the biharmonic operator takes 4 integer directions, not 5 (:func:`directional_form`
  may use 3 real ones)."""
  k, d = sum(alpha), len(alpha)
  if k == 0 or sum(1 for a in alpha if a) == 1:
    axis = next((i for i, a in enumerate(alpha) if a), 0)
    return ((tuple(int(i == axis) for i in range(d)), Fraction(1)),)
  cs = list(_compositions(k, d))
  rhs = sympy.Matrix([int(c == alpha) for c in cs])
  dirs, rank = [], 0
  for u in list(preferred) + _small_directions(d) + [_primitive(c) for c in cs]:
    if u in dirs:
      continue
    v = _power_matrix(k, cs, dirs + [u])
    if v.rank() == rank:
      continue
    dirs, rank = dirs + [u], rank + 1
    try:
      w, free = v.gauss_jordan_solve(rhs)
    except ValueError:  # e_alpha not yet in the range of V
      continue
    w = w.subs({f: 0 for f in free})
    return tuple((u, Fraction(int(sympy.fraction(wi)[0]), int(sympy.fraction(wi)[1])))
                 for u, wi in zip(dirs, w) if wi != 0)
  raise AssertionError("unreachable: the last directions make V invertible")


@dataclasses.dataclass(frozen=True)
class DirectionalForm:
  """``T = sum_u sum_k omega_{u,k}(x) (u . grad)^k``: the directions, and for each
  ``(direction, degree)`` the ``(term index, weight)`` pairs."""
  directions: Tuple[Tuple[float, ...], ...]
  order: int
  weights: Tuple[Tuple[Tuple[int, int, float], ...], ...]  # per direction: (degree, term, w)

  @property
  def degrees(self) -> Tuple[int, ...]:
    """The degrees ``k`` with some weight: only ``[s^k]`` coefficients of these are read."""
    return tuple(sorted({degree for w in self.weights for degree, _, _ in w}))


def _add_term(dirs, weights, index, degree, pairs):
  for u, w in pairs:
    if u not in dirs:
      dirs.append(u)
      weights.append([])
    weights[dirs.index(u)].append((degree, index, float(w)))


def _exact_form(op, dirs, weights, terms):
  """Adds ``terms`` (``(index, term)``, highest degree first) with exact weights
  (:func:`_direction_weights`); later terms reuse the integer directions earlier ones
  chose, and degree-0 terms ride on any direction already needed."""
  for index, term in terms:
    degree = sum(term.multi_index)
    if degree == 0 and dirs:
      weights[0].append((0, index, 1.0))
      continue
    integer = tuple(u for u in dirs if all(float(c).is_integer() for c in u))
    _add_term(dirs, weights, index, degree, _direction_weights(tuple(term.multi_index), integer))


def laplacian_power_design(d: int, k: int):
  """Unit directions ``u_j`` and a weight ``w`` with ``|z|^k = w sum_j (u_j . z)^k``
  (``Lap^(k/2) = w sum_j (u_j . grad)^k``), or ``None``: in the plane ``k/2 + 1``
  directions at angles ``pi j / (k/2 + 1)`` (the mean of ``cos^k`` over them is exact,
  ``binom(k, k/2) / 2^k``); in space, for ``k = 4``, the six axes of the icosahedron, a
  spherical 5-design (mean of ``(u . z)^4`` over the sphere: ``|z|^4 / 5``)."""
  if k < 4 or k % 2:
    return None
  if d == 2:
    n = k // 2 + 1
    dirs = tuple((math.cos(math.pi * j / n), math.sin(math.pi * j / n)) for j in range(n))
    return dirs, 2.0 ** k / (n * math.comb(k, k // 2))
  if d == 3 and k == 4:
    phi = (1 + math.sqrt(5)) / 2
    norm = math.sqrt(1 + phi * phi)
    axes = ((0, 1, phi), (0, 1, -phi), (1, phi, 0), (1, -phi, 0), (phi, 0, 1), (-phi, 0, 1))
    return tuple(tuple(c / norm for c in u) for u in axes), 5 / 6
  return None


def _float_weights(alpha, dirs):
  """``w`` with ``D^alpha = sum_u w_u (u . grad)^|alpha|`` over ``dirs`` (least squares on
  ``V[c, u] = k!/c! u^c``), or ``None`` if ``D^alpha`` is not in their span."""
  k = sum(alpha)
  cs = list(_compositions(k, len(alpha)))
  v = np.array([[math.factorial(k) / math.prod(math.factorial(ci) for ci in c) *
                 math.prod(ui ** ci for ui, ci in zip(u, c)) for u in dirs] for c in cs])
  rhs = np.array([float(c == tuple(alpha)) for c in cs])
  w = np.linalg.lstsq(v, rhs, rcond=None)[0]
  if np.max(np.abs(v @ w - rhs)) > 1e-13:
    return None
  return [(u, wi) for u, wi in zip(dirs, w) if abs(wi) > 1e-15]


def _design_form(op):
  """The operator with its top-degree part ``c(x) Lap^(k/2)`` on
  :func:`laplacian_power_design`'s directions; lower-degree terms on those directions where
  they span the term (float least squares), else on integer ones (:func:`_exact_form`).
  ``None`` if the top-degree part is not a Laplacian power."""
  k, d = op.order, op.dim
  design = laplacian_power_design(d, k)
  if design is None:
    return None
  top = {tuple(t.multi_index): (i, t.coefficient) for i, t in enumerate(op.terms)
         if sum(t.multi_index) == k}
  # Lap^m = sum_{|b| = m} m!/b! D^(2b)
  m = k // 2
  power = {tuple(2 * bi for bi in b): math.factorial(m) // math.prod(math.factorial(bi) for bi in b)
           for b in _compositions(m, d)}
  lead = tuple(k * int(i == 0) for i in range(d))
  if set(top) != set(power) or any(
      sympy.expand(top[a][1] - power[a] * top[lead][1]) != 0 for a in power):
    return None
  dirs, w = design
  dirs, weights = list(dirs), [[(k, top[lead][0], w)] for _ in dirs]
  rest = sorted(((i, t) for i, t in enumerate(op.terms) if sum(t.multi_index) < k),
                key=lambda it: -sum(it[1].multi_index))
  for index, term in rest:
    degree = sum(term.multi_index)
    pairs = [(dirs[0], 1.0)] if degree == 0 else _float_weights(term.multi_index, dirs)
    if pairs is None:
      _exact_form(op, dirs, weights, [(index, term)])
    else:
      _add_term(dirs, weights, index, degree, pairs)
  return dirs, weights


def directional_form(op) -> DirectionalForm:
  """``op`` along directions (theory/taylor_engine.md, section 2): integer directions with
  exact rational weights taken greedily, or, where the top-degree part is a Laplacian power
  and that needs fewer directions, a spherical design (float weights, exact to rounding;
  the 2-D biharmonic: 3 directions instead of 4, the 3-D one 6 instead of 9)."""
  dirs, weights = [], []
  _exact_form(op, dirs, weights, sorted(enumerate(op.terms), key=lambda it: -sum(it[1].multi_index)))
  design = _design_form(op)
  if design is not None and len(design[0]) < len(dirs):
    dirs, weights = design
  if not dirs:
    dirs, weights = [tuple(int(i == 0) for i in range(op.dim))], [[]]
  return DirectionalForm(tuple(dirs), op.order, tuple(tuple(w) for w in weights))


def omegas(form: DirectionalForm, op, x) -> jnp.ndarray:
  """``k! omega_{u,k}(x)`` as an array ``(directions, order + 1, n)``."""
  coefficients = op.coefficients(x)
  rows = []
  for w in form.weights:
    per_degree = [jnp.zeros(x.shape[0], x.dtype) for _ in range(form.order + 1)]
    for degree, index, weight in w:
      per_degree[degree] = per_degree[degree] + (weight * math.factorial(degree)) * coefficients[index]
    rows.append(jnp.stack(per_degree))
  return jnp.stack(rows)


def _feature_jet(input_map, x, u, order):
  """Normalised Taylor coefficients ``phi_k`` of ``s -> phi(x + s u)``, ``k <= order``
  (``None`` where identically zero)."""
  if input_map is None:
    return [x, jnp.broadcast_to(u, x.shape)] + [None] * (order - 1) if order else [x]
  if order == 0:
    return [input_map(x)]
  tangent = jnp.broadcast_to(u, x.shape)
  primal, series = _compat.jet(input_map, (x,), ([tangent] + [jnp.zeros_like(x)] * (order - 1),))
  return [primal] + [c / math.factorial(k) for k, c in enumerate(series, 1)]


def _self_dots(f):
  """Coefficients of ``|phi(x + s u)|^2`` as ``(n, 1)`` columns."""
  out = []
  for k in range(len(f)):
    total = None
    for i in range(k + 1):
      a, b = f[i], f[k - i]
      if a is not None and b is not None:
        piece = jnp.sum(a * b, -1)
        total = piece if total is None else total + piece
    out.append(None if total is None else total[:, None])
  return out


def _cross_dots(f1, f2):
  """``f1 @ f2.T``; for a few features as a sum of outer products, which XLA fuses into the
  elementwise work that consumes it instead of materialising a matrix product."""
  if f1.shape[-1] <= OUTER_PRODUCT_MAX_FEATURES:
    return sum(f1[:, i, None] * f2[None, :, i] for i in range(f1.shape[-1]))
  return f1 @ f2.T


def _pair_jet(s, input_map, get, x1, x2, u, v, order):
  a, b = order
  f1, f2 = _feature_jet(input_map, x1, u, a), _feature_jet(input_map, x2, v, b)
  if input_map is None:
    # p = (x + s u).(x' + t v): [s t^0] = u.x' depends on x' alone (a row), [s^0 t] on x alone
    # (a column) and [s t] is the number u.v.
    p = Jet({(0, 0): _cross_dots(x1, x2), (1, 0): (x2 @ u)[None, :], (0, 1): (x1 @ v)[:, None],
             (1, 1): jnp.dot(u, v)}, order)
  else:
    p = Jet({(k, l): _cross_dots(fa, fb) for k, fa in enumerate(f1) for l, fb in enumerate(f2)
             if fa is not None and fb is not None}, order)
  q = jets.row(_self_dots(f1), order)
  r = jets.col([None if c is None else c.T for c in _self_dots(f2)], order)
  return kernel(s, p, q, r, f1[0].shape[-1], get)


def row_block(n1: int, n2: int) -> int:
  """Rows per block of an ``(n1, n2)`` looped or stacked core: on CPU the largest divisor
  of ``n1`` whose blocks hold at most :data:`ROW_BLOCK_MAX_ENTRIES` entries (at least one
  row); elsewhere ``n1`` (one block)."""
  if jax.default_backend() != "cpu":
    return n1
  return max((r for r in range(1, n1 + 1)
              if n1 % r == 0 and r * n2 <= ROW_BLOCK_MAX_ENTRIES), default=1)


def _in_row_blocks(core: Callable) -> Callable:
  """``core(x1, x2, omega1, omega2)`` computed over blocks of ``rows`` rows of ``x1``
  (``lax.map``; ``rows`` must divide ``len(x1)``)."""
  def blocked(x1, x2, om1, om2, rows):
    n1 = x1.shape[0]
    if rows == n1:
      return core(x1, x2, om1, om2)
    blocks = n1 // rows
    xb = x1.reshape(blocks, rows, x1.shape[1])
    ob = jnp.moveaxis(om1.reshape(om1.shape[:2] + (blocks, rows)), 2, 0)
    return jax.lax.map(lambda b: core(b[0], x2, b[1], om2), (xb, ob)).reshape(n1, x2.shape[0])
  return blocked


class CompiledCore:
  """A jitted core compiled once per input shapes and device, in one of three layouts of the
  direction pairs, chosen per input shapes from the full-size products of one pair
  (:func:`jets.counting`, counted on one trace of the pair that every layout reuses):

  - ``"written out"``: every pair in straight-line code, while ``pairs`` x products is at
    most :data:`PAIR_UNROLL_MAX_PRODUCTS` (a loop body runs 1.3-7x slower per pair);
  - ``"stacked"``: a pair of at least :data:`STACKED_MIN_PRODUCTS` products, every pair's
    result stacked (``lax.map``; ``pairs`` x 8 bytes per entry) and then summed, compiled
    with XLA's older CPU fusion emitters. Their kernel checks at run time whether its output
    overlaps its inputs; a loop that accumulates into its carry in place fails that check
    and runs the scalar fallback (1.1-1.7x slower; accumulating per direction ``u`` was as
    slow);
  - ``"loop"``: otherwise a ``fori_loop`` that accumulates the pairs, with the default
    emitters (which compile such a body well and run it 2.8x faster than the older ones).

  A written-out program takes the older emitters from :data:`OLDER_EMITTERS_MIN_PRODUCTS`
  products; stacked pairs of more than :data:`LOOP_INVARIANT_MOTION_MAX_PRODUCTS` compile
  without XLA's loop-invariant code motion. On CPU, looped and stacked pairs run over blocks
  of rows (:func:`row_block`), whose intermediate jets stay in the caches. ``.layout``,
  ``.largest`` (the products of the program's largest straight-line region, or of one pair
  where they loop or are stacked), ``.older`` (whether the older emitters were taken),
  ``.hoisted`` (whether XLA hoists loop invariants) and ``.rows`` (rows per block) describe
  the last program lowered. :meth:`prepare` lowers a program and leaves its compilation to
  another thread.
  Called on tracers (inside ``jax.jit``, ``make_jaxpr``, ...) it is the jitted loop,
  compiled by the enclosing transformation."""

  def __init__(self, layouts: dict, pair_args: Callable, one_pair: Callable, pairs: int,
               order: int = 0):
    self._layouts = {name: jax.jit(_in_row_blocks(f), static_argnames="rows")
                     for name, f in layouts.items()}
    self.jitted = jax.jit(layouts["loop"])
    self._pair_args, self._one_pair = pair_args, one_pair
    self.pairs, self.order = pairs, order
    self.layout, self.largest, self.older, self.hoisted, self.rows = None, None, None, None, None
    self._compiled = {}
    self._pending = set()  # signatures being compiled by prepare's functions
    self._lock = threading.Lock()
    self._decisions = {}  # (shapes, dtype) -> (layout, largest, older, hoisted, rows)

  def _decide(self, args):
    # One pair is traced (and its products counted) once per shapes, and the layout's
    # program reuses that trace if it calls the pair at the same shapes. Pairs of total
    # order >= BLOCK_TRACE_MIN_ORDER are traced at the shape of a row block: they usually
    # run in blocks, and if they are written out after all, their pair is small (at most
    # PAIR_UNROLL_MAX_PRODUCTS / pairs products) and traced again at the full shape.
    x1, x2, om1, om2 = args
    n1, n2 = x1.shape[0], x2.shape[0]
    blocks = self.pairs > 1 and self.order >= BLOCK_TRACE_MIN_ORDER
    rows = row_block(n1, n2) if blocks else n1
    block = (jax.ShapeDtypeStruct((rows,) + x1.shape[1:], x1.dtype), x2,
             jax.ShapeDtypeStruct(om1.shape[:-1] + (rows,), om1.dtype), om2)
    pair_args = jax.eval_shape(self._pair_args, *block)
    with jets.counting() as count:
      jax.eval_shape(self._one_pair, *pair_args)
    if not count.largest:  # JAX reused an earlier trace of these shapes: count on a new one
      with jets.counting() as count:
        jax.eval_shape(lambda *a: self._one_pair.__wrapped__(*a), *pair_args)
    per_pair = count.largest
    if self.pairs * per_pair <= PAIR_UNROLL_MAX_PRODUCTS or self.pairs == 1:
      largest = self.pairs * per_pair
      return "written out", largest, largest >= OLDER_EMITTERS_MIN_PRODUCTS, True, n1
    rows = row_block(n1, n2)
    if per_pair >= STACKED_MIN_PRODUCTS:
      return "stacked", per_pair, True, per_pair <= LOOP_INVARIANT_MOTION_MAX_PRODUCTS, rows
    return "loop", per_pair, False, True, rows

  def lower(self, *args):
    """The program this core compiles for ``args`` (arrays, or ``jax.ShapeDtypeStruct``s with
    a device sharding), lowered; sets ``.layout``, ``.largest``, ``.older``, ``.hoisted`` and
    ``.rows``.
    The decision is kept per shapes and dtype (another device lowers the same program)."""
    signature = (tuple(a.shape for a in args), args[0].dtype)
    if signature not in self._decisions:
      self._decisions[signature] = self._decide(args)
    self.layout, self.largest, self.older, self.hoisted, self.rows = self._decisions[signature]
    return self._layouts[self.layout].lower(*args, rows=self.rows)

  def _options(self) -> Optional[dict]:
    """The compiler options of the last program lowered."""
    return _compat.cpu_compiler_options(older_emitters=self.older,
                                        hoist_loop_invariants=self.hoisted)

  def prepare(self, *args) -> Optional[Callable[[], None]]:
    """Lowers the program for ``args`` (as :meth:`lower`) and returns a function that
    compiles it and keeps it for calls on those shapes and device, to be run on another
    thread (``operator_kernels.compile_concurrently``); ``None`` if it is compiled or being
    compiled."""
    key = _signature(args)
    with self._lock:
      if key in self._compiled or key in self._pending:
        return None
      self._pending.add(key)
    try:
      lowered = self.lower(*args)
    except BaseException:
      self._pending.discard(key)
      raise
    options = self._options()

    def compile_program():
      try:
        self._compiled[key] = lowered.compile(options)
      finally:
        self._pending.discard(key)
    return compile_program

  def __call__(self, *args):
    if any(_compat.is_tracer(a) for a in args):
      return self.jitted(*args)  # inside an enclosing transformation, which compiles
    key = _signature(args)
    compiled = self._compiled.get(key)
    if compiled is None:
      compiled = self.lower(*args).compile(self._options())
      self._compiled[key] = compiled
    return compiled(*args)


def _signature(args) -> tuple:
  """Shapes, dtype and devices: what a compiled core is kept for."""
  return (tuple(a.shape for a in args), args[0].dtype, frozenset(args[0].sharding.device_set))


@functools.lru_cache(maxsize=256)
def compiled_core(s: MlpStructure, input_map, dirs1, dirs2, degrees, get) -> CompiledCore:
  """``(x1, x2, omega1, omega2) -> sum over direction pairs``, jitted once per
  ``(structure, input map, directions, degrees, get)``: operators with the same
  directions and degrees share it whatever their coefficients. Only the coefficients
  ``[s^k t^l]`` with ``k`` in ``degrees[0]`` and ``l`` in ``degrees[1]`` are read, so XLA
  drops the work of the last layer that no other coefficient needs."""
  u_all = np.asarray(dirs1, dtype=np.float64)
  v_all = np.asarray(dirs2, dtype=np.float64)
  n_u, n_v = len(dirs1), len(dirs2)
  order = (max(degrees[0], default=0), max(degrees[1], default=0))

  @jax.jit  # traced once per shapes; every layout below calls this trace
  def one(x1, x2, w1, w2, u, v):
    j = _pair_jet(s, input_map, get, x1, x2, u, v, order)
    total = 0.0
    for k in degrees[0]:
      for l in degrees[1]:
        total = total + w1[k][:, None] * w2[l][None, :] * j[(k, l)]
    return jnp.broadcast_to(total, (x1.shape[0], x2.shape[0]))

  def pair(x1, x2, om1, om2, iu, iv):
    return one(x1, x2, om1[iu], om2[iv], jnp.asarray(u_all)[iu], jnp.asarray(v_all)[iv])

  def written_out(x1, x2, om1, om2):
    return sum(pair(x1, x2, om1, om2, iu, iv) for iu in range(n_u) for iv in range(n_v))

  def loop(x1, x2, om1, om2):
    def body(i, acc):
      return acc + pair(x1, x2, om1, om2, i // n_v, i % n_v)
    return jax.lax.fori_loop(0, n_u * n_v, body, jnp.zeros((x1.shape[0], x2.shape[0]), x1.dtype))

  def stacked(x1, x2, om1, om2):
    return jax.lax.map(lambda i: pair(x1, x2, om1, om2, i // n_v, i % n_v),
                       jnp.arange(n_u * n_v)).sum(0)

  def pair_args(x1, x2, om1, om2):
    return x1, x2, om1[0], om2[0], u_all[0], v_all[0]
  layouts = {"written out": written_out, "loop": loop if n_u * n_v > 1 else written_out,
             "stacked": stacked}
  return CompiledCore(layouts, pair_args, one, n_u * n_v, sum(order))


def core_for(s: MlpStructure, input_map, f1: DirectionalForm, f2: DirectionalForm,
             get: str) -> CompiledCore:
  """The :func:`compiled_core` for operators with the directional forms ``f1``, ``f2``."""
  return compiled_core(s, input_map, f1.directions, f2.directions, (f1.degrees, f2.degrees), get)


def operator_kernel_fn(s: MlpStructure, input_map, T, S, get: str) -> Callable:
  """``(x1, x2) -> T_x S_x' K(x1, x2)`` for the mlp kernel ``s`` (module docstring)."""
  f1, f2 = directional_form(T), directional_form(S)
  core = core_for(s, input_map, f1, f2, get)
  # The weights are a few dozen small operations: one compiled call instead of eager ones.
  omegas1 = jax.jit(functools.partial(omegas, f1, T))
  omegas2 = omegas1 if S is T else jax.jit(functools.partial(omegas, f2, S))

  def fn(x1, x2):
    x1, x2 = jnp.asarray(x1), jnp.asarray(x2)
    return core(x1, x2, omegas1(x1), omegas2(x2))

  def prepare(x1, x2):
    """:meth:`CompiledCore.prepare` for blocks like ``x1`` and ``x2``
    (``jax.ShapeDtypeStruct``s with a device sharding)."""
    weights = [jax.ShapeDtypeStruct(w.shape, w.dtype, sharding=x.sharding)
               for w, x in ((jax.eval_shape(omegas1, x1), x1), (jax.eval_shape(omegas2, x2), x2))]
    return core.prepare(x1, x2, *weights)
  fn.prepare = prepare
  return fn
