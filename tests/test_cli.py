"""`ntkpde verify` writes report.md and results.json after every claim, reports claims
that do not hold and claims that crash, and rejects unknown ids."""
import json
import re

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
  assert "unknown claim id" in capsys.readouterr().out
  assert not (tmp_path / "results.json").exists()


def test_registry_ids_are_those_of_claims_md():
  """Every registered claim id is one of docs/claims.md's ids."""
  known = {f"OPK-{i}" for i in range(1, 5)} | {f"NTKW-{i}" for i in range(1, 6)} | \
      {f"DLAB-{i}" for i in range(1, 6)} | {f"ADV-{i}" for i in range(1, 9)}
  claims = verification.all_claims()
  assert set(claims) <= known
  for c in claims.values():
    assert c.statement and c.paper
