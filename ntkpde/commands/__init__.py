"""Sub-commands of the ``ntkpde`` console script (see :mod:`ntkpde.cli`)."""
