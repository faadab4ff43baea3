"""Atomic result files and the description of the machine that produced them."""
import json
import os
import platform
import tempfile
from pathlib import Path

import jax


def _replace_atomic(path, write) -> None:
  """Calls ``write(binary_file)`` on a temporary file next to ``path``, then
  ``os.replace``: a reader (or an interrupted run) sees the old file or the new one,
  never half of one."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def write_atomic(path, text: str) -> None:
  """Writes ``text`` to ``path`` atomically (see :func:`_replace_atomic`)."""
  _replace_atomic(path, lambda f: f.write(text.encode()))


def save_figure(fig, path, dpi: int = 120) -> str:
  """Lays out a Matplotlib figure, writes it to ``path`` as PNG atomically, closes
  it, and returns the path as a string."""
  fig.tight_layout()
  _replace_atomic(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
  import matplotlib.pyplot as plt
  plt.close(fig)
  return str(path)


def write_json_atomic(path, data) -> None:
  write_atomic(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
  if hasattr(value, "tolist"):
    return value.tolist()
  if hasattr(value, "item"):
    return value.item()
  raise TypeError(f"cannot write {type(value).__name__} to JSON")


def device_description() -> str:
  """E.g. ``"cpu (x86_64, 2 cores), jax 0.10.2"`` or ``"NVIDIA H100 80GB HBM3, jax 0.11.2"``."""
  d = jax.devices()[0]
  if d.platform == "cpu":
    name = f"cpu ({platform.machine()}, {os.cpu_count()} cores)"
  else:
    name = d.device_kind
  return f"{name}, jax {jax.__version__}"
