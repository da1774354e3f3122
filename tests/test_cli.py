"""Tests for the ``jnas`` command's argument handling and the package's public API."""
import json

import pytest

import jnas
from jnas.cli import main, parse_seeds


def test_parse_seeds_ranges_and_lists():
    assert parse_seeds(None, None) == [0]
    assert parse_seeds(7, None) == [7]
    assert parse_seeds(None, "0-3") == [0, 1, 2, 3]
    assert parse_seeds(None, "1,4-5") == [1, 4, 5]
    with pytest.raises(ValueError, match="empty range"):
        parse_seeds(None, "5-2")
    with pytest.raises(ValueError, match="not an integer"):
        parse_seeds(None, "a")


@pytest.mark.parametrize("argv,needle", [
    (["search", "nosuch"], "valid methods: bonas"),
    (["search", "rea", "--space", "nb999"], "valid spaces: nb201, darts, nb101"),
    (["search", "renas", "--space", "darts"], "supports spaces nb201, nb101"),
    (["search", "rea", "--dataset", "mnist"], "valid datasets"),
    (["search", "rea", "--set", "populaton=5"], "unknown config key 'populaton'"),
])
def test_bad_arguments_give_clear_errors(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_info_prints_cost_and_table_accuracy(data_dir, capsys):
    arch = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
            "nor_conv_3x3~1|nor_conv_1x1~2|")
    assert main(["info", "nb201", arch]) == 0
    out = capsys.readouterr().out
    assert "nb201 index: 6111" in out
    assert "cifar10: 94.37" in out
    assert "params:" in out and "flops:" in out


def test_search_writes_result_per_seed(data_dir, tmp_path, capsys):
    out = tmp_path / "rs"
    assert main(["search", "rs", "--space", "nb201", "--budget", "12", "--seeds", "0-1",
                 "--out", str(out)]) == 0
    r0 = json.loads((out / "seed_0" / "result.json").read_text())
    r1 = json.loads((out / "seed_1" / "result.json").read_text())
    for r, seed in ((r0, 0), (r1, 1)):
        assert r["method"] == "rs" and r["seed"] == seed and r["space"] == "nb201"
        assert r["trajectory"][-1][0] == 12
        assert 0 < r["bench"]["test_accuracy"] <= 100
    assert r0["best_arch"] != r1["best_arch"] or r0["history"] != r1["history"]


def test_public_api_names_resolve():
    for name in jnas.__all__:
        assert getattr(jnas, name) is not None
    with pytest.raises(AttributeError):
        jnas.not_a_thing  # noqa: B018
