"""The GA-NAS/baseline comparison script (experiments/ganas_nb201.py) on the real NB201 table:
RS, REA and BONAS through the same loop, records per seed, resume from ``runs.jsonl``."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("ganas_nb201",
                                                  ROOT / "experiments" / "ganas_nb201.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.BUDGETS = (10, 20)  # tiny budgets (BONAS: 10 warm-up cells + one round of k = 10)
    return mod


def test_comparison_script_runs_bonas_and_resumes(data_dir, tmp_path, capsys):
    mod = _script()
    argv = ["--methods", "rs,rea,bonas", "--budget", "20", "--seeds", "0-1",
            "--datasets", "cifar10", "--out", str(tmp_path)]
    mod.main(argv)
    first = capsys.readouterr().out
    recs = [json.loads(line) for line in open(tmp_path / "runs.jsonl")]
    assert sorted((r["method"], r["seed"]) for r in recs) == sorted(
        (m, s) for m in ("rs", "rea", "bonas") for s in (0, 1))
    for r in recs:
        new = [h for h in r["result"]["history"] if h.get("new", True)]
        assert len(new) == 20 and len({h["arch"] for h in new}) == 20
    summary = json.loads((tmp_path / "summary_cifar10_12epoch.json").read_text())
    assert set(summary["scores"]) == {"rs", "rea", "bonas"}
    # the best signal (what decisions use) is reported next to the test column
    assert "best signal (what the searcher sees" in first
    for r in (x["result"] for x in recs if x["method"] == "rea"):
        sig = [h["signal"] for h in r["history"] if h.get("new", True)]
        assert max(sig[:10]) in summary["signals"]["rea"]["10"]
    assert "| bonas (n=2) |" in first and "| method − rea (paired) |" in first
    # a second run loads every seed instead of re-running it, with the same summary
    mod.main(argv)
    second = capsys.readouterr().out
    assert second.count("loaded from") == 6
    assert len(open(tmp_path / "runs.jsonl").readlines()) == 6
    assert json.loads((tmp_path / "summary_cifar10_12epoch.json").read_text())["scores"] \
        == summary["scores"]
    assert (tmp_path / "ganas_cifar10_12epoch.png").stat().st_size > 0
    # a record written under another config (here: none recorded, as before the field
    # existed) is not reused: that seed alone is re-run, to the same result
    recs = [json.loads(line) for line in open(tmp_path / "runs.jsonl")]
    stale = next(r for r in recs if r["method"] == "rea" and r["seed"] == 1)
    del stale["config"]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    mod.main(argv)
    third = capsys.readouterr().out
    assert third.count("loaded from") == 5 and "rea seed 1: 10:" in third
    # --set overrides are GA-NAS settings: the baselines' records are reused under them
    mod.main(argv + ["--set", "g_reset=True"])
    assert capsys.readouterr().out.count("loaded from") == 6
    assert json.loads((tmp_path / "summary_cifar10_12epoch.json").read_text())["scores"] \
        == summary["scores"]


def test_comparison_script_rejects_unknown_method(data_dir, tmp_path):
    with pytest.raises(Exception, match="nosuch"):
        _script().main(["--methods", "nosuch", "--budget", "20", "--seeds", "0",
                        "--out", str(tmp_path)])
