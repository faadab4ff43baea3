"""`ntkpde verify` writes report.md and results.json after every claim, reports claims
that do not hold and claims that crash, and rejects unknown ids."""
import json
import re

import numpy as np
import pytest

import verification
from ntkpde import cli
from verification import Claim, Outcome


def _holds(ctx):
  path = ctx.figure("fake.png")
  path.write_bytes(b"\x89PNG\r\n")
  return Outcome(measured={"gap": 1e-12}, expected="gap < 1e-10", tolerance="1e-10",
                 passed=True, figures=[path])


def _fails(ctx):
  return Outcome(measured={"||r||": 0.5}, expected="||r|| < 0.1", tolerance="0.1", passed=False)


def _crashes(ctx):
  raise RuntimeError("boom")


@pytest.fixture
def fake_claims(monkeypatch):
  claims = {c.id: c for c in [Claim("FAKE-1", "paper A", "holds", _holds),
                              Claim("FAKE-2", "paper A", "does not hold", _fails),
                              Claim("FAKE-3", "paper B", "crashes", _crashes)]}
  monkeypatch.setattr(verification, "all_claims", lambda: claims)
  return claims


def test_verify_writes_report_and_results(fake_claims, tmp_path, capsys):
  code = cli.main(["verify", "--quick", "--out", str(tmp_path)])
  assert code == 1  # one claim crashed
  records = json.loads((tmp_path / "results.json").read_text())
  assert [r["id"] for r in records] == ["FAKE-1", "FAKE-2", "FAKE-3"]
  for r in records:
    assert set(r) >= {"id", "paper", "statement", "measured", "expected", "tolerance",
                      "passed", "seconds", "device"}
  assert [r["passed"] for r in records] == [True, False, None]
  assert [r.get("verdict") for r in records] == ["holds as stated", "does not hold", None]
  assert "boom" in records[2]["error"]
  report = (tmp_path / "report.md").read_text()
  assert "1 holds as stated, 0 holds in a weaker or different form, 1 does not hold" in report
  assert "| FAKE-2 | **does not hold** |" in report
  rows = [line for line in report.splitlines() if line.startswith("| FAKE-")]
  assert len(rows) == 3 and all(len(re.findall(r"(?<!\\)\|", row)) == 6 for row in rows)
  assert "| \\|\\|r\\|\\| | 0.5 |" in report  # norms escaped, not mangled
  assert "figures/fake.png" in report and (tmp_path / "figures" / "fake.png").exists()
  assert "1 of 3 claims hold, 1 errors" in capsys.readouterr().out


def test_verify_only_runs_selected(fake_claims, tmp_path):
  assert cli.main(["verify", "--only", "FAKE-2", "--out", str(tmp_path)]) == 0
  records = json.loads((tmp_path / "results.json").read_text())
  assert [r["id"] for r in records] == ["FAKE-2"]


def test_verify_resume_keeps_finished_claims_and_reruns_errors(fake_claims, tmp_path,
                                                              monkeypatch):
  assert cli.main(["verify", "--quick", "--out", str(tmp_path)]) == 1
  calls = []
  for cid, claim in fake_claims.items():
    monkeypatch.setattr(claim, "run", lambda ctx, cid=cid, f=claim.run: calls.append(cid) or f(ctx))
  assert cli.main(["verify", "--quick", "--resume", "--out", str(tmp_path)]) == 1
  assert calls == ["FAKE-3"]  # only the claim that crashed runs again
  records = json.loads((tmp_path / "results.json").read_text())
  assert [r["id"] for r in records] == ["FAKE-1", "FAKE-2", "FAKE-3"]
  assert [r["passed"] for r in records] == [True, False, None]
  calls.clear()
  cli.main(["verify", "--full", "--resume", "--out", str(tmp_path)])  # other mode: all run
  assert calls == ["FAKE-1", "FAKE-2", "FAKE-3"]


def test_verify_unknown_id_is_rejected(fake_claims, tmp_path, capsys):
  assert cli.main(["verify", "--only", "NOPE-9", "--out", str(tmp_path)]) == 2
  captured = capsys.readouterr()
  assert "--only NOPE-9: unknown claim id" in captured.err and captured.out == ""
  assert len(captured.err.strip().splitlines()) == 1
  assert not (tmp_path / "results.json").exists()


def test_verify_only_and_resume_merge_records_by_id(fake_claims, tmp_path, monkeypatch):
  """--only X on a folder with finished claims keeps the others' records (in results.json
  and report.md); the newest record of a claim replaces its older one."""
  assert cli.main(["verify", "--out", str(tmp_path)]) == 1
  first = {r["id"]: r for r in json.loads((tmp_path / "results.json").read_text())}
  monkeypatch.setattr(fake_claims["FAKE-2"], "run", _holds)
  assert cli.main(["verify", "--only", "FAKE-2", "--out", str(tmp_path)]) == 0
  records = json.loads((tmp_path / "results.json").read_text())
  assert [r["id"] for r in records] == ["FAKE-1", "FAKE-2", "FAKE-3"]
  by_id = {r["id"]: r for r in records}
  assert by_id["FAKE-1"] == first["FAKE-1"] and by_id["FAKE-3"] == first["FAKE-3"]
  assert first["FAKE-2"]["passed"] is False and by_id["FAKE-2"]["passed"] is True  # newest wins
  report = (tmp_path / "report.md").read_text()
  assert all(f"## FAKE-{i}" in report for i in (1, 2, 3))
  monkeypatch.setattr(fake_claims["FAKE-3"], "run", _holds)
  assert cli.main(["verify", "--resume", "--only", "FAKE-1", "--only", "FAKE-3",
                   "--out", str(tmp_path)]) == 0
  records = json.loads((tmp_path / "results.json").read_text())
  assert [r["passed"] for r in records] == [True, True, True]   # FAKE-3 rerun, newest wins


def test_verify_lock_refuses_a_second_live_run_and_takes_over_a_stale_one(fake_claims, tmp_path,
                                                                         capsys):
  import subprocess
  live = subprocess.Popen(["sleep", "30"])
  try:
    (tmp_path / ".ntkpde.lock").write_text(f"{live.pid}\n")
    assert cli.main(["verify", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"pid {live.pid}" in err and "another ntkpde run" in err
    assert not (tmp_path / "results.json").exists()
  finally:
    live.kill()
    live.wait()
  # the owner is gone: the lock is stale and taken over with a message
  assert cli.main(["verify", "--only", "FAKE-1", "--out", str(tmp_path)]) == 0
  assert "stale lock" in capsys.readouterr().out
  assert not (tmp_path / ".ntkpde.lock").exists()  # released at the end


def test_verify_ctrl_c_stops_and_keeps_finished_claims(fake_claims, tmp_path, monkeypatch):
  import signal

  def interrupted(ctx):
    signal.raise_signal(signal.SIGINT)  # delivered to this thread, handled before it returns
    raise AssertionError("not reached")
  monkeypatch.setattr(fake_claims["FAKE-2"], "run", interrupted)
  assert cli.main(["verify", "--out", str(tmp_path)]) == 130
  records = json.loads((tmp_path / "results.json").read_text())
  assert [r["id"] for r in records] == ["FAKE-1"]
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_verify_ctrl_c_swallowed_on_its_way_still_stops_the_loop(fake_claims, tmp_path,
                                                                  monkeypatch):
  """A SIGINT whose KeyboardInterrupt is swallowed (as in JAX's GC callbacks) still stops the
  run after the claim in progress, which is kept."""
  import signal
  calls = []

  def swallowing(ctx):
    try:
      signal.raise_signal(signal.SIGINT)  # delivered to this thread, handled before it returns
    except KeyboardInterrupt:
      pass
    calls.append("FAKE-1")
    return _holds(ctx)
  monkeypatch.setattr(fake_claims["FAKE-1"], "run", swallowing)
  monkeypatch.setattr(fake_claims["FAKE-2"], "run", lambda ctx: calls.append("FAKE-2"))
  assert cli.main(["verify", "--out", str(tmp_path)]) == 130
  assert calls == ["FAKE-1"]
  assert [r["id"] for r in json.loads((tmp_path / "results.json").read_text())] == ["FAKE-1"]


def test_output_files_honour_the_umask(fake_claims, tmp_path):
  import os
  old = os.umask(0o027)
  try:
    assert cli.main(["verify", "--only", "FAKE-1", "--out", str(tmp_path)]) == 0
  finally:
    os.umask(old)
  for name in ("results.json", "report.md", "figures/fake.png"):
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name


def test_results_json_is_standard_json_with_reasons_for_non_finite_values(tmp_path):
  from ntkpde import reporting
  reporting.write_json_atomic(tmp_path / "r.json", {"alpha": float("nan"), "kappa": np.inf,
                                                    "lam": np.array([1.0, np.nan, -np.inf])})
  text = (tmp_path / "r.json").read_text()
  assert "NaN" not in text and "Infinity" not in text
  data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard {c}"))
  assert data["alpha"] is None and data["kappa"] is None and data["lam"] == [1.0, None, None]
  assert data["non_finite"] == {"alpha": "nan", "kappa": "inf", "lam": "1 nan, 1 -inf"}


def test_registry_ids_are_those_of_claims_md():
  """Every registered claim id is one of docs/claims.md's ids."""
  known = {f"OPK-{i}" for i in range(1, 5)} | {f"NTKW-{i}" for i in range(1, 6)} | \
      {f"DLAB-{i}" for i in range(1, 6)} | {f"ADV-{i}" for i in range(1, 9)}
  claims = verification.all_claims()
  assert set(claims) <= known
  for c in claims.values():
    assert c.statement and c.paper


def test_solve_prints_no_width_and_the_real_residual_energies(tmp_path, capsys):
  """An infinite-width run names no width; the energies are those of the ensemble mean at
  the training points (at t = inf: rounding, printed as such, not a flow-rounded 0)."""
  argv = ["solve", "poisson1d", "--arch", "erf:1", "--n-interior", "6", "--n-test", "5",
          "--t", "10,inf", "--out", str(tmp_path)]
  assert cli.main(argv) == 0
  out = capsys.readouterr().out
  assert "infinite-width mlp(depth=1" in out and "width=" not in out
  rows = json.loads((tmp_path / "results.json").read_text())["rows"]
  early, limit = rows[0]["residual_energy"], rows[1]["residual_energy"]
  for channel in early:
    assert 0 <= limit[channel] < 1e-12 * max(early.values())
    assert f"{early[channel]:14.3e}" in out and f"{limit[channel]:14.3e}" in out
  assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
  import os
  mask = os.umask(0)
  os.umask(mask)
  return mask
