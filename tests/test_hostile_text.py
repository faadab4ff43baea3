"""Operator, coefficient and exact-solution text is data: hostile strings through every
text entry point raise ValueError quickly, run nothing and print nothing."""
import time

import pytest
import sympy

from ntkpde import operators, output_maps, problems
from ntkpde.expressions import MAX_DERIVATIVE_ORDER, MAX_LENGTH, is_zero, parse_expression
from ntkpde.operators import directional_derivative, identity, normal_derivative, parse

XY = ("x", "y")
SECONDS = 1.0     # "a clear error within a second"


def _hostile(sentinel: str):
  touch = f"__import__('os').system('touch {sentinel}')"
  return [
      # code execution and escapes to the interpreter
      f"u + 0*{touch}", touch, f"u + eval(\"{touch}\")", f"exec('open(\"{sentinel}\", \"w\")')",
      f"open('{sentinel}', 'w').write('x')", f"getattr(__import__('os'), 'system')('touch {sentinel}')",
      "u.__class__.__mro__[1].__subclasses__()", "().__class__.__bases__[0].__subclasses__()",
      "u_x.func", "x.__class__", "sympy.sin(x)*u", "u.subs(x, 0)", "u + E.__class__",
      "__builtins__", "u*__debug__", "__import__", "globals()", "breakpoint()", "vars()",
      "compile('1', 'f', 'eval')", "Symbol('x')*u", "Function('f')(x)*u", "S('u')",
      "sympify('u')", "lambda: u", f"(lambda: {touch})()", "[u for u in (1,)]", "{'a': u}",
      "{u}", "(u, u_x)", "u if x else u_x", f"f'{{{touch}}}'", "'%s' % u", "'{}'.format(u)",
      "b'u'", "'u'", "u; import os", "import os", "u == u_x", "u_x[0]", "u @ u", "u // 2",
      "u % 2", "u << 2", "u ^ u_x", "~u", "not u", "u and u_x", "(yield u)", "await u",
      "(v := u)", "*u", "sin(*[u])", "sin(x=u)", "Derivative(u, x, evaluate=False)",
      # inputs SymPy would accept silently, with a wrong meaning
      "Integral(u, x)", "Subs(u_x, x, 0)", "I*u_x + u", "1j*u", "sqrt(-1)*u", "log(-1)*u",
      "u/0", "log(0)*u", "u*oo", "zoo*u", "nan*u", "Abs(x)*u", "Max(x, 0)*u",
      # unicode look-alikes and invisible characters
      "\uff55_xx", "u_\uff58\uff58", "u\u200b_xx", "u_xx\x00", "u_xx + \u1d43*u", "\u0075\u0301_xx",
      # size bombs
      "9**9**9*u", "((9**16)**16)**16*u", "u*x**100000", "u*10**400", "u*1e400",
      "u_" + "x" * 30, "u + " * 25000 + "u", "(" * 999 + "u" + ")" * 999,
      "Derivative(u, x, 100)", "Derivative(Derivative(u, x, 8), x, 8)", "diff(u, x, 9)",
      "+".join(["x*u"] * 300),
  ]


def _entry_points():
  """Every public place where text becomes SymPy, as ``text -> result``."""
  def problem_exact(text):
    return problems.Problem("hostile", XY, ((0, 1), (0, 1)), text,
                            (problems.ChannelSpec("i", "u_xx", "interior", 4),))

  def problem_operator(text):
    return problems.Problem("hostile", XY, ((0, 1), (0, 1)), "x*y",
                            (problems.ChannelSpec("i", text, "interior", 4),))

  return {
      "parse": lambda text: parse(text, XY),
      "parse with params": lambda text: parse(text, XY, params={"a": 1.0}),
      "coefficient": lambda text: identity(XY) * text,
      "normal_derivative": lambda text: normal_derivative(XY, [text, "0"]),
      "directional_derivative": lambda text: directional_derivative(XY, ["1", text]),
      "problem exact": problem_exact,
      "problem operator": problem_operator,
      "parse_nonlinear": lambda text: operators.parse_nonlinear(text, XY),
      "output_map A": lambda text: output_maps.output_map(XY, A=text, B="x*y"),
      "output_map B": lambda text: output_maps.output_map(XY, A="0", B=text),
  }


@pytest.mark.parametrize("entry", sorted(_entry_points()))
def test_hostile_text_is_refused_quickly_runs_nothing_prints_nothing(entry, tmp_path, capfd):
  sentinel = tmp_path / "CODE_RAN"
  corpus = _hostile(str(sentinel))
  assert len(corpus) >= 40
  fn = _entry_points()[entry]
  slow = []
  for text in corpus:
    start = time.perf_counter()
    with pytest.raises(ValueError):
      fn(text)
    if time.perf_counter() - start > SECONDS:
      slow.append(text[:40])
  assert not sentinel.exists()
  assert capfd.readouterr() == ("", "")
  assert not slow, f"took more than {SECONDS} s: {slow}"


@pytest.mark.parametrize("text, fragment", [
    ("u + 0*__import__('os').system('echo CODE RAN')", "only plain function names may be called"),
    ("u.__class__", "Attribute is not part of the grammar"),
    ("I*u_x + u", "unknown symbol(s) ['I']"),
    ("u + Subs(u_x, x, 0)", "'Subs' is not an allowed function"),
    ("Integral(u, x)", "'Integral' is not an allowed function"),
    ("sqrt(-1)*u", "is not real"),
    ("u/0", "is not finite"),
    ("9**9**9*u", "at most 16 in magnitude"),
    ("u_" + "x" * 30, f"1 to {MAX_DERIVATIVE_ORDER} coordinates"),
    ("Derivative(Derivative(u, x, 8), x, 8)", f"the limit is {MAX_DERIVATIVE_ORDER}"),
    ("u" * (MAX_LENGTH + 1), f"the limit is {MAX_LENGTH}"),
    ("\uff55_xx", "plain ASCII only"),
    ("Derivative(u, x, evaluate=False)", "keyword arguments are not allowed"),
])
def test_refusals_name_the_offending_piece(text, fragment):
  with pytest.raises(ValueError) as err:
    parse(text, XY)
  assert fragment in str(err.value)
  assert "\n" not in str(err.value)


@pytest.mark.parametrize("name, value, fragment", [
    ("__class__", 1.0, "alphanumeric"), ("a b", 1.0, "alphanumeric"), ("a", float("nan"), "finite"),
    ("a", "1+1", "finite real number"), ("a", 1j, "finite real number"), ("a", True, "finite real"),
])
def test_bad_parameters_are_refused(name, value, fragment):
  with pytest.raises(ValueError, match=fragment):
    parse("u_xx + a*u", XY, params={name: value})


def test_accepted_grammar_builds_the_same_expression_as_sympy():
  """The whitelist builder against SymPy's own constructors (an independent route)."""
  x, y = sympy.symbols("x y", real=True)
  names = {"x": x, "y": y}
  cases = {
      "1 + x*y - 2.5/x": 1 + x * y - sympy.Float(2.5) / x,
      "-x**2 + +y": -x ** 2 + y,
      "sin(x)*cos(y) + tan(x) + exp(-x) + log(1 + x**2) + sqrt(2)*sinh(y)*cosh(x)*tanh(y)":
          sympy.sin(x) * sympy.cos(y) + sympy.tan(x) + sympy.exp(-x) + sympy.log(1 + x ** 2)
          + sympy.sqrt(2) * sympy.sinh(y) * sympy.cosh(x) * sympy.tanh(y),
      "pi*E**x": sympy.pi * sympy.E ** x,
      "x**(1/2)": x ** sympy.Rational(1, 2),
  }
  for text, expected in cases.items():
    assert is_zero(parse_expression(text, names) - expected), text


def test_divergence_form_is_expanded_by_the_product_rule():
  """``d/dx((1 + x y) u_x) = y u_x + (1 + x y) u_xx``: checked against a hand expansion."""
  op = parse("Derivative((1 + x*y)*Derivative(u, x), x)", XY)
  x, y = sympy.symbols("x y", real=True)
  coefficients = {t.multi_index: t.coefficient for t in op.terms}
  assert set(coefficients) == {(1, 0), (2, 0)}
  assert is_zero(coefficients[(1, 0)] - y) and is_zero(coefficients[(2, 0)] - (1 + x * y))


def test_zero_test_tells_zero_from_nonzero():
  x, y = sympy.symbols("x y", real=True)
  assert is_zero((x + y) ** 2 - x ** 2 - 2 * x * y - y ** 2)
  assert is_zero(sympy.sin(x) ** 2 + sympy.cos(x) ** 2 - 1)
  assert not is_zero((x + y) ** 2 - x ** 2 - y ** 2)
  assert not is_zero(sympy.Float(1e-30) * x)     # small is not zero
  assert not is_zero(sympy.sin(x) - x)


def test_pathological_but_valid_coefficients_stay_fast():
  """Inputs on which sympy.simplify took 5-70 s: now well under a second."""
  for text in ("(x+y+1)**16*u", "(1+x)**16*(1+y)**16*(2+x*y)**16*u_xx",
               "(sin(x)+cos(y)+1)**16*(exp(x)+y)**16*u_xy"):
    start = time.perf_counter()
    op = parse(text, XY)
    assert time.perf_counter() - start < SECONDS and len(op.terms) == 1
