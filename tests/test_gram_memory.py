"""benchmarks/gram_memory.py --smoke runs: gram's memory in a child process, and the Gram
and large_eigen on 1 and 2 host devices, whose results it requires to be identical."""
import sys
from pathlib import Path


def test_gram_memory_benchmark_smoke(capsys):
  sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
  try:
    import gram_memory
  finally:
    sys.path.pop(0)
  assert gram_memory.main(["--smoke"]) == 0
  out = capsys.readouterr().out
  assert "| 200 | 0 |" in out and "| 2 |" in out
