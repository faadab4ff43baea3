"""Every command-line mistake is one line on stderr naming the option and the value, exit code
2, before any work: nothing printed on stdout, no output folder created, no file changed
(issue 10, section 5). Run in-process through ``ntkpde.cli.main``."""
import json
import os

import pytest

from ntkpde import cli

SOLVE = ["solve", "poisson1d"]
SPEC = ["spectrum", "--dims", "1", "--points", "4"]

# (argv with OUT/FILE placeholders, fragments the one-line message must contain)
CASES = {
    # solve: every option
    "solve-out-is-file": (SOLVE + ["--out", "FILE"], ["--out", "not a folder"]),
    "solve-out-under-file": (SOLVE + ["--out", "FILE/sub"], ["--out", "is a file"]),
    "solve-out-empty": (SOLVE + ["--out", ""], ["--out", "''"]),
    "solve-arch-unknown": (SOLVE + ["--arch", "tanhh:2"], ["--arch", "'tanhh:2'", "unknown"]),
    "solve-arch-depth-text": (SOLVE + ["--arch", "erf:x"], ["--arch", "'erf:x'", "DEPTH"]),
    "solve-arch-depth-zero": (SOLVE + ["--arch", "erf:0"], ["--arch", "'erf:0'"]),
    "solve-arch-depth-float": (SOLVE + ["--arch", "erf:1.5"], ["--arch", "'erf:1.5'"]),
    "solve-arch-relu-derivative": (SOLVE + ["--arch", "relu:2"], ["--arch", "'relu:2'",
                                                                  "order 2"]),
    "solve-arch-abs-derivative": (SOLVE + ["--arch", "abs:1"], ["--arch", "'abs:1'"]),
    "solve-arch-code": (SOLVE + ["--arch", "__import__('os'):1"], ["--arch", "unknown"]),
    "solve-n-interior-zero": (SOLVE + ["--n-interior", "0"], ["--n-interior", "'0'"]),
    "solve-n-interior-negative": (SOLVE + ["--n-interior=-3"], ["--n-interior", "'-3'"]),
    "solve-n-interior-text": (SOLVE + ["--n-interior", "abc"], ["--n-interior", "'abc'"]),
    "solve-n-interior-float": (SOLVE + ["--n-interior", "2.5"], ["--n-interior", "'2.5'"]),
    "solve-lr-zero": (SOLVE + ["--learning-rate", "0"], ["--learning-rate", "'0'"]),
    "solve-lr-negative": (SOLVE + ["--learning-rate=-1"], ["--learning-rate", "'-1'"]),
    "solve-lr-nan": (SOLVE + ["--learning-rate", "nan"], ["--learning-rate", "'nan'"]),
    "solve-lr-inf": (SOLVE + ["--learning-rate", "inf"], ["--learning-rate", "'inf'"]),
    "solve-lr-text": (SOLVE + ["--learning-rate", "fast"], ["--learning-rate", "'fast'"]),
    "solve-diag-reg-negative": (SOLVE + ["--diag-reg=-1e-3"], ["--diag-reg", "'-1e-3'"]),
    "solve-diag-reg-nan": (SOLVE + ["--diag-reg", "nan"], ["--diag-reg", "'nan'"]),
    "solve-weights-text": (SOLVE + ["--weights", "interior=abc"], ["--weights",
                                                                   "'interior=abc'", "'abc'"]),
    "solve-weights-negative": (SOLVE + ["--weights", "interior=-1"], ["--weights",
                                                                      "'interior=-1'"]),
    "solve-weights-all-zero": (SOLVE + ["--weights", "interior=0,boundary=0"],
                               ["--weights", "all weights are zero"]),
    "solve-weights-channel": (SOLVE + ["--weights", "nope=1"], ["--weights", "'nope'"]),
    "solve-weights-no-value": (SOLVE + ["--weights", "interior"], ["--weights", "'interior'"]),
    "solve-weights-empty": (SOLVE + ["--weights", ""], ["--weights", "''"]),
    "solve-weights-nan": (SOLVE + ["--weights", "boundary=nan"], ["--weights", "'nan'"]),
    "solve-t-text": (SOLVE + ["--t", "abc"], ["--t", "'abc'"]),
    "solve-t-empty": (SOLVE + ["--t", ""], ["--t", "''"]),
    "solve-t-double-comma": (SOLVE + ["--t", "10,,inf"], ["--t", "'10,,inf'"]),
    "solve-t-negative": (SOLVE + ["--t", "10,-1"], ["--t", "'-1'"]),
    "solve-t-nan": (SOLVE + ["--t", "nan"], ["--t", "'nan'"]),
    "solve-t-minus-inf": (SOLVE + ["--t=-inf"], ["--t", "'-inf'"]),
    "solve-size-text": (SOLVE + ["--size", "interior=abc"], ["--size", "'interior=abc'"]),
    "solve-size-zero": (SOLVE + ["--size", "boundary=0"], ["--size", "'boundary=0'"]),
    "solve-size-channel": (SOLVE + ["--size", "nope=3"], ["--size", "'nope'"]),
    "solve-size-no-value": (SOLVE + ["--size", "interior"], ["--size", "'interior'"]),
    "solve-n-test-zero": (SOLVE + ["--n-test", "0"], ["--n-test", "'0'"]),
    "solve-n-test-one": (SOLVE + ["--n-test", "1"], ["--n-test", "1"]),
    "solve-n-test-text": (SOLVE + ["--n-test", "many"], ["--n-test", "'many'"]),
    "solve-w-std-zero": (SOLVE + ["--W-std", "0"], ["--W-std", "'0'"]),
    "solve-b-std-negative": (SOLVE + ["--b-std=-1"], ["--b-std", "'-1'"]),
    "solve-sampler": (SOLVE + ["--sampler", "magic"], ["--sampler", "'magic'"]),
    "solve-seed-text": (SOLVE + ["--seed", "x"], ["--seed", "'x'"]),
    "solve-problem-unknown": (["solve", "nope"], ["problem", "'nope'"]),
    "solve-unknown-option": (SOLVE + ["--wat", "1"], ["--wat"]),
    "solve-output-code": (SOLVE + ["--output-b", "__import__('os').getcwd()"],
                          ["--output-b", "__import__", "not allowed"]),
    "solve-output-unknown-name": (SOLVE + ["--output-a", "y"], ["--output-a", "'y'"]),
    "solve-output-zero": (SOLVE + ["--output-b", "0"], ["--output-b", "B = 0 at every"]),
    "solve-output-part-of-boundary": (SOLVE + ["--output-b", "x"], ["--output-b", "'boundary'",
                                                                    "B = 0 at some"]),
    # spectrum
    "spectrum-out-suffix": (SPEC + ["--out", "OUT/sweep.txt"], ["--out", "sweep.txt", ".json"]),
    "spectrum-out-truncated-json": (SPEC + ["--out", "TRUNCATED"], ["--out", "truncated.json",
                                                                    "not a spectrum sweep"]),
    "spectrum-out-dict-json": (SPEC + ["--out", "DICT"], ["--out", "dict.json",
                                                          "not a spectrum sweep"]),
    "spectrum-out-other-csv": (SPEC + ["--out", "CSV"], ["--out", "other.csv", "columns"]),
    "spectrum-out-folder": (SPEC + ["--out", "FOLDER.json"], ["--out", "not a file"]),
    "spectrum-points-one": (["spectrum", "--points", "1", "--out", "OUT/s.json"],
                            ["--points", "1"]),
    "spectrum-points-text": (["spectrum", "--points", "x"], ["--points", "'x'"]),
    "spectrum-dims-five": (["spectrum", "--dims", "5", "--out", "OUT/s.json"], ["--dims", "5"]),
    "spectrum-dims-zero": (["spectrum", "--dims", "0"], ["--dims", "'0'"]),
    "spectrum-too-large": (["spectrum", "--dims", "1", "4", "--points", "32", "--out", "OUT/s.json"],
                           ["--points 32", "--dims 4", "GiB"]),
    "spectrum-depths-zero": (["spectrum", "--depths", "0"], ["--depths", "'0'"]),
    "spectrum-activation": (SPEC + ["--activations", "erf", "tanhh", "--out", "OUT/s.json"],
                            ["--activations", "tanhh"]),
    "spectrum-a-nan": (SPEC + ["--a", "nan"], ["--a", "'nan'"]),
    "spectrum-w-std": (SPEC + ["--W-std", "-1"], ["--W-std", "'-1'"]),
    "spectrum-kernel": (SPEC + ["--kernels", "cov"], ["--kernels", "'cov'"]),
    "spectrum-plot-csv": (SPEC + ["--out", "OUT/s.csv", "--plot", "OUT/p.png"],
                          ["--plot", "needs a .json"]),
    "spectrum-plot-suffix": (SPEC + ["--out", "OUT/s.json", "--plot", "OUT/p.jpg"],
                             ["--plot", "p.jpg", ".png"]),
    # verify
    "verify-only-unknown": (["verify", "--only", "NOPE-1", "--out", "OUT"], ["--only", "NOPE-1"]),
    "verify-out-is-file": (["verify", "--out", "FILE"], ["--out", "not a folder"]),
    "verify-resume-malformed": (["verify", "--resume", "--out", "RESULTS_BAD"],
                                ["results.json", "not a verify results file"]),
    "verify-results-dict": (["verify", "--only", "OPK-1", "--out", "RESULTS_DICT"],
                            ["results.json", "not a verify results file"]),
    "verify-quick-and-full": (["verify", "--quick", "--full"], ["--full", "--quick"]),
    # the command itself
    "no-command": ([], ["command"]),
    "unknown-command": (["fly"], ["'fly'"]),
}


@pytest.fixture
def places(tmp_path):
  (tmp_path / "file").write_text("a file\n")
  (tmp_path / "truncated.json").write_text('[{"kernel": "ntk", "oper')
  (tmp_path / "dict.json").write_text('{"not": "a sweep"}\n')
  (tmp_path / "other.csv").write_text("a,b\n1,2\n")
  (tmp_path / "folder.json").mkdir()
  for name, text in [("bad", "[{]"), ("dict", '{"id": "OPK-1"}')]:
    (tmp_path / f"results_{name}").mkdir()
    (tmp_path / f"results_{name}" / "results.json").write_text(text)
  return tmp_path, {"OUT": str(tmp_path / "out"), "FILE": str(tmp_path / "file"),
                    "TRUNCATED": str(tmp_path / "truncated.json"),
                    "DICT": str(tmp_path / "dict.json"), "CSV": str(tmp_path / "other.csv"),
                    "FOLDER": str(tmp_path / "folder"),
                    "RESULTS_BAD": str(tmp_path / "results_bad"),
                    "RESULTS_DICT": str(tmp_path / "results_dict")}


def _snapshot(root):
  return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, p.stat().st_mode)
          for p in sorted(root.rglob("*"))}


def _fill(arg, names):
  for key in sorted(names, key=len, reverse=True):
    arg = arg.replace(key, names[key])
  return arg


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_mistake_is_one_line_before_any_work(case, places, capsys, monkeypatch):
  root, names = places
  argv, fragments = CASES[case]
  monkeypatch.chdir(root)  # default outputs (solve_out/, spectrum_sweep.json) land here
  before = _snapshot(root)
  assert cli.main([_fill(a, names) for a in argv]) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1, captured.err
  for fragment in fragments:
    assert fragment in lines[0], (fragment, lines[0])
  assert _snapshot(root) == before  # nothing created, nothing changed


def test_cli_unwritable_out_is_refused(tmp_path, capsys, monkeypatch):
  locked = tmp_path / "locked"
  locked.mkdir(mode=0o500)
  if os.geteuid() == 0:  # root ignores permission bits: make os.access read them as a user would
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: real_access(path, mode) and not (
        os.path.samefile(path, locked) and mode & os.W_OK))
  assert cli.main(SOLVE + ["--out", str(locked / "out")]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "not writable" in err[0] and str(locked) in err[0], err
  assert list(locked.iterdir()) == []


def test_spectrum_ctrl_c_keeps_finished_configurations(tmp_path, monkeypatch, capsys):
  """Ctrl-C in the second configuration: the first stays in the file, the exit code is 130,
  and a rerun resumes with only the missing one."""
  import signal

  from ntkpde.commands import spectrum as command
  calls = []
  real = command._problem

  def interrupting(config):
    calls.append(config["depth"])
    if len(calls) == 2:
      signal.raise_signal(signal.SIGINT)  # delivered to this thread, handled before it returns
    return real(config)
  monkeypatch.setattr(command, "_problem", interrupting)
  out = tmp_path / "s.json"
  argv = ["spectrum", "--dims", "1", "--points", "4", "--depths", "1", "2", "--operators",
          "identity", "--out", str(out)]
  assert cli.main(argv) == 130
  assert [r["depth"] for r in json.loads(out.read_text())] == [1]
  assert "interrupted" in capsys.readouterr().out
  calls.clear()
  assert cli.main(argv) == 0
  assert calls == [2] and len(json.loads(out.read_text())) == 2
  assert not (tmp_path / "s.json.lock").exists()
