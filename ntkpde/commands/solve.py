"""``ntkpde solve``: the infinite-width PINN of a benchmark problem, in closed form.

Builds the block NTK Gram of the problem's channels (``ntkpde.problems``), evaluates the
ensemble mean ``u_t`` of :func:`ntkpde.predict.gradient_descent_mse_ensemble` on a test
grid at the requested times (optimiser steps; ``inf`` = converged), prints an error
table against the exact solution, and writes ``solution.png`` (exact vs ensemble mean),
``error.png`` (pointwise error), ``residual_energy.png`` (mean residual energy per
channel over time, :func:`ntkpde.predict.residual_flow`) and ``results.json``.

The default learning rate is half the largest stable one
(:func:`ntkpde.predict.max_stable_learning_rate`, ``2 n / lambda_max(K A)``), so one step
contracts the fastest mode by ``1/e``-ish and times are comparable across problems.
``t = inf`` is the limit of the flow (no regulariser needed). The residual energies
``1/2 sum_{i in c} r_i^2`` are those of the ensemble mean at the channels' points.
Every mistake in the options is reported before any work (nothing is created).

``--method gauss-newton`` solves a nonlinear problem (or a linear one) by Gauss-Newton
kernel collocation (:func:`ntkpde.nonlinear.solve`) with the network's NTK or NNGP
(``--kernel ntk|nngp``) or a Gaussian kernel (``--kernel gauss:L`` or ``gauss:L1,L2``):
per-iteration table, error table against the exact or reference solution, and
``solution.png``, ``error.png``, ``convergence.png``, ``results.json``.
"""
import dataclasses
import time

import numpy as np

from ntkpde.commands import (UsageError, finite_float, nonnegative_float, positive_float,
                             positive_int, writable_folder)

NAME = "solve"
HELP = "closed-form infinite-width PINN of a benchmark problem: error table and plots"


def add_arguments(parser) -> None:
  from ntkpde import problems
  parser.add_argument("problem", choices=problems.names())
  parser.add_argument("--arch", default="erf:2", help="ACTIVATION:DEPTH of the MLP (default erf:2)")
  parser.add_argument("--W-std", type=positive_float, default=1.5)
  parser.add_argument("--b-std", type=nonnegative_float, default=0.1)
  parser.add_argument("--n-interior", type=positive_int, default=None, help="interior points")
  parser.add_argument("--size", action="append", default=[], metavar="CHANNEL=N",
                      help="points of one channel, e.g. --size boundary=16 (repeatable)")
  parser.add_argument("--sampler", default="sobol", choices=("uniform", "grid", "sobol", "lhs"))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--weights", default="none",
                      help="'none', 'trace' (NTK trace weights) or CHANNEL=W,CHANNEL=W")
  parser.add_argument("--learning-rate", type=positive_float, default=None,
                      help="eta (default: n / lambda_max(K A), half the stability limit)")
  parser.add_argument("--t", default="10,100,1000,10000,inf",
                      help="comma-separated times in optimiser steps; 'inf' = converged")
  parser.add_argument("--diag-reg", type=nonnegative_float, default=0.0)
  parser.add_argument("--n-test", type=positive_int, default=None,
                      help="test points per axis (default 201 in 1-D, 41 in 2-D)")
  parser.add_argument("--out", default="solve_out", help="output folder")
  parser.add_argument("--method", default="closed-form", choices=("closed-form", "gauss-newton"),
                      help="closed-form infinite-width training (linear problems) or "
                           "Gauss-Newton kernel collocation (nonlinear problems)")
  parser.add_argument("--kernel", default="ntk",
                      help="gauss-newton: 'ntk' or 'nngp' of --arch, or 'gauss:L[,L2]'")
  parser.add_argument("--nugget", type=nonnegative_float, default=1e-10,
                      help="gauss-newton: relative nugget on each channel's block")
  parser.add_argument("--output-a", default=None, metavar="TEXT",
                      help="hard constraint u = A + B N: A in the problem's coordinates (default 0)")
  parser.add_argument("--output-b", default=None, metavar="TEXT",
                      help="hard constraint u = A + B N: B in the problem's coordinates (default 1); "
                           "channels of u where B = 0 are dropped")


def _parse_times(text):
  out = []
  for piece in text.split(","):
    piece = piece.strip()
    try:
      value = np.inf if piece == "inf" else finite_float(piece)
    except Exception:  # noqa: BLE001 -- argparse's type error, re-raised with the option
      value = None
    if value is None or not value >= 0:
      raise UsageError(f"--t {text!r}: each time must be a number >= 0 or 'inf', got {piece!r}.")
    out.append(value)
  return np.array(sorted(out))


def _channel_values(option, text, names, kind):
  """``{channel: kind(value)}`` from ``CHANNEL=VALUE,...`` (``--weights``) or one item."""
  out = {}
  for piece in text.split(","):
    name, _, value = piece.partition("=")
    if name not in names:
      raise UsageError(f"{option} {text!r}: unknown channel {name!r}; channels are {list(names)}.")
    try:
      out[name] = kind(value)
    except Exception:  # noqa: BLE001 -- argparse's type error, re-raised with the option
      raise UsageError(f"{option} {text!r}: {name} must be {kind.__doc__}, got {value!r}.") \
          from None
  return out


def _weight(text: str) -> float:
  """a finite number >= 0"""
  return nonnegative_float(text)


def _size(text: str) -> int:
  """an integer >= 1"""
  return positive_int(text)


def _parse_weights(text, names):
  if text in ("none", "trace"):
    return None if text == "none" else "trace"
  out = _channel_values("--weights", text, names, _weight)
  if not any(out.values()) and len(out) == len(names):
    raise UsageError(f"--weights {text!r}: all weights are zero; nothing would train.")
  return out


def _parse_arch(text, problem):
  """``(activation, depth)`` of ``ACTIVATION:DEPTH``; a non-smooth activation is refused when
  the problem has derivative operators."""
  from ntkpde.architectures import ACTIVATIONS
  activation, _, depth = text.partition(":")
  if activation not in ACTIVATIONS:
    raise UsageError(f"--arch {text!r}: unknown activation {activation!r}; choose from "
                     f"{sorted(ACTIVATIONS)}.")
  try:
    depth = positive_int(depth or "2")
  except Exception:  # noqa: BLE001
    raise UsageError(f"--arch {text!r}: DEPTH must be an integer >= 1, got {depth!r}.") from None
  limit = ACTIVATIONS[activation][1]
  order = max(problem.operator(c.name).order for c in problem.channels)
  if limit is not None and order > limit:
    raise UsageError(f"--arch {text!r}: {activation} networks are not differentiable, and "
                     f"{problem.name} has operators of order {order}; use a smooth activation "
                     f"(erf, sin, cos, gelu, gaussian, sigmoid_like).")
  return activation, depth


def _test_grid(problem, n_test):
  axes = [np.linspace(lo, hi, n_test) for lo, hi in problem.domain]
  mesh = np.meshgrid(*axes, indexing="ij")
  return np.stack([m.ravel() for m in mesh], axis=1), [len(a) for a in axes]


def run(args) -> int:
  import ntkpde
  from ntkpde import problems, reporting

  problem = problems.get(args.problem)
  names = [c.name for c in problem.channels]
  if args.method == "closed-form" and isinstance(problem, problems.NonlinearProblem):
    raise UsageError(f"{problem.name} is nonlinear: the closed form needs a linear problem; use "
                     f"--method gauss-newton.")
  activation, depth = _parse_arch(args.arch, problem)
  times = _parse_times(args.t)
  weight_spec = _parse_weights(args.weights, names)
  sizes = {}
  for item in args.size:
    sizes.update(_channel_values("--size", item, names, _size))
  if args.n_interior is not None:
    if "interior" not in names:
      raise UsageError(f"--n-interior {args.n_interior}: {problem.name} has no interior channel; "
                       f"use --size CHANNEL=N with CHANNEL in {names}.")
    sizes["interior"] = args.n_interior
  if args.n_test is not None and args.n_test < 2:
    raise UsageError(f"--n-test {args.n_test}: expected an integer >= 2 (points per axis).")
  if len(problem.coords) > 2:
    raise UsageError(f"{args.problem}: plots support 1-D and 2-D problems only.")
  out = writable_folder(args.out)
  sample = problem.sample(sizes, sampler=args.sampler, seed=args.seed)
  omap = None
  if args.output_a is not None or args.output_b is not None:
    omap, sample = _constrain(problem, sample, args.output_a, args.output_b)
  net = ntkpde.mlp(depth, activation=activation, W_std=args.W_std, b_std=args.b_std,
                   input_map=problem.input_map())
  description = (f"infinite-width mlp(depth={depth}, activation={activation}, W_std={args.W_std:g}, "
                 f"b_std={args.b_std:g})")
  if args.method == "gauss-newton":
    kernel_fn, get, description = _parse_kernel(args.kernel, net, description)
  out.mkdir(parents=True, exist_ok=True)
  with reporting.output_lock(out):
    if args.method == "gauss-newton":
      return _run_gauss_newton(args, problem, kernel_fn, get, description, sample, omap, out)
    return _solve(args, problem, net, description, times, weight_spec, sample, omap, out)


def _constrain(problem, sample, a_text, b_text):
  """``(output map, sample)`` for ``--output-a/--output-b``: channels of ``u`` alone whose
  points all have ``B = 0`` are dropped (``u = A`` holds there)."""
  from ntkpde import output_maps, problems
  a_text, b_text = a_text or "0", b_text or "1"
  try:
    omap = output_maps.output_map(problem.coords, A=a_text, B=b_text)
    nonzero = [bool(np.any(np.asarray(omap.B(c.points)) != 0)) for c in sample.channels]
    if not any(nonzero):
      raise ValueError("B = 0 at every training point, so u = A and there is nothing to train")
    kept = [(c, y) for c, y, b in zip(sample.channels, sample.targets, nonzero)
            if c.operator.order or b]
    output_maps.check_channels(omap, [c for c, _ in kept])
  except ValueError as err:
    raise UsageError(f"--output-a {a_text!r} --output-b {b_text!r}: {err}") from None
  return omap, problems.Sample(tuple(c for c, _ in kept), tuple(y for _, y in kept))


def _parse_kernel(text, net, description):
  """``(kernel_fn, get, description)`` of ``--kernel``: ``ntk``/``nngp`` of the network or
  ``gauss:L[,L2]`` (length scales > 0)."""
  from ntkpde import nonlinear
  kind, _, scales = text.partition(":")
  if kind in ("ntk", "nngp") and not scales:
    return net.kernel_fn, kind, f"{kind} of the {description}"
  if kind == "gauss" and scales:
    try:
      lengths = [positive_float(v) for v in scales.split(",")]
    except Exception:  # noqa: BLE001 -- argparse's type error, re-raised with the option
      lengths = None
    if lengths:
      kernel_fn = nonlinear.gaussian_kernel(lengths)
      return kernel_fn, "ntk", kernel_fn.description
  raise UsageError(f"--kernel {text!r}: expected 'ntk', 'nngp' or 'gauss:L[,L2]' with length "
                   f"scales > 0.")


def _solve(args, problem, net, description, times, weight_spec, sample, omap, out) -> int:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  import ntkpde
  from ntkpde import reporting, weights as weight_rules
  from ntkpde.predict import (_add_diagonal_regularizer, gradient_descent_mse_ensemble,
                              max_stable_learning_rate, residual_flow)
  from ntkpde import output_maps
  start = time.perf_counter()
  if omap is not None:
    description = f"{description} under {omap.description}"
  print(f"[1/4] {problem.name}: {problem.description}; channels {sample.sizes}; {description}",
        flush=True)
  kernel_fn = net.kernel_fn if omap is None else output_maps.ConstrainedKernel(net.kernel_fn, omap)
  G = ntkpde.gram(kernel_fn, sample.channels, "ntk")
  K = _add_diagonal_regularizer(np.asarray(G.matrix), args.diag_reg)  # the Gram the flow uses
  A = weight_rules.per_residual(weight_spec, G.sizes, G)
  n = len(K)
  limit = max_stable_learning_rate(K, A)
  eta = args.learning_rate if args.learning_rate is not None else limit / 2
  print(f"[2/4] block NTK Gram {K.shape}, eta = {eta:.3e} (max_stable_learning_rate "
        f"{limit:.3e}) ({time.perf_counter() - start:.1f} s)", flush=True)
  n_test = args.n_test or (201 if len(problem.coords) == 1 else 41)
  x_test, shape = _test_grid(problem, n_test)
  exact = problem.exact_fn()(x_test)
  predict_fn = gradient_descent_mse_ensemble(net.kernel_fn, sample.channels, sample.targets,
                                             learning_rate=eta, weights=weight_spec,
                                             diag_reg=args.diag_reg, ntk_gram=G, output=omap)
  labels = [f"{t:g}" for t in times]
  means = list(predict_fn(times, x_test))
  fitted = predict_fn(times)          # T_c u_t at the channels' points: the real residuals
  print(f"[3/4] predictions at {len(means)} times ({time.perf_counter() - start:.1f} s)", flush=True)
  y = np.concatenate(sample.targets)
  r0 = -y if omap is None else omap.shifts(sample.channels) - y  # T_c u_0 - y_c, mean u_0 = A
  flow = residual_flow(K, r0, A, learning_rate=eta / n)
  rows = []
  for label, mean, fit in zip(labels, means, fitted):
    r = fit - y
    energy = {c: float(0.5 * np.sum(r[G.slices[c]] ** 2)) for c in G.names}
    err = mean - exact
    rows.append({"t": label, "max_abs_error": float(np.abs(err).max()),
                 "rel_l2_error": float(np.linalg.norm(err) / np.linalg.norm(exact)),
                 "residual_energy": energy})
  header = f"{'t (steps)':>24} {'max |u - u*|':>13} {'rel L2':>10} " + " ".join(
      f"{'E_' + c:>14}" for c in G.names)
  print(header)
  for row in rows:
    print(f"{row['t']:>24} {row['max_abs_error']:13.3e} {row['rel_l2_error']:10.3e} " +
          " ".join(f"{row['residual_energy'][c]:14.3e}" for c in G.names))
  finite = [float(t) for t in times if np.isfinite(t)]
  curve = _plots(plt, problem, x_test, shape, exact, means, labels, flow, finite, G, eta, n, out)
  reporting.write_json_atomic(out / "results.json", {
      "problem": problem.name, "description": problem.description, "network": description,
      "channels": sample.sizes, "weights": args.weights, "learning_rate": eta,
      "diag_reg": args.diag_reg, "sampler": args.sampler, "seed": args.seed, "rows": rows,
      "residual_energy_curve": curve, "device": reporting.device_description()})
  print(f"[4/4] wrote {out / 'results.json'}, solution.png, error.png, residual_energy.png "
        f"({time.perf_counter() - start:.1f} s)")
  return 0


def _heatmaps(plt, problem, shape, panels, figsize):
  """One ``imshow`` panel per ``(values, title)`` over the 2-D domain (``t`` or ``y`` up)."""
  extent = [*problem.domain[1], *problem.domain[0]]
  fig, axes = plt.subplots(1, len(panels), figsize=figsize, squeeze=False)
  for ax, (values, title) in zip(axes[0], panels):
    im = ax.imshow(values.reshape(shape), origin="lower", extent=extent, aspect="auto")
    ax.set_title(title)
    ax.set_xlabel(problem.coords[1])
    ax.set_ylabel(problem.coords[0])
    fig.colorbar(im, ax=ax)
  return fig


def _plots(plt, problem, x_test, shape, exact, means, labels, flow, times, G, eta, n, out):
  """Writes solution.png, error.png and residual_energy.png; returns the plotted residual
  energies per channel, ``{"steps": [...], name: [...]}`` (``times`` among the steps)."""
  from ntkpde.reporting import save_figure
  if len(problem.coords) == 1:
    x = x_test[:, 0]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, exact, "k-", lw=2, label="exact")
    for label, mean in zip(labels, means):
      ax.plot(x, mean, "--", label=f"t = {label}")
    ax.set_xlabel(problem.coords[0])
    ax.legend(fontsize=8)
    save_figure(fig, out / "solution.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, mean in zip(labels, means):
      ax.semilogy(x, np.abs(mean - exact) + 1e-300, label=f"t = {label}")
    ax.set_xlabel(problem.coords[0])
    ax.set_ylabel("|u_t - u*|")
    ax.legend(fontsize=8)
  else:
    save_figure(_heatmaps(plt, problem, shape, [(exact, "exact"), (means[-1], f"mean, t = {labels[-1]}")],
                          (9, 3.8)), out / "solution.png")
    fig = _heatmaps(plt, problem, shape, [(np.abs(means[-1] - exact), f"|u_t - u*|, t = {labels[-1]}")],
                    (5, 3.8))
  save_figure(fig, out / "error.png")
  steps = np.union1d(np.logspace(-1, 8, 120), times)
  r = flow(steps)
  energies = {c: 0.5 * np.sum(r[:, G.slices[c]] ** 2, axis=1) for c in G.names}
  fig, ax = plt.subplots(figsize=(6, 4))
  for c in G.names:
    ax.loglog(steps, np.clip(energies[c], 1e-32, None), label=c)
  ax.set_xlabel(f"optimiser steps (eta = {eta:.3g}, loss normalised by n = {n})")
  ax.set_ylabel("mean residual energy")
  ax.legend(fontsize=8)
  save_figure(fig, out / "residual_energy.png")
  return {"steps": steps.tolist(), **{c: e.tolist() for c, e in energies.items()}}


def _run_gauss_newton(args, problem, kernel_fn, get, description, sample, omap, out) -> int:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  import ntkpde
  from ntkpde import nonlinear, operators, problems, reporting
  start = time.perf_counter()
  if omap is not None:
    description = f"{description} under {omap.description}"
  if not isinstance(problem, problems.NonlinearProblem):   # linear text reads as nonlinear too
    params = dict(problem.params) or None
    sample = problems.Sample(tuple(ntkpde.Channel(c.name, operators.parse_nonlinear(
        problem._spec(c.name).operator, problem.coords, params), c.points)
        for c in sample.channels), sample.targets)
  print(f"[1/3] {problem.name}: {problem.description}; channels {sample.sizes}; {description}",
        flush=True)
  n_test = args.n_test or (201 if len(problem.coords) == 1 else 41)
  x_test, shape = _test_grid(problem, n_test)
  exact = problem.exact_fn()(x_test)
  print(f"{'iteration':>9} {'kind':>6} {'residual':>10} {'update':>10} {'step':>6} {'rel L2':>10}")

  def progress(step):
    kind = "Newton" if step.newton else "GN"
    print(f"{step.iteration:9d} {kind:>6} {step.residual:10.3e} {step.update:10.3e} "
          f"{step.step_size:6.3g} {step.error:10.3e}", flush=True)
  try:
    sol = nonlinear.solve(kernel_fn, sample.channels, sample.targets, get=get, nugget=args.nugget,
                          x_test=x_test, exact=exact, progress=progress, output=omap)
  except (nonlinear.GaussNewtonDivergence, ValueError) as err:
    print(f"ntkpde solve: {err}")
    return 1
  mean = sol(x_test)
  err = mean - exact
  row = {"method": "gauss-newton", "iterations": len(sol.history),
         "max_abs_error": float(np.abs(err).max()),
         "rel_l2_error": float(np.linalg.norm(err) / np.linalg.norm(exact)),
         "condition_estimate": sol.condition_number}
  print(f"[2/3] {row['iterations']} iterations, max |u - u*| {row['max_abs_error']:.3e}, "
        f"rel L2 {row['rel_l2_error']:.3e} ({time.perf_counter() - start:.1f} s)", flush=True)
  from ntkpde.reporting import save_figure
  if len(problem.coords) == 1:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x_test[:, 0], exact, "k-", lw=2, label="exact")
    ax.plot(x_test[:, 0], mean, "--", label="Gauss-Newton")
    ax.legend(fontsize=8)
    save_figure(fig, out / "solution.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(x_test[:, 0], np.abs(err) + 1e-300)
    ax.set_ylabel("|u - u*|")
  else:
    save_figure(_heatmaps(plt, problem, shape, [(exact, "reference"), (mean, "Gauss-Newton")],
                          (9, 3.8)), out / "solution.png")
    fig = _heatmaps(plt, problem, shape, [(np.abs(err), "|u - u*|")], (5, 3.8))
  save_figure(fig, out / "error.png")
  fig, ax = plt.subplots(figsize=(6, 4))
  steps = [s.iteration for s in sol.history]
  for key in ("residual", "update", "error"):
    ax.semilogy(steps, [getattr(s, key) for s in sol.history], "o-", label=key)
  ax.set_xlabel("Gauss-Newton iteration")
  ax.legend(fontsize=8)
  save_figure(fig, out / "convergence.png")
  reporting.write_json_atomic(out / "results.json", {
      "problem": problem.name, "description": problem.description, "kernel": description,
      "channels": sample.sizes, "nugget": args.nugget, "sampler": args.sampler, "seed": args.seed,
      "rows": [row], "history": [dataclasses.asdict(s) for s in sol.history],
      "device": reporting.device_description()})
  print(f"[3/3] wrote {out / 'results.json'}, solution.png, error.png, convergence.png "
        f"({time.perf_counter() - start:.1f} s)")
  return 0
