"""Every notebook (jupytext percent script in notebooks/) runs top to bottom at small
sizes, and its committed .ipynb holds the same cells as the script."""
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.py"))


def test_there_are_notebooks():
  assert any(p.stem == "quickstart" for p in NOTEBOOKS)


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_paired_ipynb_matches_script(script):
  paired = script.with_suffix(".ipynb")
  assert paired.exists(), f"run `jupytext --to ipynb {script}` to create {paired.name}"
  sources = [c.source for c in jupytext.read(script).cells]
  assert [c.source for c in jupytext.read(paired).cells] == sources, (
      f"{paired.name} is out of sync: run `jupytext --sync {script}`")


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(script, monkeypatch, tmp_path):
  monkeypatch.setenv("NTKPDE_SMALL", "1")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  notebook = jupytext.read(script)
  client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(tmp_path)}})
  client.execute()
  errors = [o for c in notebook.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]
  assert not errors
