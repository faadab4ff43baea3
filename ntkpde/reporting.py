"""Result files that are never lost: atomic writes with the umask's mode, JSON without
``NaN``/``Infinity``, a lock per output place, Ctrl-C that keeps what is done; and the
description of the machine that produced them."""
import contextlib
import json
import math
import os
import platform
import signal
import tempfile
import threading
from pathlib import Path

import jax

LOCK_NAME = ".ntkpde.lock"


class OutputLocked(RuntimeError):
  """Another live ntkpde run holds the lock on an output place."""


def _file_mode() -> int:
  """``0o666`` less the process umask: the mode ``open()`` would give a new file."""
  mask = os.umask(0)
  os.umask(mask)
  return 0o666 & ~mask


def _replace_atomic(path, write) -> None:
  """Calls ``write(binary_file)`` on a temporary file next to ``path``, then
  ``os.replace``: a reader (or an interrupted run) sees the old file or the new one,
  never half of one."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
  try:
    os.fchmod(fd, _file_mode())  # mkstemp creates 0600 whatever the umask
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
  """Writes ``data`` as standard JSON: NumPy/JAX arrays become lists, and a non-finite
  number becomes ``null`` with the reason in a ``"non_finite"`` field of the enclosing
  object (``{"alpha": null, "non_finite": {"alpha": "nan"}}``; for arrays, the count per
  kind). Never writes ``NaN`` or ``Infinity``, which strict JSON readers reject."""
  write_atomic(path, json.dumps(standard_json(data), indent=2, allow_nan=False) + "\n")


def standard_json(value):
  """``value`` with arrays as lists and non-finite numbers as ``None`` (see
  :func:`write_json_atomic`)."""
  clean, _ = _clean(value)
  return clean


def _kind(x: float) -> str:
  return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _clean(value):
  """``(clean value, reason or None)``: the reason says what non-finite numbers were dropped."""
  if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
    value = value.tolist()
  elif hasattr(value, "item") and not isinstance(value, (str, bytes)):
    value = value.item()
  if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
    return value, None
  if isinstance(value, float):
    return (value, None) if math.isfinite(value) else (None, _kind(value))
  if isinstance(value, dict):
    out, notes = {}, {}
    for k, v in value.items():
      out[k], note = _clean(v)
      if note is not None:
        notes[k] = note
    if notes:
      out["non_finite"] = {**(out.get("non_finite") or {}), **notes}
    return out, None
  if isinstance(value, (list, tuple)):
    items = [_clean(v) for v in value]
    counts = {}
    for _, note in items:
      if isinstance(note, str):
        counts[note] = counts.get(note, 0) + 1
    reason = ", ".join(f"{n} {k}" for k, n in counts.items()) or None
    return [v for v, _ in items], reason
  raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


@contextlib.contextmanager
def output_lock(place, log=print):
  """Holds ``place`` (an output folder, or a results file) for this process: a lock file
  (``place/.ntkpde.lock`` or ``place.lock``) holding the owner's pid, created with
  ``O_EXCL``. A lock whose owner is no longer running is taken over (with a message);
  a live owner raises :class:`OutputLocked` naming it, so two runs never interleave
  their writes. Removed on exit."""
  place = Path(place)
  lock = place / LOCK_NAME if place.is_dir() else place.with_name(place.name + ".lock")
  for _ in range(3):
    try:
      fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _file_mode())
    except FileExistsError:
      try:
        owner = int(lock.read_text().strip() or 0)
      except (OSError, ValueError):
        owner = 0
      if owner and owner != os.getpid() and _pid_alive(owner):
        raise OutputLocked(f"{place} is in use by another ntkpde run (pid {owner}, lock file "
                           f"{lock}); wait for it to finish or choose another --out.") from None
      log(f"taking over the stale lock {lock} of pid {owner or '?'} (no longer running)")
      with contextlib.suppress(FileNotFoundError):
        lock.unlink()
      continue
    with os.fdopen(fd, "w") as f:
      f.write(f"{os.getpid()}\n")
    break
  else:
    raise OutputLocked(f"could not take the lock {lock}; remove it if no ntkpde run uses {place}.")
  try:
    yield
  finally:
    with contextlib.suppress(OSError):
      if lock.read_text().strip() == str(os.getpid()):
        lock.unlink()


class Interrupt:
  """Ctrl-C for long loops: ``with Interrupt() as stop:`` makes SIGINT raise
  ``KeyboardInterrupt`` as usual and also set ``stop.requested``, so a loop that checks it
  between items stops even when the exception was swallowed on its way (JAX's garbage-
  collection callbacks ignore exceptions). Restores the previous handler on exit."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def _handler(self, signum, frame):
    self.requested = True
    raise KeyboardInterrupt

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGINT, self._handler)
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGINT, self._previous)
    return False


def device_description() -> str:
  """E.g. ``"cpu (x86_64, 2 cores), jax 0.10.2"`` or ``"NVIDIA H100 80GB HBM3, jax 0.11.2"``."""
  d = jax.devices()[0]
  if d.platform == "cpu":
    name = f"cpu ({platform.machine()}, {os.cpu_count()} cores)"
  else:
    name = d.device_kind
  return f"{name}, jax {jax.__version__}"
