"""Every bad input to ``jnas`` ends with exit code 2 and one line ``jnas: error: ...`` naming the
problem and the fix, no traceback, and nothing written; options that do not apply are refused."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from jnas import benchmarks
from jnas.cli import main

TINY = ["--space", "nb201", "--epochs", "1", "--set", "C=4", "--set", "N=1",
        "--set", "batch_size=8", "--set", "train_size=64", "--set", "val_size=64",
        "--set", "max_steps_per_epoch=2", "--set", "eval_batches=1", "--set", "xla=fastest",
        "--set", "plot=false"]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("jnas: error: ")
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """An empty working folder (default --out runs/METHOD lands here)."""
    d = tmp_path / "cwd"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


BAD = [
    # (argv, words the one line must contain)
    (["info", "nb201", "99999"], ["99999", "out of range", "0..15624"]),
    (["info", "nb201", "0", "--dataset", "mnist"], ["mnist", "cifar100"]),
    (["search", "rs", "--seed", "99999999999999999999"], ["out of range", "0.."]),
    (["search", "rs", "--seeds", "0-99999999999999"], ["out of range"]),
    (["search", "rs", "--seed", "abc"], ["invalid int", "--help"]),
    (["search", "rs", "--epohcs", "3"], ["unrecognized", "--help"]),
    (["search"], ["METHOD", "jnas methods"]),
    (["search", "darts", *TINY, "--set", "batch_size=0"], ["batch_size"]),
    (["search", "darts", *TINY, "--set", "C=0"], ["C"]),
    (["search", "darts", *TINY, "--set", "w_lr=nan"], ["w_lr"]),
    (["search", "darts", *TINY[:2], "--epochs", "0"], ["--epochs", "at least 1"]),
    (["search", "darts", *TINY[:2], "--epochs", "-1"], ["--epochs", "at least 1"]),
    (["search", "darts", "--budget", "10"], ["--budget", "one-shot", "leave it out"]),
    (["search", "darts", "--protocol", "200epoch"], ["--protocol", "one-shot"]),
    (["search", "rs", "--epochs", "3"], ["--epochs", "sample-based", "--budget"]),
    (["search", "rea", "--seeds", "0-2", "--vmap-seeds"], ["--vmap-seeds", "sample-based"]),
    (["search", "less-local", "--seeds", "0-1", "--vmap-seeds"], ["--vmap-seeds", "darts"]),
    (["search", "darts", "--seed", "3", "--vmap-seeds"], ["--vmap-seeds", "two seeds"]),
    (["search", "rs", "--budget", "0"], ["--budget", "at least 1"]),
    (["search", "rs", "--space", "nb201", "--benchmark", "nb101"],
     ["nb101 cells", "--space nb101"]),
    (["search", "rs", "--benchmark", "nb999"], ["nb999", "nb201, nb101"]),
    (["search", "rs", "--metric", "val_acc"], ["--metric", "FILE.csv", "leave it out"]),
    (["search", "rs", "--report", "test_acc"], ["--report", "FILE.csv"]),
    (["search", "rs", "--space", "nb101", "--protocol", "12epoch"], ["--protocol", "nb101"]),
    (["search", "rs", "--space", "darts"], ["no tabular benchmark", "FILE.csv"]),
    (["search", "rs", "--set", "ws.steps=5"], ["ws.", "--evaluator weight-sharing"]),
    (["search", "rea", "--evaluator", "weight-sharing"], ["only bonas"]),
    (["search", "rea", "--set", "populaton=5"], ["populaton", "valid keys"]),
    (["search", "renas", "--space", "darts"], ["supports spaces nb201, nb101"]),
    (["search", "nosuch"], ["valid methods"]),
    (["search", "rea", "--dataset", "mnist"], ["mnist", "--dataset"]),
    (["search", "rs", "--space", "nb101", "--dataset", "cifar100"], ["CIFAR-10 only"]),
    (["search", "darts", *TINY, "--dataset", "cifar100"], ["cifar10", "cifar100"]),
    (["compare", "nope"], ["not found"]),
    (["compare", ".", "--budgets", "5,x"], ["--budgets"]),
]


def _id(argv: list[str]) -> str:
    s = " ".join(argv)
    return s.replace(" ".join(TINY), "TINY").replace(" ".join(TINY[:2]), "--space nb201")


@pytest.mark.parametrize("argv,words", BAD, ids=[_id(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, words, cwd, capsys):
    assert main(argv) == 2
    line = _one_error(capsys)
    for w in words:
        assert w in line, (w, line)
    assert _files(cwd) == []


def test_csv_protocol_and_missing_metric_are_refused(cwd, capsys, tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("arch,val_acc\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,1.0\n")
    assert main(["search", "rs", "--benchmark", str(csv), "--metric", "val_acc",
                 "--protocol", "200epoch"]) == 2
    assert "--protocol" in _one_error(capsys)
    assert main(["search", "rs", "--benchmark", str(csv), "--metric", "val_acc",
                 "--dataset", "cifar100"]) == 2
    assert "--dataset" in _one_error(capsys)
    assert main(["search", "rs", "--benchmark", str(csv)]) == 2
    assert "--metric" in _one_error(capsys)
    assert _files(cwd) == []


@pytest.mark.parametrize("argv", [
    ["info", "nb201", "99999"],
    ["search", "rs", "--seed", "99999999999999999999"],
    ["search", "darts", "--set", "C=0"],
])
def test_no_traceback_in_a_real_process(argv, tmp_path):
    p = subprocess.run([sys.executable, "-m", "jnas.cli", *argv], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jnas: error: ")
    assert _files(tmp_path) == []


def test_nan_divergence_is_one_line(data_dir, cwd, capsys):
    # Huge steps and no effective clipping: the weights overflow within two steps.
    argv = ["search", "darts", *TINY, "--set", "w_lr=1e30", "--set", "w_clip=1e30",
            "--set", "w_momentum=0", "--out", "d", "--quiet"]  # --quiet: only the error
    assert main(argv) == 2
    line = _one_error(capsys)
    assert "diverged" in line and "w_lr" in line
    assert not list(cwd.rglob("result.json"))


def test_corrupt_cifar_zip_is_one_line(data_dir, tmp_path, monkeypatch, cwd, capsys):
    data = tmp_path / "data"
    (data / "cifar10").mkdir(parents=True)
    for name in ("nb201", "nb101", "SHA256SUMS"):
        os.symlink(data_dir / name, data / name)
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_STORED) as zf:
        for split in ("train", "test"):
            for c in ("airplane", "cat"):
                zf.writestr(f"{split}/{c}/0.jpg", bytes(range(256)) * 8)
    raw = bytearray(good.read_bytes())
    for i in range(100, 400):  # flip bytes inside the stored images
        raw[i] ^= 0xFF
    (data / "cifar10" / "cifar10-jpg.zip").write_bytes(bytes(raw))
    monkeypatch.setenv("JNAS_DATA_DIR", str(data))
    assert main(["search", "darts", *TINY, "--set", "data_source=auto", "--out", "d"]) == 2
    line = _one_error(capsys)
    assert "cifar10-jpg.zip" in line
    assert _files(cwd) == []


def test_unwritable_cache_warns_and_continues(data_dir, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    env = {**os.environ, "JNAS_CACHE_DIR": str(blocker / "cache")}
    env.pop("JNAS_XLA_CACHE_DIR", None)
    p = subprocess.run([sys.executable, "-m", "jnas.cli", "search", "rs", "--budget", "12",
                        "--quiet", "--out", str(tmp_path / "rs")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jnas: warning: compilation cache off")
    assert "JNAS_XLA_CACHE_DIR" in lines[0]
    assert (tmp_path / "rs" / "seed_0" / "result.json").is_file()


def test_ctrl_c_exits_130_and_the_rerun_resumes(data_dir, cwd, capsys, monkeypatch):
    real = benchmarks.TabularEvaluator.evaluate
    calls = {"n": 0}

    def interrupted(self, archs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(self, archs)

    monkeypatch.setattr(benchmarks.TabularEvaluator, "evaluate", interrupted)
    argv = ["search", "rs", "--budget", "12", "--quiet", "--out", "rs"]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jnas: interrupted:")
    assert "rs" in err[0] and "re-running the same command resumes" in err[0]
    hist = (cwd / "rs" / "seed_0" / "history.jsonl").read_text().splitlines()
    assert len(hist) == 1 + 4  # header + the 4 queries before the interrupt
    assert not (cwd / "rs" / "seed_0" / "result.json").exists()
    monkeypatch.setattr(benchmarks.TabularEvaluator, "evaluate", real)
    assert main(argv) == 0
    r = json.loads((cwd / "rs" / "seed_0" / "result.json").read_text())
    assert r["num_queries"] == 12 and r["resumed_queries"] == 4


def test_real_ctrl_c_in_a_process_is_one_line(data_dir, tmp_path):
    import signal
    import time
    out = tmp_path / "rea"
    p = subprocess.Popen([sys.executable, "-m", "jnas.cli", "search", "rea", "--budget",
                          "15000", "--quiet", "--out", str(out)], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         # Ctrl-C as in a terminal, also when pytest itself was started in
                         # the background (which leaves SIGINT ignored, and inherited)
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    hist = out / "seed_0" / "history.jsonl"
    t0 = time.time()
    while time.time() - t0 < 120 and not (hist.is_file() and hist.stat().st_size > 2000):
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=240)  # a loaded CI machine needs more than a minute
    assert p.returncode == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jnas: interrupted: "), err
    assert "re-running the same command resumes" in lines[0]


def test_budget_above_the_table_is_said_at_the_start(data_dir, cwd, capsys):
    assert main(["search", "rs", "--space", "nb101", "--budget", "600", "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    n = len(benchmarks.load_nb101_json())
    assert err == [f"jnas: note: --budget 600 is more than the {n} cells of the nb101 table; "
                   f"each run stops after {n} queries"]
    r = json.loads((cwd / "runs" / "rs" / "seed_0" / "result.json").read_text())
    assert r["num_queries"] == n


def test_finished_run_is_reported_not_replayed(data_dir, cwd, capsys):
    argv = ["search", "rea", "--budget", "12", "--quiet"]
    assert main(argv) == 0
    path = cwd / "runs" / "rea" / "seed_0" / "result.json"
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "finished earlier" in out and "--force" in out
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    assert main([*argv, "--force"]) == 0
    assert path.stat().st_mtime_ns != mtime
    assert json.loads(path.read_text())["resumed_queries"] == 0  # run again, not resumed
    assert _files(cwd / "runs" / "rea") == ["seed_0", "seed_0/history.jsonl",
                                            "seed_0/result.json"]


def test_failed_forced_run_keeps_the_old_one(data_dir, cwd, capsys, monkeypatch):
    argv = ["search", "rs", "--budget", "12", "--quiet", "--out", "x"]
    assert main(argv) == 0
    before = _files(cwd)
    saved = (cwd / "x" / "seed_0" / "result.json").read_bytes()

    def broken(self, archs):
        raise ValueError("table broke")

    monkeypatch.setattr(benchmarks.TabularEvaluator, "evaluate", broken)
    capsys.readouterr()
    assert main([*argv, "--force"]) == 2
    assert "table broke" in _one_error(capsys)
    assert _files(cwd) == before
    assert (cwd / "x" / "seed_0" / "result.json").read_bytes() == saved


def test_default_out_is_per_method(data_dir, cwd):
    assert main(["search", "rs", "--budget", "12", "--quiet"]) == 0
    assert main(["search", "rea", "--budget", "12", "--quiet"]) == 0
    assert (cwd / "runs" / "rs" / "seed_0" / "result.json").is_file()
    assert (cwd / "runs" / "rea" / "seed_0" / "result.json").is_file()


def test_settings_mismatch_names_the_field(data_dir, cwd, capsys):
    assert main(["search", "rea", "--budget", "12", "--quiet", "--out", "x"]) == 0
    before = _files(cwd)
    saved = (cwd / "x" / "seed_0" / "result.json").read_bytes()
    capsys.readouterr()
    assert main(["search", "rea", "--budget", "12", "--set", "population=5", "--out",
                 "x"]) == 2
    line = _one_error(capsys)
    assert "config.population: 10 there, 5 here" in line and "--force" in line
    assert _files(cwd) == before
    assert (cwd / "x" / "seed_0" / "result.json").read_bytes() == saved


def test_partial_run_mismatch_names_the_field(data_dir, cwd, capsys, monkeypatch):
    real = benchmarks.TabularEvaluator.evaluate
    calls = {"n": 0}

    def interrupted(self, archs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, archs)

    monkeypatch.setattr(benchmarks.TabularEvaluator, "evaluate", interrupted)
    assert main(["search", "rea", "--budget", "12", "--quiet", "--out", "x"]) == 130
    capsys.readouterr()
    assert main(["search", "rea", "--budget", "12", "--set", "sample=2", "--out", "x"]) == 2
    assert "config.sample: 3 there, 2 here" in _one_error(capsys)
