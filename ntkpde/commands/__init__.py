"""Sub-commands of the ``ntkpde`` console script (see :mod:`ntkpde.cli`), and the checks
they share: every mistake in a command line is one line naming the option and the value,
found before any work (:class:`UsageError`, exit code 2)."""
import argparse
import os
from pathlib import Path


class UsageError(ValueError):
  """A bad command-line value; :func:`ntkpde.cli.main` prints it as one line, exit code 2."""


def _number(kind, text: str, test, what: str):
  try:
    value = kind(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
  if not test(value):
    raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
  return value


def positive_int(text: str) -> int:
  return _number(int, text, lambda v: v >= 1, "an integer >= 1")


def positive_float(text: str) -> float:
  return _number(float, text, lambda v: v > 0 and v < float("inf"), "a finite number > 0")


def nonnegative_float(text: str) -> float:
  return _number(float, text, lambda v: 0 <= v < float("inf"), "a finite number >= 0")


def finite_float(text: str) -> float:
  return _number(float, text, lambda v: abs(v) < float("inf"), "a finite number")


def writable_folder(text: str, option: str = "--out") -> Path:
  """``text`` as an output folder that exists or can be created (nothing is created here)."""
  if not text:
    raise UsageError(f"{option}: expected a folder, got ''.")
  path = Path(text)
  if path.exists() and not path.is_dir():
    raise UsageError(f"{option} {text}: exists and is not a folder; choose another {option}.")
  _check_writable(path, option, text)
  return path


def writable_file(text: str, suffixes, option: str = "--out") -> Path:
  path = Path(text)
  if path.suffix not in suffixes:
    raise UsageError(f"{option} {text}: must end in {' or '.join(suffixes)}.")
  if path.exists() and not path.is_file():
    raise UsageError(f"{option} {text}: exists and is not a file.")
  _check_writable(path.parent, option, text)
  return path


def _check_writable(path: Path, option: str, text: str) -> None:
  existing = path
  while not existing.exists():
    existing = existing.parent
  if not existing.is_dir():
    raise UsageError(f"{option} {text}: {existing} is a file, not a folder.")
  if not os.access(existing, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
    raise UsageError(f"{option} {text}: {path if path.exists() else existing} is not writable.")
