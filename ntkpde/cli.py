"""``ntkpde`` command line: one sub-command per module of :mod:`ntkpde.commands`.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``.
"""
import argparse
import importlib
import pkgutil
import sys

from ntkpde import commands


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="ntkpde", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True)
  runners = {}
  for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
    module = importlib.import_module(f"{commands.__name__}.{info.name}")
    p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
    module.add_arguments(p)
    runners[module.NAME] = module.run
  args = parser.parse_args(argv)
  return runners[args.command](args)


if __name__ == "__main__":
  sys.exit(main())
