"""Tests for jnas.tables: generic tables, their evaluator, the restricted space."""
import csv

import numpy as np
import pytest

from jnas import benchmarks, tables
from jnas.spaces import NB101, NB201, get_space


def _csv(tmp_path, archs, name="t.csv", bom=False):
    p = tmp_path / name
    with open(p, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        w = csv.writer(f)
        w.writerow(["arch", "acc", "test"])
        w.writerows([a.to_string(), 90 + i, 80 + i] for i, a in enumerate(archs))
    assert p.read_bytes().startswith(b"\xef\xbb\xbf") == bom
    return p


def test_csv_with_a_utf8_bom_loads(tmp_path):
    archs = NB201.sample(0, 5)
    t = tables.load_table(_csv(tmp_path, archs, bom=True), NB201, metric="acc", report="test")
    assert len(t) == 5 and t.signal_name == "acc"
    assert t.lookup(archs[2]) == {"row": 2, "acc": 92.0, "test": 82.0, "reported": 82.0}
    assert t.row(archs[2].to_string()) == 2 and t.has(archs[0])
    with pytest.raises(ValueError, match="table row 5 is out of range; valid rows: 0..4"):
        t.arch_at(5)


def test_restrict_wraps_partial_tables_only(tmp_path):
    archs = NB201.sample(1, 8)
    ev = tables.TableEvaluator(tables.load_table(_csv(tmp_path, archs), "nb201", "acc"))
    sp = tables.restrict(ev, "nb201")
    assert isinstance(sp, tables.TableSpace) and sp.size == len(ev.bench)
    assert all(ev.bench.has(a) for a in sp.sample(0, 20))
    assert all(ev.bench.has(sp.mutate(k, archs[0])) for k in range(5))
    assert ev.report(archs[0]) == ev.bench.lookup(archs[0])
    with pytest.raises(ValueError, match="holds nb201 cells but the search space is nb101"):
        ev.restrict(NB101)

    class Full:  # an evaluator covering the whole space
        pass
    assert tables.restrict(Full(), "nb201") is get_space("nb201")


def test_table_of_another_space_is_refused(tmp_path):
    p = _csv(tmp_path, NB101.sample(0, 3))
    with pytest.raises(ValueError, match="holds nb101 cells but the search space is nb201; "
                                         "use --space nb101"):
        tables.load_table(p, "nb201", metric="acc")
    assert len(tables.load_table(p, "nb101", metric="acc")) == 3


def test_make_evaluator_refuses_a_benchmark_of_another_space(data_dir):
    with pytest.raises(ValueError, match="the nb101 benchmark holds nb101 cells but the search "
                                         "space is nb201; use --space nb101"):
        benchmarks.make_evaluator("nb101", space="nb201")
    with pytest.raises(ValueError, match="holds nb201 cells but the search space is darts"):
        benchmarks.make_evaluator("nb201", space=get_space("darts"))
    assert benchmarks.make_evaluator("nb201", space=NB201).space == "nb201"


def test_space_index_is_not_the_benchmark_row(data_dir):
    bench = benchmarks.load_nb201()
    a = NB201.from_index(8343)
    assert a.to_index() == 8343 and bench.row(a) != 8343
    rec = bench.lookup(a)
    assert rec["row"] == bench.row(a) and rec["arch"] == a.to_string()
    ev = benchmarks.make_evaluator("nb201")
    assert rec["test_acc"]["cifar10"] == ev.report(a)["test_accuracy"]
    assert bench.arch_at(bench.row(a)) == a
    with pytest.raises(ValueError, match="NB201 index 99999 is out of range; valid indices: "
                                         "0..15624"):
        bench.arch_at(99999)
    with pytest.raises(ValueError, match="space index 99999 is out of range; valid indices: "
                                         "0..15624"):
        NB201.from_index(99999)
    assert np.isfinite(rec["val12"]["cifar100"])
