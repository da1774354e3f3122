"""Tests for ``jnas compare`` (jnas.compare): settings checks, reached budgets, one-shot runs."""
import json

import pytest

from jnas import compare
from jnas.cli import main


def _sample(method, seed, n, dataset="cifar10", protocol="12epoch", base=80.0):
    traj = [[q, base + q / n] for q in range(1, n + 1)]
    return {"method": method, "space": "nb201", "dataset": dataset, "seed": seed,
            "best_arch": "x", "bench": {"protocol": protocol}, "trajectory": traj,
            "trajectory_sim_s": [[10.0 * q, v] for q, v in traj], "history": [],
            "num_queries": n, "wall_s": 0.1, "compile_s": 0.0, "config": {},
            "evaluator": {"benchmark": "nb201", "dataset": dataset, "protocol": protocol}}


def _oneshot(method, seed, epochs, base=60.0):
    return {"method": method, "space": "nb201", "dataset": "cifar10", "seed": seed,
            "best_arch": "x", "bench": {"nb201_index": 3, "test_accuracy": base + epochs},
            "trajectory": [[e, base + e + seed] for e in range(1, epochs + 1)],
            "history": [{"epoch": e} for e in range(1, epochs + 1)], "alpha_final": {},
            "wall_s": 1.0, "compile_s": 0.5, "config": {}}


def _write(folder, records):
    for r in records:
        p = folder / f"seed_{r['seed']}" / "result.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(r))
    return str(folder)


def test_unreached_budgets_are_skipped_not_nan(tmp_path):
    d = _write(tmp_path / "rs", [_sample("rs", s, 60) for s in range(3)])
    text = compare.compare([d], budgets=[50, 100, 200])
    assert "| 50 |" in text and "| 100 |" not in text and "nan" not in text
    assert "not reached by any run: 100, 200 queries" in text
    assert "nb201 · cifar10 · 12epoch" in text


def test_different_datasets_are_refused_unless_mixed(tmp_path, capsys):
    a = _write(tmp_path / "rs", [_sample("rs", 0, 20)])
    b = _write(tmp_path / "rea", [_sample("rea", 0, 20, dataset="cifar100")])
    with pytest.raises(ValueError, match="differ in benchmark, dataset or protocol"):
        compare.compare([a, b], budgets=[10])
    assert main(["compare", a, b, "--budgets", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jnas: error:") and "--mixed" in err[0]
    assert "cifar100" in err[0] and "cifar10 " in err[0] + " "
    text = compare.compare([a, b], budgets=[10], mixed=True)
    assert "## nb201 · cifar10 · 12epoch" in text and "## nb201 · cifar100 · 12epoch" in text


def test_different_protocols_are_refused(tmp_path):
    a = _write(tmp_path / "a", [_sample("rs", 0, 20)])
    b = _write(tmp_path / "b", [_sample("rs", 0, 20, protocol="200epoch")])
    with pytest.raises(ValueError, match="200epoch"):
        compare.compare([a, b], budgets=[10])


def test_plot_titles_with_setting_and_separates_panels(tmp_path):
    pytest.importorskip("matplotlib")
    a = _write(tmp_path / "rs", [_sample("rs", s, 30) for s in range(2)])
    b = _write(tmp_path / "rea", [_sample("rea", 0, 30, dataset="cifar100")])
    groups = compare.load_groups([a, b])
    assert list(compare.panels(groups)) == ["nb201 · cifar10 · 12epoch",
                                            "nb201 · cifar100 · 12epoch"]
    png = compare.plot_groups(groups, tmp_path / "p.png")
    assert png.stat().st_size > 1000


def test_oneshot_runs_are_summarised_and_plotted_by_epoch(tmp_path):
    d = _write(tmp_path / "darts", [_oneshot("darts", s, 3) for s in range(2)])
    (g,) = compare.load_groups([d])
    assert g.kind == "oneshot" and g.setting == ("nb201", "cifar10", "one-shot")
    epochs, mu, sd, n = compare.epoch_curve(g.results)
    assert epochs.tolist() == [1, 2, 3] and mu.tolist() == [61.5, 62.5, 63.5]
    assert n.tolist() == [2, 2, 2]
    text = compare.compare([d], plot=tmp_path / "d.png")
    assert "| epoch |" in text and "| 3 | 63.50 ± 0.50 | 2 |" in text
    assert (tmp_path / "d.png").stat().st_size > 1000


def test_oneshot_and_sample_runs_need_mixed(tmp_path):
    a = _write(tmp_path / "rs", [_sample("rs", 0, 20)])
    b = _write(tmp_path / "darts", [_oneshot("darts", 0, 2)])
    with pytest.raises(ValueError, match="--mixed"):
        compare.compare([a, b], budgets=[10])
    assert "| epoch |" in compare.compare([a, b], budgets=[10], mixed=True)


def test_compare_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]


def test_existing_run_states_and_named_differences(tmp_path):
    rec = _sample("rea", 0, 20)
    rec["config"] = {"population": 10}
    d = tmp_path / "rea" / "seed_0"
    _write(tmp_path / "rea", [rec])
    here = {"method": "rea", "space": "nb201", "dataset": "cifar10",
            "config": {"population": 10, "sample": 3}}
    assert compare.existing_run(tmp_path / "nothing", here, 20) == "new"
    # a field added since: its default counts as what the saved run used
    assert compare.existing_run(d, here, 20, {"population": 10, "sample": 3}) == "finished"
    with pytest.raises(ValueError, match=r"config.sample: '<unset>' there, 3 here"):
        compare.existing_run(d, here, 20)
    assert compare.existing_run(d, here, 30, {"sample": 3}) == "resume"  # extended
    with pytest.raises(ValueError, match="num_queries: 20 there, 10 here"):
        compare.existing_run(d, here, 10, {"sample": 3})
    with pytest.raises(ValueError, match="method: 'rea' there, 'rs' here"):
        compare.existing_run(d, {**here, "method": "rs"}, 20)


def test_corrupt_result_is_one_line(tmp_path, capsys):
    d = tmp_path / "rs" / "seed_0"
    d.mkdir(parents=True)
    (d / "result.json").write_text("{not json")
    assert main(["compare", str(tmp_path / "rs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not valid JSON" in err[0] and "rs" in err[0]
