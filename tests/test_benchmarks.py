"""Tabular benchmarks: NB201 tables (all rows, known facts), evaluators, NB101, user CSVs."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from jnas import benchmarks, download
from jnas.spaces import NB201Arch, get_space


@pytest.fixture(scope="module")
def bench(data_dir, tmp_path_factory):
    old = os.environ.get("JNAS_CACHE_DIR")
    os.environ["JNAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield benchmarks.load_nb201()
    finally:
        if old is None:
            os.environ.pop("JNAS_CACHE_DIR", None)
        else:
            os.environ["JNAS_CACHE_DIR"] = old


def test_all_rows_round_trip(bench):
    assert len(bench) == 15625
    for i in range(len(bench)):
        arch = bench.arch_at(i)
        assert arch.to_string() == bench.arch_strings[i]
        assert bench.index_of(arch) == i
    assert len(set(bench.unique_strings.tolist())) == 6466


def test_known_facts(bench):
    c10, c100, im = (bench.test_acc[d] for d in benchmarks.DATASETS)
    assert int(np.argmax(c10)) == 6111 and c10[6111] == pytest.approx(94.3733, abs=1e-4)
    assert c10[13714] == c10[6111]
    assert int(np.argmax(c100)) == 9930 and c100[9930] == pytest.approx(73.5133, abs=1e-4)
    assert int(np.argmax(im)) == 857 and im[857] == pytest.approx(47.3111, abs=1e-4)
    for ops, idx, accs in ((("none",) * 6, 1651, (10.00, 1.00, 0.83)),
                           (("skip_connect",) * 6, 1835, (54.30, 15.61, 16.32)),
                           (("nor_conv_3x3",) * 6, 1462, (93.76, 71.11, 41.44))):
        assert bench.index_of(NB201Arch(ops)) == idx
        got = [bench.test_acc[d][idx] for d in benchmarks.DATASETS]
        np.testing.assert_allclose(got, accs, atol=0.006)
    opt = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
           "nor_conv_1x1~2|")
    assert bench.index_of(opt) in (6111, 13714)


def test_12epoch_and_subset_tables(bench):
    assert bench.test12["cifar10"].max() == pytest.approx(89.16, abs=1e-6)
    rho = stats.spearmanr(bench.val12["cifar10"], bench.test_acc["cifar10"]).statistic
    assert 0.74 < rho < 0.80
    rho100 = stats.spearmanr(bench.val12["cifar100"], bench.test_acc["cifar100"]).statistic
    assert 0.80 < rho100 < 0.86
    n = {d: int(np.isfinite(bench.val200[d]).sum()) for d in benchmarks.DATASETS}
    assert n == {"cifar10": 724, "cifar100": 725, "ImageNet16-120": 724}
    assert bench.flops_M["cifar10"][1462] == pytest.approx(222.86, abs=0.01)
    assert bench.params_M["cifar10"][1462] == pytest.approx(1.5315, abs=1e-4)


def test_cost_formula_matches_every_zc_cell(bench, data_dir):
    zc = json.loads((data_dir / "nb201" / "zc_nasbench201.json").read_text())
    for ds, recs in zc.items():
        for key, rec in recs.items():
            i = bench.index_of(benchmarks.zc_key_to_string(key))
            assert bench.flops_M[ds][i] == pytest.approx(rec["flops"]["score"], rel=1e-9)
            assert bench.params_M[ds][i] == pytest.approx(rec["params"]["score"], rel=1e-9)
            assert bench.val200[ds][i] == rec["val_accuracy"]


def test_cached_load_reads_the_parsed_cache(bench):
    benchmarks.clear_loaded()
    benchmarks.load_nb201()                      # parses the CSVs and keeps the arrays
    assert list(download.cache_dir().glob("nb201_tables_v*.npz"))
    benchmarks.clear_loaded()
    again = benchmarks.load_nb201()              # from the .npz cache
    np.testing.assert_array_equal(again.test_acc["cifar100"], bench.test_acc["cifar100"])
    assert again.arch_strings.tolist() == bench.arch_strings.tolist()


def test_row_order_mismatch_raises(data_dir, tmp_path, cache_dir):
    src = data_dir / "nb201"
    for n in ("nats_bench.csv", "zc_nasbench201.json"):
        shutil.copy(src / n, tmp_path / n)
    lines = (src / "nb201_12epoch_accs.csv").read_text().splitlines(keepends=True)
    lines[5], lines[6] = lines[6], lines[5]
    (tmp_path / "nb201_12epoch_accs.csv").write_text("".join(lines))
    with pytest.raises(ValueError, match="row order mismatch at index 4"):
        benchmarks.load_nb201(tmp_path)
    with pytest.raises(FileNotFoundError, match="jnas download"):
        benchmarks.load_nb201(tmp_path / "missing")


def test_cost_model_matches_nb201_logged_times(bench):
    """Default constants reproduce NB201's per-epoch training times on cifar10-valid
    (get_more_info 'train-per-time': cell 0 7.22 s, cell 1 10.85 s; mean 9.14 s over the
    space with hp='12'), so 12,000 s buys ~100-130 CIFAR-10 12-epoch queries."""
    per_epoch = benchmarks.simulated_time_s(bench.flops_M["cifar10"], 1)
    assert per_epoch[0] == pytest.approx(7.221, rel=0.01)
    assert per_epoch[1] == pytest.approx(10.848, rel=0.01)
    assert per_epoch.mean() == pytest.approx(9.14, rel=0.08)
    ev = benchmarks.TabularEvaluator(bench, "cifar10", "12epoch")
    assert ev.query_cost_s(bench.arch_at(1)) == pytest.approx(12 * 10.848, rel=0.01)
    assert 100 < 12_000 / (12 * per_epoch.mean()) < 130
    # images per epoch scale the cost: CIFAR-100 2x, ImageNet16-120 (16x16 FLOPs) 6.07x
    c100 = benchmarks.TabularEvaluator(bench, "cifar100", "12epoch")
    assert c100.query_cost_s(bench.arch_at(1)) == pytest.approx(
        2 * benchmarks.simulated_time_s(bench.flops_M["cifar100"][1], 12))
    in16 = benchmarks.TabularEvaluator(bench, "ImageNet16-120", "12epoch")
    assert in16.query_cost_s(bench.arch_at(1)) > ev.query_cost_s(bench.arch_at(1))
    assert "6.068*(6.6 s + 0.037 s/MFLOP" in in16.describe()["cost_model"]
    cheap = benchmarks.TabularEvaluator(bench, "cifar10", overhead_s=1.0, per_mflop_s=0.0)
    assert cheap.query_cost_s(bench.arch_at(1)) == pytest.approx(12.0)


def test_tabular_evaluator_protocols(bench):
    archs = [bench.arch_at(i) for i in (6111, 1651, 857)]
    ev = benchmarks.TabularEvaluator(bench, "cifar100", "12epoch")
    sig = ev.evaluate(archs)
    assert sig == [bench.val12["cifar100"][i] for i in (6111, 1651, 857)]
    assert ev.num_queries == 3
    expect = sum(benchmarks.simulated_time_s(bench.flops_M["cifar100"][i], 12, scale=2.0)
                 for i in (6111, 1651, 857))  # CIFAR-100: 50,000 training images = 2 x 25,000
    assert ev.simulated_cost_s == pytest.approx(expect)
    assert ev.query_cost_s(archs[0]) > ev.query_cost_s(archs[1])  # more FLOPs, more time
    rep = ev.report(archs[0])
    assert rep["test_accuracy"] == bench.test_acc["cifar100"][6111]
    for d in benchmarks.DATASETS:
        assert rep[f"test_accuracy_{d}"] == bench.test_acc[d][6111]
    assert ev.num_queries == 3  # report is not a query
    ev2 = benchmarks.TabularEvaluator(bench, "ImageNet16-120", "200epoch")
    assert ev2.evaluate(archs[2:]) == [pytest.approx(47.3111, abs=1e-4)]
    assert "TEST" in ev2.signal_name
    assert ev2.simulated_cost_s == pytest.approx(
        benchmarks.simulated_time_s(bench.flops_M["ImageNet16-120"][857], 200,
                                    scale=151_700 / 25_000))
    with pytest.raises(ValueError, match="valid protocols"):
        benchmarks.TabularEvaluator(bench, "cifar10", "50epoch")
    with pytest.raises(ValueError, match="valid datasets"):
        benchmarks.TabularEvaluator(bench, "svhn")
    with pytest.raises(ValueError, match="not an NB201 cell"):
        bench.index_of("|conv~0|")


def test_nb101_official_layout(data_dir):
    path = data_dir / "nb101" / "nb101_dummy.pkl"
    t = benchmarks.load_nb101_official(path)
    with open(path, "rb") as f:
        raw = pickle.load(f)
    assert len(t) == len(raw) == 30
    for h, (fixed, computed) in raw.items():
        i = t.keys.index(h)
        runs = computed[108]
        assert t.signal[i] == pytest.approx(
            100 * np.mean([r["final_validation_accuracy"] for r in runs]))
        assert t.reported[i] == pytest.approx(
            100 * np.mean([r["final_test_accuracy"] for r in runs]))
        assert t.extra["params"][i] == fixed["trainable_parameters"]
        assert t.extra["train_time_s"][i] == pytest.approx(
            np.mean([r["final_training_time"] for r in runs]))
        assert t.index_of(t.arch_at(i)) == i
    # An isomorphic relabelling (swap two intermediate nodes) finds the same row.
    from jnas.spaces import NB101Arch
    found = 0
    for i in range(len(t)):
        a = t.arch_at(i)
        m = np.array(a.matrix)
        for j in range(1, len(a.ops) - 2):
            if m[j, j + 1] or a.ops[j] == a.ops[j + 1]:
                continue  # swapping j, j+1 keeps the order only without an edge j->j+1
            perm = list(range(len(a.ops)))
            perm[j], perm[j + 1] = j + 1, j
            iso = NB101Arch(m[np.ix_(perm, perm)].tolist(), tuple(a.ops[p] for p in perm))
            assert iso != a and t.index_of(iso) == i
            found += 1
    assert found > 0
    a = t.arch_at(0)
    ev = benchmarks.TableEvaluator(t)
    assert ev.evaluate([a]) == [t.signal[0]]
    assert ev.simulated_cost_s == pytest.approx(t.extra["train_time_s"][0])
    bad = data_dir.parent / "nope.pkl"
    with pytest.raises(FileNotFoundError):
        benchmarks.load_nb101_official(bad)


def test_nb101_official_rejects_other_layout(tmp_path):
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps({"abc": ({"module_adjacency": [[0]]}, {})}))
    with pytest.raises(ValueError, match="official NB101 layout"):
        benchmarks.load_nb101_official(p)


def test_nb101_json_subset(data_dir):
    t = benchmarks.load_nb101_json(data_dir / "nb101" / "zc_nasbench101.json")
    assert len(t) == 292  # 500 records, 292 distinct cells after pruning
    assert int(t.extra["num_records"].sum()) == 500
    assert t.signal.max() == pytest.approx(94.7115, abs=1e-3)
    for i in range(len(t)):
        assert t.index_of(t.arch_at(i)) == i
    assert np.all(t.extra["flops_M"] > 0) and np.all(t.extra["params_M"] > 0)


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def test_user_table_and_errors(bench, tmp_path):
    s = [bench.arch_strings[i] for i in (0, 1, 2)]
    good = _write(tmp_path / "t.csv", ["arch,acc,test", f"{s[0]},50.0,49", f"{s[1]},70.5,69",
                                       f"{s[2]},60,61"])
    t = benchmarks.load_table(good, "nb201", metric="acc", report="test")
    assert len(t) == 3 and t.signal.tolist() == [50.0, 70.5, 60.0]
    ev = benchmarks.TableEvaluator(t)
    assert ev.evaluate([bench.arch_at(1)]) == [70.5]
    assert ev.reported_score(bench.arch_at(1)) == 69.0
    assert ev.report(bench.arch_at(2))["test"] == 61.0 and ev.num_queries == 1
    with pytest.raises(ValueError, match="not in the table"):
        ev.evaluate([bench.arch_at(5)])
    with pytest.raises(ValueError, match=r"missing column 'val'.*\['arch', 'acc', 'test'\]"):
        benchmarks.load_table(good, "nb201", metric="val")
    bad = _write(tmp_path / "b.csv", ["arch,acc", f"{s[0]},1", "|conv_7x7~0|+|x|,2"])
    with pytest.raises(ValueError, match=r"b\.csv:3: bad nb201 architecture"):
        benchmarks.load_table(bad, "nb201", metric="acc")
    dup = _write(tmp_path / "d.csv", ["arch,acc", f"{s[0]},1", f"{s[1]},2", f"{s[0]},3"])
    with pytest.raises(ValueError, match=r"d\.csv:4: duplicate .*line 2"):
        benchmarks.load_table(dup, "nb201", metric="acc")
    nan = _write(tmp_path / "n.csv", ["arch,acc", f"{s[0]},1", f"{s[1]},nan"])
    with pytest.raises(ValueError, match=r"n\.csv:3: column 'acc' is 'nan'"):
        benchmarks.load_table(nan, "nb201", metric="acc")
    txt = _write(tmp_path / "s.csv", ["arch,acc", f"{s[0]},high"])
    with pytest.raises(ValueError, match="not a number"):
        benchmarks.load_table(txt, "nb201", metric="acc")
    noarch = _write(tmp_path / "x.csv", ["cell,acc", f"{s[0]},1"])
    with pytest.raises(ValueError, match="no architecture column"):
        benchmarks.load_table(noarch, get_space("nb201"), metric="acc")
    assert len(benchmarks.load_table(noarch, "nb201", metric="acc", arch_column="cell")) == 1


def test_make_evaluator_names(bench):
    ev = benchmarks.make_evaluator("nb201", "cifar10", "200epoch")
    assert ev.protocol == "200epoch" and ev.dataset == "cifar10"
    with pytest.raises(ValueError, match="valid: nb201, nb101"):
        benchmarks.make_evaluator("nb301")


def test_search_on_a_subset_table_via_table_space(data_dir):
    from jnas import search
    from jnas.tables import TableSpace, restrict
    t = benchmarks.load_nb101_json(data_dir / "nb101" / "zc_nasbench101.json")
    ev = benchmarks.TableEvaluator(t)
    space = restrict(ev, "nb101")
    assert isinstance(space, TableSpace) and space.base is get_space("nb101")
    assert space.name == "nb101" and space.size == 292
    res = search.run_search(search.RegularizedEvolution(space, 0), ev, budget=60)
    assert res.to_json()["num_queries"] == ev.num_queries == 60
    assert res.bench["val_accuracy"] == max(h["signal"] for h in res.history)
    a = t.arch_at(0)
    for n in space.neighbours(a):
        assert t.index_of(n) != 0
