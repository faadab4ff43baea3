"""Every ```python block of README.md runs as written (they are the documented API)."""
import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
README = Path(__file__).parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
  assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
  exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "readme"})
