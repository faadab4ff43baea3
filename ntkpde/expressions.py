"""Mathematical text to SymPy without ever evaluating it as code.

Operator strings (``"u_xx + a*u"``), coefficient strings (``"1 + x*y"``) and exact
solutions of problems are untrusted input. SymPy's ``sympify``/``parse_expr`` run
Python's ``eval`` on their text, so ``"u + 0*__import__('os').system('...')"`` would run
a shell command. Here the text is instead parsed by Python's ``ast`` module (which only
parses) and the SymPy expression is *built* node by node from a whitelist:

- numbers: integer and decimal literals (finite, real); names: only those the caller
  passes (coordinates, parameters, the unknown ``u`` and its subscripts) and the
  constants ``pi`` and ``E``;
- operators ``+ - * / **`` and unary ``-``/``+``; parentheses;
- calls of ``sin cos tan exp log sqrt sinh cosh tanh`` with one argument, and, where the
  caller allows derivatives, ``Derivative(f, x)``, ``Derivative(f, x, 2)``,
  ``Derivative(f, x, y)`` (and the same with ``diff``), evaluated by the product rule.

Everything else (attributes, subscripts, strings, lambdas, comprehensions, keywords,
comparisons, other functions, non-ASCII characters) is refused with a ``ValueError``
naming the offending piece. Work is bounded: at most :data:`MAX_LENGTH` characters,
:data:`MAX_NODES` syntax nodes, numeric exponents of magnitude at most
:data:`MAX_EXPONENT`, numbers that fit in float64, and derivatives of total order at
most :data:`MAX_DERIVATIVE_ORDER`.
"""
import ast
import math
import random
from typing import Callable, Mapping, Optional

import sympy

MAX_LENGTH = 2000
MAX_NODES = 400
MAX_EXPONENT = 16
MAX_DERIVATIVE_ORDER = 8
FUNCTIONS = {"sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "exp": sympy.exp,
             "log": sympy.log, "sqrt": sympy.sqrt, "sinh": sympy.sinh, "cosh": sympy.cosh,
             "tanh": sympy.tanh}
CONSTANTS = {"pi": sympy.pi, "E": sympy.E}
DERIVATIVES = ("Derivative", "diff")
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
           ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}
GRAMMAR = ("numbers, the names allowed here, pi, E, + - * / ** and unary minus, parentheses, "
           f"and the functions {', '.join(FUNCTIONS)}")


def parse_expression(text, names: Mapping[str, sympy.Basic],
                     resolve: Optional[Callable[[str], Optional[sympy.Basic]]] = None,
                     derivatives: bool = False, what: str = "expression") -> sympy.Expr:
  """The SymPy expression written in ``text``, built from a whitelist (module docstring).

  ``names`` maps the allowed names to SymPy objects; ``resolve(name)`` may supply more
  (``None`` if it does not know the name, ``ValueError`` to refuse it with a reason).
  ``derivatives`` allows ``Derivative``/``diff`` calls. ``what`` names the input in errors.
  """
  if not isinstance(text, str):
    raise ValueError(f"{what} must be text, got {type(text).__name__}.")
  if len(text) > MAX_LENGTH:
    raise ValueError(f"{what} is {len(text)} characters long; the limit is {MAX_LENGTH}.")
  for position, char in enumerate(text):
    if not (char.isascii() and (char.isprintable() or char in " \t")):
      raise ValueError(f"{what} {_quote(text)}: character {char!r} at position {position} is "
                       f"not allowed (plain ASCII only).")
  if not text.strip():
    raise ValueError(f"{what} is empty.")
  try:
    tree = ast.parse(text.strip(), mode="eval")
  except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
    raise ValueError(f"cannot parse {what} {_quote(text)}: {getattr(err, 'msg', err)}.") from None
  count = sum(1 for _ in ast.walk(tree))
  if count > MAX_NODES:
    raise ValueError(f"{what} {_quote(text)} has {count} syntax nodes; the limit is {MAX_NODES}.")
  expr = _Builder(text, names, resolve, derivatives, what).build(tree.body)
  if expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
    raise ValueError(f"{what} {_quote(text)} is not finite ({expr}): a division by zero?")
  if expr.has(sympy.I):
    raise ValueError(f"{what} {_quote(text)} is not real ({expr}).")
  return expr


def is_zero(expr: sympy.Expr, seed: int = 0) -> bool:
  """Whether ``expr`` is identically zero, in time linear in its size.

  ``sympy.simplify`` can take minutes on short inputs such as ``(sin(x) + 1)**16 * u``,
  so instead: structural zero, else 60-digit evaluation at two random points of
  ``[0.5, 1.5]^n`` (an analytic expression that vanishes at random points to 40 digits is
  zero; an exact zero evaluates to rounding of ``1e-60`` times its terms).
  """
  if expr == 0:
    return True
  symbols = sorted(expr.free_symbols, key=str)
  rng = random.Random(seed)
  for _ in range(2):
    point = {s: sympy.Float(rng.uniform(0.5, 1.5), 60) for s in symbols}
    value = sympy.N(expr.subs(point), 60)
    if not value.is_number or abs(complex(value)) > 1e-40:
      return False
  return True


def _quote(text: str) -> str:
  return repr(text if len(text) <= 80 else text[:77] + "...")


class _Builder:
  """Turns a whitelisted ``ast`` tree into SymPy, refusing anything else."""

  def __init__(self, text, names, resolve, derivatives, what):
    self.text, self.names, self.resolve = text, names, resolve
    self.derivatives, self.what = derivatives, what

  def fail(self, node, reason: str):
    piece = ast.get_source_segment(self.text.strip(), node) or type(node).__name__
    raise ValueError(f"{self.what} {_quote(self.text)}: {_quote(piece)} is not allowed ({reason}). "
                     f"Allowed: {GRAMMAR}"
                     f"{', Derivative and diff' if self.derivatives else ''}.")

  def build(self, node) -> sympy.Expr:
    if isinstance(node, ast.Constant):
      return self.number(node)
    if isinstance(node, ast.Name):
      return self.name(node)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
      value = self.build(node.operand)
      return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
      if isinstance(node.op, ast.Pow):
        return self.power(node)
      if type(node.op) in _BINARY:
        return _BINARY[type(node.op)](self.build(node.left), self.build(node.right))
      self.fail(node, f"the operator {type(node.op).__name__} is not one of + - * / **")
    if isinstance(node, ast.Call):
      return self.call(node)
    self.fail(node, f"{type(node).__name__} is not part of the grammar")

  def number(self, node) -> sympy.Expr:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      self.fail(node, "only real number literals are allowed")
    if isinstance(value, int):
      if abs(value) > 2 ** 63:
        self.fail(node, "integer literals must be below 2**63")
      return sympy.Integer(value)
    if not math.isfinite(value):
      self.fail(node, "numbers must be finite in float64")
    return sympy.Float(value)

  def name(self, node) -> sympy.Expr:
    name = node.id
    if name.startswith("_"):
      self.fail(node, "names may not start with an underscore")
    if name in self.names:
      return self.names[name]
    if name in CONSTANTS:
      return CONSTANTS[name]
    resolved = self.resolve(name) if self.resolve is not None else None
    if resolved is None:
      known = sorted(self.names)
      self.fail(node, f"unknown name {name!r} (known names: {known}, pi, E)")
    return resolved

  def power(self, node) -> sympy.Expr:
    base, exponent = self.build(node.left), self.build(node.right)
    if exponent.is_number:
      size = sympy.Abs(exponent.evalf(20))
      if not size.is_finite or size > MAX_EXPONENT:
        self.fail(node, f"numeric exponents must be finite and at most {MAX_EXPONENT} in "
                        f"magnitude")
      if base.is_number and base != 0:
        scale = sympy.Abs(base.evalf(20))
        if not scale.is_finite or size * abs(sympy.log(scale, 10)) > 300:
          self.fail(node, "the value does not fit in float64")
    return base ** exponent

  def call(self, node) -> sympy.Expr:
    if not isinstance(node.func, ast.Name):
      self.fail(node, "only plain function names may be called")
    name = node.func.id
    if node.keywords:
      self.fail(node, "keyword arguments are not allowed")
    if any(isinstance(a, ast.Starred) for a in node.args):
      self.fail(node, "starred arguments are not allowed")
    if name in DERIVATIVES and self.derivatives:
      return self.derivative(node)
    if name not in FUNCTIONS:
      self.fail(node, f"{name!r} is not an allowed function")
    if len(node.args) != 1:
      self.fail(node, f"{name} takes exactly one argument")
    return FUNCTIONS[name](self.build(node.args[0]))

  def derivative(self, node) -> sympy.Expr:
    """``Derivative(f, x)``, ``Derivative(f, x, 2)``, ``Derivative(f, x, y)``: evaluated by
    the product rule, so ``Derivative(a*Derivative(u, x), x)`` is ``a_x u_x + a u_xx``."""
    if len(node.args) < 2:
      self.fail(node, "write Derivative(f, x) or Derivative(f, x, 2)")
    spec, total = [], 0
    for arg in node.args[1:]:
      if isinstance(arg, ast.Constant) and type(arg.value) is int and spec:
        if not 0 <= arg.value <= MAX_DERIVATIVE_ORDER:
          self.fail(arg, f"derivative counts must be between 0 and {MAX_DERIVATIVE_ORDER}")
        total += arg.value - 1
        spec[-1] = (spec[-1][0], arg.value)
        continue
      if not isinstance(arg, ast.Name):
        self.fail(arg, "derivative variables must be coordinate names, each optionally "
                       "followed by an integer count")
      variable = self.name(arg)
      if not isinstance(variable, sympy.Symbol):
        self.fail(arg, "derivatives are taken with respect to coordinates only")
      spec.append((variable, 1))
      total += 1
    if total > MAX_DERIVATIVE_ORDER:
      self.fail(node, f"derivative order {total} is above the limit {MAX_DERIVATIVE_ORDER}")
    expr = self.build(node.args[0])
    for variable, count in spec:
      expr = sympy.diff(expr, variable, count) if count else expr
    return expr
