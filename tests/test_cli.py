"""Tests for the ``jnas`` command: help, methods, info, search runs, progress and --quiet."""
import json

import pytest

import jnas
from jnas import registry
from jnas.cli import main
from jnas.config import field_docs

TINY = ["--space", "nb201", "--set", "C=4", "--set", "N=1", "--set", "batch_size=8",
        "--set", "train_size=64", "--set", "val_size=64", "--set", "max_steps_per_epoch=2",
        "--set", "eval_batches=1", "--set", "xla=fastest", "--set", "plot=false"]


@pytest.mark.parametrize("argv,needle", [
    (["search", "nosuch"], "valid methods: bonas"),
    (["search", "rea", "--space", "nb999"], "nb201, darts, nb101"),
    (["search", "renas", "--space", "darts"], "supports spaces nb201, nb101"),
    (["search", "rea", "--dataset", "mnist"], "cifar10, cifar100, ImageNet16-120"),
    (["search", "rea", "--set", "populaton=5"], "unknown config key 'populaton'"),
])
def test_bad_arguments_give_clear_errors(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_search_help_lists_the_config_keys(capsys):
    assert main(["search", "darts", "--help"]) == 0
    out = capsys.readouterr().out
    assert "config keys of darts (DARTSConfig; --set KEY=VALUE):" in out
    rows = {line.split()[0]: line for line in out.splitlines()
            if line.startswith("  ") and not line.strip().startswith("-")}
    assert "max_steps_per_epoch" in rows and "epochs" in rows and "w_lr" in rows
    assert "int" in rows["epochs"] and "0.025" in rows["w_lr"]
    assert "--budget" in out and "--quiet" in out  # the options too


@pytest.mark.parametrize("method", sorted(registry.METHODS))
def test_every_method_help_lists_every_key_with_a_doc(method, capsys):
    import dataclasses
    spec = registry.get_method(method)
    assert main(["search", method, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"{method} ({spec.kind}): {spec.doc}" in out
    docs = field_docs(spec.config_cls())
    for f in dataclasses.fields(spec.config_cls()):
        row = next(line for line in out.splitlines() if line.split()[:1] == [f.name])
        assert docs[f.name] and docs[f.name] in row, (f.name, row)  # every field documented
    assert ("ws.steps" in out) == ("weight-sharing" in spec.benchmarks)


def test_search_help_for_a_method_without_settings(capsys):
    assert main(["search", "rs", "-h"]) == 0
    assert "(none: this method has no settings)" in capsys.readouterr().out


def test_search_help_without_method_and_top_level_help(capsys):
    assert main(["search", "--help"]) == 0
    assert "config keys of" not in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "search" in capsys.readouterr().out


def test_methods_lists_kind_spaces_and_benchmarks(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    i = next(k for k, s in enumerate(lines) if s.startswith("bonas "))
    assert "sample" in lines[i]
    assert "spaces: nb201, darts, nb101" in lines[i + 1]
    assert "weight-sharing" in lines[i + 1] and "nb101" in lines[i + 1]
    j = next(k for k, s in enumerate(lines) if s.startswith("darts "))
    assert "oneshot" in lines[j] and "cifar10 images" in lines[j + 1]


def test_info_prints_cost_and_table_accuracy(data_dir, capsys):
    arch = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
            "nor_conv_3x3~1|nor_conv_1x1~2|")
    assert main(["info", "nb201", arch]) == 0
    out = capsys.readouterr().out
    assert "nb201 index: 6111" in out
    assert "cifar10: 94.37" in out and "cifar100:" in out
    assert "params:" in out and "flops:" in out
    assert main(["info", "nb201", "6111", "--dataset", "cifar100"]) == 0
    out = capsys.readouterr().out
    assert "cifar100:" in out and "cifar10:" not in out and "100 classes" in out


def test_search_writes_result_per_seed_with_progress(data_dir, tmp_path, capsys):
    out = tmp_path / "rs"
    assert main(["search", "rs", "--space", "nb201", "--budget", "12", "--seeds", "0-1",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "== rs seed 0 (1/2)" in text and "== rs seed 1 (2/2)" in text  # per seed
    assert "12/12 queries" in text
    r0 = json.loads((out / "seed_0" / "result.json").read_text())
    r1 = json.loads((out / "seed_1" / "result.json").read_text())
    for r, seed in ((r0, 0), (r1, 1)):
        assert r["method"] == "rs" and r["seed"] == seed and r["space"] == "nb201"
        assert r["trajectory"][-1][0] == 12
        assert 0 < r["bench"]["test_accuracy"] <= 100
    assert r0["best_arch"] != r1["best_arch"] or r0["history"] != r1["history"]


def test_quiet_prints_results_only(data_dir, tmp_path, capsys):
    assert main(["search", "rea", "--budget", "12", "--seeds", "0-1", "--quiet",
                 "--out", str(tmp_path / "rea")]) == 0
    cap = capsys.readouterr()
    assert "queries, best signal" not in cap.out and "==" not in cap.out.split("|")[0]
    assert cap.out.count("[rea seed") == 2 and cap.err == ""


def test_oneshot_progress_and_quiet(data_dir, tmp_path, capsys):
    argv = ["search", "darts", *TINY, "--epochs", "2", "--out", str(tmp_path / "d")]
    assert main(argv) == 0
    loud = capsys.readouterr()
    assert "epoch 1" in (loud.out + loud.err).lower()
    r = json.loads((tmp_path / "d" / "seed_0" / "result.json").read_text())
    assert r["method"] == "darts" and r["seed"] == 0 and len(r["trajectory"]) == 2
    assert main(["search", "darts", *TINY, "--epochs", "2", "--out", str(tmp_path / "q"),
                 "--quiet"]) == 0  # the same program as above: compiled once (cache)
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out.count("\n") == 1 and "[darts seed 0]" in quiet.out


def test_cli_names_match_the_library():
    # The CLI keeps its own copies so that `jnas --help` / `jnas compare` do not import JAX.
    from jnas import benchmarks, cli, spaces
    assert cli.DATASETS == benchmarks.DATASETS
    assert set(cli.SPACES) == set(spaces.SPACES)


def test_public_api_names_resolve():
    for name in jnas.__all__:
        assert getattr(jnas, name) is not None
    with pytest.raises(AttributeError):
        jnas.not_a_thing  # noqa: B018


def test_csv_benchmark_search_stays_in_the_table(data_dir, tmp_path, capsys):
    from jnas import benchmarks
    bench = benchmarks.load_nb201()
    rows = [(bench.arch_at(i).to_string(), i, 100 - i) for i in range(0, 400, 20)]
    csv = tmp_path / "t.csv"
    csv.write_text("arch,val_acc,test_acc\n" + "".join(f"{a},{v},{t}\n" for a, v, t in rows))
    assert main(["search", "rea", "--benchmark", str(csv), "--metric", "val_acc", "--report",
                 "test_acc", "--budget", "30", "--quiet", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "more than the 20 cells" in err
    r = json.loads((tmp_path / "r" / "seed_0" / "result.json").read_text())
    assert r["num_queries"] == 20 and r["best_arch"] == rows[-1][0]
    assert {h["arch"] for h in r["history"]} <= {a for a, _, _ in rows}
    assert r["dataset"] == "cifar10" and r["space"] == "nb201"
