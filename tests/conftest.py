"""Shared fixtures. Networks and points are session-wide so that every test file reuses
the same compiled operator kernels (one JIT compile per operator pair, kernel and shape)."""
import os

import numpy as np
import pytest

# Tests never write into the user's compilation cache (ntkpde/__init__.py); subprocesses inherit this.
os.environ.setdefault("NTKPDE_COMPILATION_CACHE", "off")
import ntkpde  # noqa: E402

XY = ("x", "y")
W_STD, B_STD = 1.5, 0.1


@pytest.fixture(scope="session")
def erf1():
  """One hidden erf layer: the network of theory/erf_ntk_closed_form.py."""
  return ntkpde.mlp(depth=1, width=512, activation="erf", W_std=W_STD, b_std=B_STD)


@pytest.fixture(scope="session")
def points():
  """``(x1, x2)``: 6 and 5 points in [-1, 1]^2, fixed."""
  rng = np.random.default_rng(1234)
  return rng.uniform(-1, 1, (6, 2)), rng.uniform(-1, 1, (5, 2))


@pytest.fixture
def compile_calls(monkeypatch):
  """The number of compile jobs each call of ``operator_kernels.compile_concurrently`` is
  handed (``None`` excluded), in order; the jobs still run."""
  from ntkpde import operator_kernels
  calls, run = [], operator_kernels.compile_concurrently

  def recording(jobs):
    jobs = [job for job in jobs if job is not None]
    calls.append(len(jobs))
    run(jobs)
  monkeypatch.setattr(operator_kernels, "compile_concurrently", recording)
  return calls
