"""``ntkpde`` command line: one sub-command per module of :mod:`ntkpde.commands`.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. Every mistake in the command line (argparse's own, or a
:class:`ntkpde.commands.UsageError` raised by ``run`` before any work) is one line on
stderr naming the option and the value, with exit code 2; Ctrl-C exits with 130.
"""
import argparse
import importlib
import pkgutil
import sys

from ntkpde import commands
from ntkpde.reporting import OutputLocked


class _Parser(argparse.ArgumentParser):
  """argparse with one-line errors (no usage dump)."""

  def error(self, message):
    raise commands.UsageError(f"{self.prog}: error: {message}")


def main(argv=None) -> int:
  parser = _Parser(prog="ntkpde", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True)
  runners = {}
  for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
    module = importlib.import_module(f"{commands.__name__}.{info.name}")
    p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
    module.add_arguments(p)
    runners[module.NAME] = module.run
  try:
    args = parser.parse_args(argv)
    return runners[args.command](args)
  except commands.UsageError as err:
    message = str(err)
    print(message if message.startswith("ntkpde") else f"ntkpde {args.command}: error: {message}",
          file=sys.stderr)
    return 2
  except OutputLocked as err:
    print(f"ntkpde: error: {err}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:  # commands with long loops handle it themselves and keep results
    print("ntkpde: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
