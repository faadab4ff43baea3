"""Benchmark problems with exact (or reference) solutions, as residual channels.

A :class:`Problem` is a box domain, an exact solution written as SymPy text, and
channels: an operator (text for :func:`ntkpde.operators.parse`) and where its points
lie (the interior, or faces of the box such as ``{"x": 0.0}``). The target of every
channel is the channel operator applied to the exact solution *symbolically*
(``T u*``), so the exact solution satisfies every channel by construction.

Define your own problem in a few lines and register it::

    from ntkpde import problems
    problems.register(problems.Problem(
        name="poisson1d_cubic", coords=("x",), domain=((0.0, 1.0),),
        exact="x**3 - x",
        channels=(problems.ChannelSpec("interior", "u_xx", "interior", 64),
                  problems.ChannelSpec("boundary", "u", ({"x": 0.0}, {"x": 1.0}), 2))))
    sample = problems.get("poisson1d_cubic").sample(sampler="sobol", seed=1)
    ntkpde.predict.gradient_descent_mse_ensemble(kernel_fn, sample.channels, sample.targets)

Samplers: ``"uniform"`` (seeded), ``"grid"`` (tensor grid of cell centres; the size is
rounded to a full grid), ``"sobol"`` and ``"lhs"`` (``scipy.stats.qmc``, scrambled, seeded).
"""
import dataclasses
import warnings
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import sympy
from scipy.stats import qmc

from ntkpde import input_maps, operators, references
from ntkpde.expressions import parse_expression
from ntkpde.operator_kernels import Channel

SAMPLERS = ("uniform", "grid", "sobol", "lhs")
Faces = Tuple[Mapping[str, float], ...]


@dataclasses.dataclass(frozen=True)
class ChannelSpec:
  """A residual channel of a problem: ``operator`` (parse text) on ``on`` with ``size``
  points by default. ``on`` is ``"interior"`` or a tuple of faces, each a mapping from
  fixed coordinates to their values (e.g. ``({"x": 0.0}, {"x": 1.0})``); the free
  coordinates of a face range over the domain. A face with no free coordinate is one point."""
  name: str
  operator: str
  on: Union[str, Faces]
  size: int


@dataclasses.dataclass(frozen=True)
class Sample:
  """Channels ``[Channel(name, operator, points)]`` and their exact targets, in order."""
  channels: Tuple[Channel, ...]
  targets: Tuple[np.ndarray, ...]

  @property
  def sizes(self) -> Dict[str, int]:
    return {c.name: len(c.points) for c in self.channels}


@dataclasses.dataclass(frozen=True)
class Problem:
  """A linear problem ``T_c u = T_c u*`` on every channel ``c``; ``u*`` is ``exact``."""
  name: str
  coords: Tuple[str, ...]
  domain: Tuple[Tuple[float, float], ...]
  exact: str
  channels: Tuple[ChannelSpec, ...]
  params: Mapping[str, float] = dataclasses.field(default_factory=dict)
  description: str = ""

  def __post_init__(self):
    if len(self.domain) != len(self.coords):
      raise ValueError(f"problem {self.name!r}: domain has {len(self.domain)} intervals for "
                       f"coordinates {list(self.coords)}.")
    for lo, hi in self.domain:
      if not hi > lo:
        raise ValueError(f"problem {self.name!r}: empty interval [{lo}, {hi}].")
    names = [c.name for c in self.channels]
    if not names or len(set(names)) != len(names):
      raise ValueError(f"problem {self.name!r}: channel names must be distinct and non-empty.")
    for spec in self.channels:
      self.operator(spec.name)                   # parses (raises on bad text)
      for face in self._faces(spec):
        unknown = set(face) - set(self.coords)
        if unknown:
          raise ValueError(f"problem {self.name!r}, channel {spec.name!r}: face fixes unknown "
                           f"coordinate(s) {sorted(unknown)}.")
    self._exact_expr()                           # parses (raises on bad text)

  def with_params(self, **params) -> "Problem":
    """The same problem with some parameters changed (targets follow symbolically)."""
    unknown = set(params) - set(self.params)
    if unknown:
      raise ValueError(f"problem {self.name!r} has parameters {sorted(self.params)}, not "
                       f"{sorted(unknown)}.")
    return dataclasses.replace(self, params={**self.params, **params})

  @property
  def symbols(self):
    return tuple(sympy.Symbol(c, real=True) for c in self.coords)

  def _exact_expr(self) -> sympy.Expr:
    local = dict(zip(self.coords, self.symbols))
    local.update({p: sympy.Float(v) if not float(v).is_integer() else sympy.Integer(int(v))
                  for p, v in self.params.items()})
    expr = parse_expression(self.exact, local, what=f"exact solution of problem {self.name!r}")
    extra = {str(s) for s in expr.free_symbols} - set(self.coords)
    if extra:
      raise ValueError(f"problem {self.name!r}: exact solution uses unknown symbols {sorted(extra)}.")
    return expr

  def operator(self, channel: str) -> operators.LinearOperator:
    return operators.parse(self._spec(channel).operator, self.coords, dict(self.params) or None)

  def _spec(self, channel: str) -> ChannelSpec:
    for spec in self.channels:
      if spec.name == channel:
        return spec
    raise KeyError(f"problem {self.name!r} has no channel {channel!r}; channels are "
                   f"{[c.name for c in self.channels]}.")

  def target_expr(self, channel: str) -> sympy.Expr:
    """``T_c u*`` as a SymPy expression of the coordinates."""
    u = self._exact_expr()
    total = sympy.Integer(0)
    for term in self.operator(channel).terms:
      derivative = u
      for sym, k in zip(self.symbols, term.multi_index):
        if k:
          derivative = sympy.diff(derivative, sym, k)
      total += term.coefficient * derivative
    return total

  def _lambdify(self, expr: sympy.Expr) -> Callable[[np.ndarray], np.ndarray]:
    fn = sympy.lambdify(self.symbols, expr, modules="numpy")

    def evaluate(x):
      x = np.asarray(x, dtype=np.float64).reshape(-1, len(self.coords))
      return np.broadcast_to(fn(*x.T), (len(x),)).astype(np.float64)
    return evaluate

  def exact_fn(self) -> Callable[[np.ndarray], np.ndarray]:
    """``x (n, d) -> u*(x) (n,)``."""
    return self._lambdify(self._exact_expr())

  def target_fn(self, channel: str) -> Callable[[np.ndarray], np.ndarray]:
    """``x (n, d) -> (T_c u*)(x) (n,)``."""
    return self._lambdify(self.target_expr(channel))

  def input_map(self) -> input_maps.InputMap:
    """Affine map of the domain onto ``[-1, 1]^d`` (for ``ntkpde.mlp(input_map=...)``)."""
    lo, hi = zip(*self.domain)
    return input_maps.box_normalization(lo, hi)

  def _faces(self, spec: ChannelSpec) -> Faces:
    return () if spec.on == "interior" else tuple(spec.on)

  def points(self, channel: str, size: Optional[int] = None, sampler: str = "uniform",
             seed: int = 0) -> np.ndarray:
    """``(n, d)`` points of one channel (see the module docstring for the samplers)."""
    spec = self._spec(channel)
    size = spec.size if size is None else int(size)
    if size < 1:
      raise ValueError(f"channel {channel!r}: size must be >= 1, got {size}.")
    if sampler not in SAMPLERS:
      raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
    faces = self._faces(spec) or ({},)
    counts = [size // len(faces) + (i < size % len(faces)) for i in range(len(faces))]
    blocks = []
    for k, (face, count) in enumerate(zip(faces, counts)):
      free = [i for i, c in enumerate(self.coords) if c not in face]
      if not free:
        unit = np.zeros((1, 0))
      elif count == 0:
        continue
      else:
        unit = _unit_points(len(free), count, sampler, seed + 7919 * k)
      pts = np.empty((len(unit), len(self.coords)))
      for i, c in enumerate(self.coords):
        if c in face:
          pts[:, i] = face[c]
        else:
          lo, hi = self.domain[i]
          pts[:, i] = lo + (hi - lo) * unit[:, free.index(i)]
      blocks.append(pts)
    return np.concatenate(blocks)

  def sample(self, sizes: Optional[Mapping[str, int]] = None, sampler: str = "uniform",
             seed: int = 0) -> Sample:
    """Points of every channel (``sizes`` overrides the defaults) and their exact targets."""
    sizes = dict(sizes or {})
    unknown = set(sizes) - {c.name for c in self.channels}
    if unknown:
      raise ValueError(f"sizes name unknown channel(s) {sorted(unknown)}; channels are "
                       f"{[c.name for c in self.channels]}.")
    chans, targets = [], []
    for k, spec in enumerate(self.channels):
      pts = self.points(spec.name, sizes.get(spec.name), sampler, seed + 104729 * k)
      chans.append(Channel(spec.name, self.operator(spec.name), pts))
      targets.append(self.target_fn(spec.name)(pts))
    return Sample(tuple(chans), tuple(targets))


@dataclasses.dataclass(frozen=True)
class NonlinearProblem(Problem):
  """A nonlinear problem ``N_c[u] = f_c`` on every channel ``c`` (operators read by
  :func:`ntkpde.operators.parse_nonlinear`; solved by :func:`ntkpde.nonlinear.solve`).

  With an ``exact`` solution (text) the targets are ``N_c[u*]``, derived symbolically.
  Without one (``exact=""``), ``targets`` gives each channel's right-hand side as text in
  the coordinates and parameters (missing channels: 0) and ``reference(x, params)`` the
  reference solution (a quadrature or a fine finite-difference solve, e.g.
  :func:`ntkpde.references.burgers_cole_hopf`)."""
  targets: Mapping[str, str] = dataclasses.field(default_factory=dict)
  reference: Optional[Callable] = None

  def __post_init__(self):
    if not self.exact and self.reference is None:
      raise ValueError(f"problem {self.name!r}: give an exact solution or a reference.")
    unknown = set(self.targets) - {c.name for c in self.channels}
    if unknown:
      raise ValueError(f"problem {self.name!r}: targets for unknown channels {sorted(unknown)}.")
    super().__post_init__()
    for channel in self.targets:
      self.target_expr(channel)                  # parses (raises on bad text)

  def _exact_expr(self) -> Optional[sympy.Expr]:
    return super()._exact_expr() if self.exact else None

  def operator(self, channel: str) -> operators.NonlinearOperator:
    return operators.parse_nonlinear(self._spec(channel).operator, self.coords,
                                     dict(self.params) or None)

  def _local(self):
    local = dict(zip(self.coords, self.symbols))
    local.update({p: sympy.Float(v) for p, v in self.params.items()})
    return local

  def target_expr(self, channel: str) -> sympy.Expr:
    """``f_c``: ``N_c[u*]`` by substitution into ``F_c``, or the channel's target text."""
    if channel in self.targets or not self.exact:
      self._spec(channel)
      text = self.targets.get(channel, "0")
      return parse_expression(text, self._local(), what=f"target of channel {channel!r} of "
                                                         f"problem {self.name!r}")
    u = self._exact_expr()
    op = self.operator(channel)
    values = {}
    for alpha, symbol in op.placeholders:
      derivative = u
      for sym, k in zip(self.symbols, alpha):
        if k:
          derivative = sympy.diff(derivative, sym, k)
      values[symbol] = derivative
    return op.expression.subs(values)

  def exact_fn(self) -> Callable[[np.ndarray], np.ndarray]:
    """``x (n, d) -> u*(x) (n,)``: the exact solution, or the reference."""
    if self.exact:
      return super().exact_fn()
    params = dict(self.params)
    return lambda x: np.asarray(self.reference(
        np.asarray(x, dtype=np.float64).reshape(-1, len(self.coords)), params))


def _unit_points(dim: int, n: int, sampler: str, seed: int) -> np.ndarray:
  """``n`` points in ``[0, 1]^dim`` (``grid``: ``round(n^(1/dim))^dim`` cell centres)."""
  if sampler == "uniform":
    return np.random.default_rng(seed).uniform(size=(n, dim))
  if sampler == "grid":
    m = max(1, int(round(n ** (1.0 / dim))))
    axis = (np.arange(m) + 0.5) / m
    return np.stack(np.meshgrid(*([axis] * dim), indexing="ij"), -1).reshape(-1, dim)
  engine = (qmc.Sobol(dim, scramble=True, rng=seed) if sampler == "sobol"
            else qmc.LatinHypercube(dim, rng=seed))
  with warnings.catch_warnings():  # Sobol warns when n is not a power of 2; the points are fine
    warnings.simplefilter("ignore", UserWarning)
    return engine.random(n)


PROBLEMS: Dict[str, Problem] = {}


def register(problem: Problem, replace: bool = False) -> Problem:
  """Adds ``problem`` to the registry (``replace=True`` to overwrite a name)."""
  if problem.name in PROBLEMS and not replace:
    raise ValueError(f"a problem named {problem.name!r} exists; pass replace=True.")
  PROBLEMS[problem.name] = problem
  return problem


def get(name: str) -> Problem:
  if name not in PROBLEMS:
    raise KeyError(f"unknown problem {name!r}; known: {sorted(PROBLEMS)}.")
  return PROBLEMS[name]


def names() -> Tuple[str, ...]:
  return tuple(sorted(PROBLEMS))


def _dirichlet_1d(lo=0.0, hi=1.0, coord="x"):
  return ChannelSpec("boundary", "u", ({coord: lo}, {coord: hi}), 2)


def _dirichlet_box(size, coords=("x", "y"), lo=0.0, hi=1.0):
  faces = tuple({c: v} for c in coords for v in (lo, hi))
  return ChannelSpec("boundary", "u", faces, size)


X_FACES = ({"x": 0.0}, {"x": 1.0})

for _problem in (
    Problem("poisson1d", ("x",), ((0.0, 1.0),), "sin(4*pi*x)",
            (ChannelSpec("interior", "u_xx", "interior", 64), _dirichlet_1d()),
            description="u_xx = -16 pi^2 sin(4 pi x) on [0, 1], u(0) = u(1) = 0"),
    Problem("poisson2d", ("x", "y"), ((0.0, 1.0), (0.0, 1.0)), "sin(pi*x)*sin(2*pi*y)",
            (ChannelSpec("interior", "u_xx + u_yy", "interior", 256), _dirichlet_box(64)),
            description="u_xx + u_yy = -5 pi^2 sin(pi x) sin(2 pi y) on [0, 1]^2, u = 0 on the boundary"),
    Problem("helmholtz2d", ("x", "y"), ((-1.0, 1.0), (-1.0, 1.0)), "sin(pi*x)*sin(4*pi*y)",
            (ChannelSpec("interior", "u_xx + u_yy + k**2*u", "interior", 256),
             _dirichlet_box(64, lo=-1.0, hi=1.0)),
            params={"k": 1.0},
            description="Helmholtz u_xx + u_yy + k^2 u = f on [-1, 1]^2 (a1 = 1, a2 = 4 of "
                        "Wang, Teng & Perdikaris 2021), u = 0 on the boundary"),
    Problem("heat1d", ("x", "t"), ((0.0, 1.0), (0.0, 1.0)), "exp(-kappa*pi**2*t)*sin(pi*x)",
            (ChannelSpec("interior", "u_t - kappa*u_xx", "interior", 256),
             ChannelSpec("boundary", "u", X_FACES, 32),
             ChannelSpec("initial", "u", ({"t": 0.0},), 32)),
            params={"kappa": 0.1},
            description="u_t = kappa u_xx, u(x, 0) = sin(pi x), u(0, t) = u(1, t) = 0"),
    Problem("wave1d", ("x", "t"), ((0.0, 1.0), (0.0, 1.0)),
            "sin(pi*x)*cos(2*pi*t) + sin(4*pi*x)*cos(8*pi*t)/2",
            (ChannelSpec("interior", "u_tt - 4*u_xx", "interior", 256),
             ChannelSpec("boundary", "u", X_FACES, 32),
             ChannelSpec("initial", "u", ({"t": 0.0},), 32),
             ChannelSpec("initial_velocity", "u_t", ({"t": 0.0},), 32)),
            description="u_tt = 4 u_xx, u(x, 0) = sin(pi x) + sin(4 pi x)/2, u_t(x, 0) = 0, "
                        "u(0, t) = u(1, t) = 0 (NTKW paper's wave problem)"),
    Problem("advection1d", ("x", "t"), ((0.0, 1.0), (0.0, 1.0)), "sin(2*pi*(x - beta*t))",
            (ChannelSpec("interior", "u_t + beta*u_x", "interior", 256),
             ChannelSpec("inflow", "u", ({"x": 0.0},), 32),
             ChannelSpec("initial", "u", ({"t": 0.0},), 32)),
            params={"beta": 1.0}, description="u_t + beta u_x = 0, u(x, 0) = sin(2 pi x), inflow at x = 0"),
    Problem("reaction_diffusion1d", ("x",), ((0.0, 1.0),), "sin(2*pi*x)",
            (ChannelSpec("interior", "-u_xx + a*u", "interior", 64), _dirichlet_1d()),
            params={"a": 1.0},
            description="-u_xx + a u = (4 pi^2 + a) sin(2 pi x) on [0, 1], u(0) = u(1) = 0"),
    Problem("laplace2d", ("x", "y"), ((0.0, 1.0), (0.0, 1.0)), "sinh(pi*x)*sin(pi*y)/sinh(pi)",
            (ChannelSpec("interior", "u_xx + u_yy", "interior", 256), _dirichlet_box(64)),
            description="u_xx + u_yy = 0 on [0, 1]^2, u = sin(pi y) on x = 1, 0 on the other edges"),
):
  register(_problem)
del _problem

_BURGERS = dict(coords=("x", "t"), domain=((-1.0, 1.0), (0.0, 1.0)), exact="",
                channels=(ChannelSpec("interior", "u_t + u*u_x - nu*u_xx", "interior", 1024),
                          ChannelSpec("boundary", "u", ({"x": -1.0}, {"x": 1.0}), 64),
                          ChannelSpec("initial", "u", ({"t": 0.0},), 64)),
                targets={"initial": "-sin(pi*x)"}, reference=references.burgers_cole_hopf)

for _problem in (
    NonlinearProblem("nonlinear_elliptic2d", ("x", "y"), ((0.0, 1.0), (0.0, 1.0)),
                     "sin(pi*x)*sin(pi*y) + 4*sin(4*pi*x)*sin(4*pi*y)",
                     (ChannelSpec("interior", "-u_xx - u_yy + u**3", "interior", 400),
                      _dirichlet_box(80)),
                     description="-Lap u + u^3 = f on [0, 1]^2, u = 0 on the boundary, "
                                 "u* = sin(pi x) sin(pi y) + 4 sin(4 pi x) sin(4 pi y) "
                                 "(Chen, Hosseini, Owhadi & Stuart 2021, Sec. 3.1)"),
    NonlinearProblem("allen_cahn1d", ("x",), ((-1.0, 1.0),), "tanh(x/(sqrt(2)*eps))",
                     (ChannelSpec("interior", "eps**2*u_xx + u - u**3", "interior", 64),
                      _dirichlet_1d(-1.0, 1.0)),
                     params={"eps": 0.4},
                     description="steady Allen-Cahn eps^2 u_xx + u - u^3 = 0 on [-1, 1], "
                                 "u* = tanh(x / (sqrt(2) eps)) (the interface solution; from "
                                 "u_0 = 0 Gauss-Newton reaches it reliably for eps >= 0.4, "
                                 "at some point sets for 0.3, not for 0.1-0.2)"),
    NonlinearProblem("burgers1d", **_BURGERS, params={"nu": 0.01 / np.pi},
                     description="u_t + u u_x = nu u_xx on [-1, 1] x [0, 1], nu = 0.01/pi, "
                                 "u(x, 0) = -sin(pi x), u(+-1, t) = 0; Cole-Hopf reference"),
    NonlinearProblem("burgers1d_mild", **_BURGERS, params={"nu": 0.1 / np.pi},
                     description="u_t + u u_x = nu u_xx on [-1, 1] x [0, 1], nu = 0.1/pi, "
                                 "u(x, 0) = -sin(pi x), u(+-1, t) = 0; Cole-Hopf reference"),
    NonlinearProblem("eikonal2d", ("x", "y"), ((0.0, 1.0), (0.0, 1.0)), "",
                     (ChannelSpec("interior", "u_x**2 + u_y**2 - 1 + eps*(u_xx + u_yy)",
                                  "interior", 400), _dirichlet_box(80)),
                     params={"eps": 0.1}, reference=references.eikonal_regularised,
                     description="regularised Eikonal |grad u|^2 + eps Lap u = 1 on [0, 1]^2, "
                                 "u = 0 on the boundary, eps = 0.1; finite-difference reference"),
):
  register(_problem)
del _problem
