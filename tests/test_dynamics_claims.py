"""Fast checks of the dynamics claims (NTKW-1, DLAB-2..4, ADV-1..8) and of ``ntkpde solve``.

The cheap claims run in quick mode and must hold (their own tolerances are justified in
their modules); DLAB-2's decoupled formula is checked on synthetic blocks: exact (to
rounding, 1e-10 relative) for commuting circulant blocks, off by > 1e-3 for random ones.
"""
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import ntkpde
from ntkpde import cli
from ntkpde.predict import residual_flow
from verification import Context, all_claims
from verification import dlab2

DYNAMICS_IDS = ["NTKW-1", "DLAB-2", "DLAB-3", "DLAB-4", "ADV-1", "ADV-2", "ADV-3", "ADV-4",
                "ADV-5", "ADV-6", "ADV-7", "ADV-8"]


def test_dynamics_claims_are_registered():
  claims = all_claims()
  assert set(DYNAMICS_IDS) <= set(claims)


@pytest.mark.parametrize("cid", ["NTKW-1", "ADV-1", "ADV-3", "ADV-4", "ADV-6"])
def test_cheap_claims_hold_in_quick_mode(cid, tmp_path):
  outcome = all_claims()[cid].run(Context(quick=True, out_dir=tmp_path, log=lambda m: None))
  assert outcome.passed, outcome.measured
  assert outcome.figures and all(Path(p).exists() for p in outcome.figures)


def synthetic_gram(blocks):
  T, Tp, Tpp = blocks
  m = len(T)
  K = np.block([[T, Tp], [Tp.T, Tpp]])
  return ntkpde.BlockGram(jnp.asarray(K), ("f", "df"), {"f": m, "df": m})


def circulant_spd(first_column):
  C = scipy.linalg.circulant(first_column)
  return C @ C.T


def test_dlab2_decoupled_formula_is_exact_iff_blocks_commute():
  m = 8
  rng = np.random.default_rng(0)
  times = np.array([0.0, 0.3, 1.0])
  labels = (rng.normal(size=m), rng.normal(size=m))
  commuting = (circulant_spd(rng.normal(size=m)) / m, 0.3 * scipy.linalg.circulant(rng.normal(size=m)) / m,
               circulant_spd(rng.normal(size=m)) / m + np.eye(m))
  X = rng.normal(size=(2 * m, 2 * m))
  K = X @ X.T / (2 * m)
  generic = (K[:m, :m], K[:m, m:], K[m:, m:])
  for blocks, exact in ((commuting, True), (generic, False)):
    G = synthetic_gram(blocks)
    if exact:  # a valid kernel needs K PSD; make the commuting one PSD by a shift
      G = ntkpde.BlockGram(G.matrix + 2 * np.abs(np.linalg.eigvalsh(np.asarray(G.matrix))).max()
                           * jnp.eye(2 * m), G.names, G.sizes)
    y_exact = residual_flow(np.asarray(G.matrix), -np.r_[labels])(times)[:, :m] + labels[0]
    gap = np.abs(dlab2.decoupled_y(G, labels, times) - y_exact).max() / np.abs(labels[0]).max()
    assert (gap <= 1e-10) if exact else (gap > 1e-3), gap


def test_solve_cli_writes_table_and_plots(tmp_path, capsys):
  code = cli.main(["solve", "poisson1d", "--arch", "erf:1", "--n-interior", "12", "--sampler", "grid",
                   "--t", "100,inf", "--out", str(tmp_path)])
  assert code == 0
  result = json.loads((tmp_path / "results.json").read_text())
  assert [r["t"] for r in result["rows"]][0] == "100"
  assert result["rows"][-1]["rel_l2_error"] < 0.05          # converged PINN, 12 points
  for name in ("solution.png", "error.png", "residual_energy.png"):
    assert (tmp_path / name).stat().st_size > 1000
  assert "max |u - u*|" in capsys.readouterr().out


def test_solve_cli_rejects_bad_arguments(tmp_path, capsys):
  assert cli.main(["solve", "poisson1d", "--arch", "nope:2", "--out", str(tmp_path)]) == 2
  assert "unknown activation" in capsys.readouterr().err
  assert cli.main(["solve", "poisson1d", "--t", "-1", "--out", str(tmp_path)]) == 2
  assert cli.main(["solve", "poisson1d", "--weights", "bogus=1", "--out", str(tmp_path)]) == 2
