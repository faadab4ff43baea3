"""DLAB-1: ``Theta' = d_{h,x} Theta`` and ``Theta'' = d_{h,x} d_{h,x'} Theta``.

The derivative-labels paper (Prop. 1, App. A.1) defines, for a Gateaux direction
``h``, ``Theta'(x, x') = <grad_theta d_h f(x), grad_theta f(x')>`` and
``Theta''(x, x') = <grad_theta d_h f(x), grad_theta d_h f(x')>`` and states that
they are ``d_{h,x} Theta`` and ``d_{h,x} d_{h,x'} Theta``. In ntkpde these are the
operator kernels with ``T = ntkpde.operators.directional_derivative(coords, h)``:
``Theta' = operator_kernel(kernel_fn, D_h, identity)``, ``Theta'' =
operator_kernel(kernel_fn, D_h, D_h)``.

Checked for several directions ``h`` (axis-aligned, oblique, and a
point-dependent one, the radial direction ``h(x) = x``), against

* central finite differences of ``Theta`` (depth-2 erf network): entrywise
  tolerance = Richardson truncation estimate + rounding bound, as in OPK-1
  (``verification/opk1.py``);
* the SymPy closed form of the depth-1 erf NTK differentiated along ``h``:
  tolerance 1e-10 relative (rounding of two float64 evaluations of a ~1e3-operation
  expression, with a wide margin; see OPK-1).

The finite-width statement (the empirical ``Theta'`` of a network converges to
this) is the operator-kernel statement of OPK-1/OPK-2 with ``T = D_h``.
"""
import numpy as np

import ntkpde
from ntkpde.operators import directional_derivative, identity
from ntkpde.reporting import save_figure
from verification import B_STD, W_STD, Claim, Context, Outcome, PartResult, combine_parts
from verification.opk1 import SYMPY_RTOL, fd_check, plot_checks, sympy_check

XY = ("x", "y")
DIRECTIONS = {"e_x": (1, 0), "(0.6, 0.8)": (0.6, 0.8), "(-1, 2)": (-1, 2), "radial x": ("x", "y")}


def _line(n: int):
  """Points ``x(s) = x0 + s h0`` along a line through the square, and fixed points."""
  s = np.linspace(-1.0, 1.0, n)
  h0 = np.array([0.6, 0.8])
  return s, np.array([0.1, -0.2]) + s[:, None] * h0, h0


def run(ctx: Context) -> Outcome:
  n_line = 24 if ctx.quick else 80
  s, line, h0 = _line(n_line)
  others = np.random.default_rng(0).uniform(-1, 1, (5 if ctx.quick else 12, 2))
  ident = identity(XY)
  depths = {"d2": ntkpde.mlp(depth=2, activation="erf", W_std=W_STD, b_std=B_STD),
            "d1": ntkpde.mlp(depth=1, activation="erf", W_std=W_STD, b_std=B_STD)}
  fd, exact = [], []
  for name, h in DIRECTIONS.items():
    dh = directional_derivative(XY, h)
    for label, S in (("Theta'", ident), ("Theta''", dh)):
      fd.append(fd_check(depths["d2"].kernel_fn, dh, S, line, others, "ntk", f"{label} h={name} d2"))
      exact.append(sympy_check(depths["d1"].kernel_fn, dh, S, line, others, "ntk",
                               f"{label} h={name} d1"))
      ctx.log(f"{label} h={name}: FD {fd[-1].error:.1e} (bound {fd[-1].tolerance:.1e}), "
              f"SymPy {exact[-1].error:.1e}")
  parts = [PartResult("finite differences (erf, depth 2)", fd),
           PartResult("SymPy closed form (erf, depth 1)", exact)]
  figures = [plot_checks(parts, ctx.figure("dlab1_routes.png")),
             _plot_line(depths["d2"].kernel_fn, s, line, h0, others, ctx.figure("dlab1_line.png"))]
  return combine_parts(
      parts, expected="Theta' = d_h,x Theta and Theta'' = d_h,x d_h,x' Theta within each route's "
                      "error estimate",
      tolerance=f"FD: Richardson truncation + rounding bound per entry; SymPy: {SYMPY_RTOL:.0e} relative",
      figures=figures)


def _plot_line(kernel_fn, s, line, h0, others, path) -> str:
  """Theta, Theta', Theta'' at x = x(s) along the direction h0 and x' = others[0]
  (the blocks against all of ``others`` reuse the compiled kernels of the checks);
  Theta' is the s-derivative of the Theta curve, shown by its dashed numerical slope."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  dh = directional_derivative(XY, tuple(h0))
  ident = identity(XY)
  theta = np.asarray(ntkpde.operator_kernel(kernel_fn, ident)(line, others))[:, 0]
  theta_p = np.asarray(ntkpde.operator_kernel(kernel_fn, dh, ident)(line, others))[:, 0]
  theta_pp = np.asarray(ntkpde.operator_kernel(kernel_fn, dh, dh)(line, others))[:, 0]
  fig, ax = plt.subplots(figsize=(6.5, 4))
  ax.plot(s, theta, label="Theta(x(s), x')")
  ax.plot(s, theta_p, label="Theta'(x(s), x') = d_h,x Theta")
  ax.plot(s, np.gradient(theta, s), "k--", lw=1, label="d/ds of the Theta curve (np.gradient)")
  ax.plot(s, theta_pp, label="Theta''(x(s), x')")
  ax.set_xlabel("s, x(s) = x0 + s h, h = (0.6, 0.8)")
  ax.set_title(f"depth-2 erf NTK along a line, x' = ({others[0, 0]:.2f}, {others[0, 1]:.2f})", fontsize=9)
  ax.legend(fontsize=7)
  return save_figure(fig, path, dpi=110)


CLAIMS = [Claim(
    id="DLAB-1", paper="derivative-labels-ntk",
    statement="Theta' = d_h,x Theta and Theta'' = d_h,x d_h,x' Theta: the derivative-label "
              "kernels are the operator kernels with T = directional derivative along h.",
    run=run)]
