"""Tests for jnas.spaces: NB201, DARTS and NB101 value types and space objects."""
from __future__ import annotations

import ast
import collections
import csv
import dataclasses
import json
import pickle

import jax
import numpy as np
import pytest

from jnas import spaces
from jnas.spaces import (DARTS, DARTS_OPS, NB101, NB101_OPS, NB201, NB201_EDGES, NB201_OPS,
                         DARTSGenotype, NB101Arch, NB201Arch, get_space, hash_module)

C10_OPTIMUM = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
               "|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
            "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
            "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
            "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
            "reduce_concat=[2, 3, 4, 5])")
# A valid 7-node NB101 cell (the README example of google-research/nasbench).
NB101_M = [[0, 1, 1, 1, 0, 1, 0],
           [0, 0, 0, 0, 0, 0, 1],
           [0, 0, 0, 0, 0, 0, 1],
           [0, 0, 0, 0, 1, 0, 0],
           [0, 0, 0, 0, 0, 0, 1],
           [0, 0, 0, 0, 0, 0, 1],
           [0, 0, 0, 0, 0, 0, 0]]
NB101_O = ["input", "conv1x1-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu",
           "maxpool3x3", "output"]
ZC_OPS = ["input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu"]


def keys(n: int, seed: int = 0):
    return jax.random.split(jax.random.key(seed), n)


# ----------------------------------------------------------------------------- NB201
def test_nb201_optimum_roundtrip():
    a = NB201.parse(C10_OPTIMUM)
    assert a.ops == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect",
                     "nor_conv_3x3", "nor_conv_1x1")
    assert a.to_string() == C10_OPTIMUM
    assert a.op_ids == (3, 3, 3, 1, 3, 2)
    assert NB201Arch.from_op_ids(a.op_ids) == a
    assert a.to_index() == sum(i * 5 ** e for e, i in enumerate((3, 3, 3, 1, 3, 2)))
    assert NB201Arch.from_index(a.to_index()) == a
    assert hash(a) == hash(NB201Arch.from_string(C10_OPTIMUM))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.ops = ("none",) * 6  # type: ignore[misc]


def test_nb201_enumerate_and_index_bijection():
    archs = NB201.enumerate()
    assert len(archs) == NB201.size == 15625
    assert len(set(archs)) == 15625
    for i in (0, 1, 4, 5, 777, 15624):
        assert archs[i].to_index() == i
        assert NB201.from_index(i) == archs[i]
    assert all(a.to_index() == i for i, a in enumerate(archs))
    assert archs[0].ops == ("none",) * 6 and archs[-1].ops == ("avg_pool_3x3",) * 6
    assert archs[1].ops[0] == "skip_connect" and archs[5].ops[1] == "skip_connect"
    assert all(NB201.parse(a.to_string()) == a for a in archs[::7])


def test_nb201_all_benchmark_rows(data_dir):
    """All 15,625 rows of nats_bench.csv parse and print back exactly, cover the space once,
    and the README's known rows hold (row i = NB201 index i)."""
    with open(data_dir / "nb201" / "nats_bench.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15625
    archs = [NB201.parse(r["ArchitectureString"]) for r in rows]
    assert all(a.to_string() == r["ArchitectureString"] for a, r in zip(archs, rows))
    assert sorted(a.to_index() for a in archs) == list(range(15625))
    assert archs[6111].to_string() == C10_OPTIMUM
    assert float(rows[6111]["CIFAR10TestAccuracy200Epochs"]) == pytest.approx(94.3733, abs=1e-3)
    assert archs[1651].ops == ("none",) * 6
    assert archs[1835].ops == ("skip_connect",) * 6
    assert archs[1462].ops == ("nor_conv_3x3",) * 6
    # The 12-epoch table lists the same cells in the same order.
    with open(data_dir / "nb201" / "nb201_12epoch_accs.csv") as f:
        cells = [r["cellstr"] for r in csv.DictReader(f)]
    assert cells == [r["ArchitectureString"] for r in rows]


@pytest.mark.parametrize("bad, msg", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "wrong edge count"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
     "wrong edge count"),
    ("|conv_5x5~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
     "unknown NB201 op 'conv_5x5'"),
    ("|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
     "expected 'op~0'"),
    ("nor_conv_3x3~0+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
     "malformed node 1"),
    ("", "wrong edge count"),
])
def test_nb201_bad_strings(bad, msg):
    with pytest.raises(ValueError, match=msg):
        NB201.parse(bad)


def test_nb201_bad_values():
    with pytest.raises(ValueError, match="6 edges, got 5"):
        NB201Arch(("none",) * 5)
    with pytest.raises(ValueError, match="unknown NB201 op 'conv'"):
        NB201Arch(("none",) * 5 + ("conv",))
    with pytest.raises(ValueError, match="from_string"):
        NB201Arch(C10_OPTIMUM)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0..15624"):
        NB201Arch.from_index(15625)
    with pytest.raises(ValueError, match="0..4"):
        NB201Arch.from_op_ids([0, 1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="NB201Arch"):
        NB201.validate(3)
    assert not NB201.is_valid("|none~0|")
    assert NB201.is_valid(C10_OPTIMUM)


def test_nb201_sampling_deterministic_and_uniform():
    k1, k2 = keys(2)
    a = NB201.sample(k1, 50)
    assert a == NB201.sample(k1, 50)
    assert a != NB201.sample(k2, 50)
    assert NB201.sample(7, 5) == NB201.sample(7, 5)  # int seeds work too
    ids = np.array([x.op_ids for x in NB201.sample(k1, 5000)])
    counts = np.stack([(ids == o).sum(0) for o in range(5)])  # [op, edge]
    # Expected 1000 per (op, edge); binomial std ~28: allow 5 std.
    assert np.all(np.abs(counts - 1000) < 142), counts
    assert len({tuple(r) for r in ids}) > 4000  # ~4,370 distinct expected of 15,625


def test_nb201_mutation_changes_exactly_one_edge():
    a = NB201.parse(C10_OPTIMUM)
    hit = collections.Counter()
    for k in keys(300):
        b = NB201.mutate(k, a)
        diff = [e for e in range(6) if a.ops[e] != b.ops[e]]
        assert len(diff) == 1
        hit[(diff[0], b.ops[diff[0]])] += 1
    assert len(hit) == 24  # every edge and every other op is reachable
    k = jax.random.key(3)
    assert NB201.mutate(k, a) == NB201.mutate(k, C10_OPTIMUM)


def test_nb201_neighbours():
    a = NB201.parse(C10_OPTIMUM)
    nb = NB201.neighbours(a)
    assert len(nb) == 24 and len(set(nb)) == 24 and a not in nb
    assert all(sum(x != y for x, y in zip(a.ops, b.ops)) == 1 for b in nb)
    assert NB201.dedup(nb + [nb[0], a, nb[3]]) == nb + [a]


def test_nb201_graph():
    adj, ops = NB201.parse(C10_OPTIMUM).to_graph()
    assert adj.shape == (NB201.graph_size,) * 2 == (8, 8) and adj.dtype == np.float32
    assert ops.shape == (8, NB201.num_node_types) == (8, 7)
    assert np.all(ops.sum(1) == 1)
    assert np.all(np.triu(adj, 1) == adj)  # a DAG in topological order
    # input feeds the 3 edges from node 0; the 3 edges into node 3 feed the output
    assert adj[0].nonzero()[0].tolist() == [1 + e for e, (_, j) in enumerate(NB201_EDGES) if j == 0]
    assert adj[:, 7].nonzero()[0].tolist() == [4, 5, 6]
    # edge (2<-1) (node 3) reads node 1 = the output of edge (1<-0) (node 1)
    assert adj[:, 3].nonzero()[0].tolist() == [1]
    # edge (3<-2) (node 6) reads node 2 = edges (2<-0), (2<-1) (graph nodes 2, 3)
    assert adj[:, 6].nonzero()[0].tolist() == [2, 3]
    types = [spaces.NB201_NODE_TYPES[i] for i in ops.argmax(1)]
    assert types == ["input", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect",
                     "nor_conv_3x3", "nor_conv_1x1", "output"]


# ----------------------------------------------------------------------------- DARTS
def test_darts_roundtrip():
    g = DARTS.parse(DARTS_V2)
    assert g.to_string() == DARTS_V2
    assert g.normal[7] == ("dil_conv_3x3", 2) and g.reduce_concat == (2, 3, 4, 5)
    # The DARTS repository prints concat as range(2, 6).
    g2 = DARTSGenotype.from_string(DARTS_V2.replace("[2, 3, 4, 5]", "range(2, 6)"))
    assert g2 == g and hash(g2) == hash(g)
    for s in DARTS.sample(jax.random.key(1), 20):
        assert DARTSGenotype.from_string(s.to_string()) == s


@pytest.mark.parametrize("edit, msg", [
    (lambda s: s.replace("'dil_conv_3x3', 2", "'conv_7x7', 2"), "unknown DARTS op 'conv_7x7'"),
    (lambda s: s.replace("('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0)",
                         "('sep_conv_3x3', 0), ('sep_conv_3x3', 1)", 1), "needs 8"),
    (lambda s: s.replace("('skip_connect', 0), ('dil_conv_3x3', 2)",
                         "('skip_connect', 0), ('dil_conv_3x3', 6)"), "inputs 0..4, got 6"),
    (lambda s: s.replace("[('max_pool_3x3', 0), ('max_pool_3x3', 1)",
                         "[('max_pool_3x3', 0), ('max_pool_3x3', 0)"), "must be different"),
    (lambda s: s.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 7]"), "2..5"),
    (lambda s: s.replace("Genotype(", "Genotyp("), "must look like"),
    (lambda s: s[:-5], "malformed"),
    (lambda s: s.replace("reduce=", "reduction="), "fields"),
    (lambda s: s.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=__import__('os')"),
     "not a literal"),
])
def test_darts_bad_strings(edit, msg):
    with pytest.raises(ValueError, match=msg):
        DARTS.parse(edit(DARTS_V2))


def test_darts_sampling():
    k1, k2 = keys(2, seed=4)
    a = DARTS.sample(k1, 2000)
    assert a == DARTS.sample(k1, 2000)
    assert a[:20] != DARTS.sample(k2, 20)
    ops = collections.Counter(op for g in a for cell in (g.normal, g.reduce) for op, _ in cell)
    assert "none" not in ops and set(ops) == set(DARTS_OPS[1:])
    assert all(abs(c - 32000 / 7) < 5 * np.sqrt(32000 / 7) for c in ops.values()), ops
    # node 3 picks 2 distinct of 5 inputs: each input used with prob 2/5
    inputs = collections.Counter(p[1] for g in a for p in g.normal[6:])
    assert set(inputs) == set(range(5))
    assert all(abs(c - 800) < 100 for c in inputs.values()), inputs  # 2000 x 2/5
    for g in a[:50]:
        for n in range(4):
            assert g.normal[2 * n][1] != g.normal[2 * n + 1][1]


def _pair_diffs(a: DARTSGenotype, b: DARTSGenotype) -> int:
    return sum(x != y for x, y in zip(a.normal + a.reduce, b.normal + b.reduce))


def test_darts_mutation_and_neighbours():
    g = DARTS.parse(DARTS_V2)
    kinds = collections.Counter()
    for k in keys(200):
        m = DARTS.mutate(k, g)
        assert _pair_diffs(g, m) == 1 and DARTS.is_valid(m)
        (old, new), = [(x, y) for x, y in zip(g.normal + g.reduce, m.normal + m.reduce) if x != y]
        kinds["op" if old[0] != new[0] else "input"] += 1
        assert new[0] != "none"
    assert kinds["op"] > 0 and kinds["input"] > 0
    nb = DARTS.neighbours(g)
    # 2 cells x 8 pairs x 6 other ops + 2 cells x 2 x (0+1+2+3) other inputs
    assert len(nb) == 96 + 24 == len(set(nb))
    assert all(_pair_diffs(g, n) == 1 for n in nb)


def test_darts_dedup_and_graph():
    g = DARTS.parse(DARTS_V2)
    swapped = list(g.normal)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    g_sw = dataclasses.replace(g, normal=tuple(swapped))
    assert g_sw != g and g_sw.canonical() == g.canonical()
    assert DARTS.dedup([g, g_sw, DARTS.sample(0, 1)[0]]) == [g, DARTS.sample(0, 1)[0]]
    adj, ops = g.to_graph()
    assert adj.shape == (DARTS.graph_size,) * 2 == (22, 22)
    assert ops.shape == (22, DARTS.num_node_types) == (22, 22)
    assert np.all(ops.sum(1) == 1) and np.all(adj[:11, 11:] == 0) and np.all(adj[11:, :11] == 0)
    a, o = g.to_cell_graphs()
    # normal node 3 = (skip_connect, 0), (dil_conv_3x3, 2): graph node 9 reads op nodes 2, 3
    assert a[0][:, 9].nonzero()[0].tolist() == [2, 3]
    assert a[0][:, 8].nonzero()[0].tolist() == [0]
    assert a[0][:, 10].nonzero()[0].tolist() == list(range(2, 10))
    assert spaces.DARTS_CELL_NODE_TYPES[o[0][9].argmax()] == "dil_conv_3x3"


def _edge_all_cell(ops_per_edge):
    """A 14-pair SNAS edge-all cell: node i lists its inputs i+1, ..., 0 (any order is valid)."""
    pairs, it = [], iter(ops_per_edge)
    for node in range(4):
        pairs += [(next(it), j) for j in reversed(range(node + 2))]
    return pairs


def test_darts_edge_all_genotypes():
    """The SNAS edge-all form (14 pairs, every edge, 'none' = no edge) validates, parses back
    from its string (also with range(2, 6)), keeps its node boundaries, and canonicalises
    per node; graph encodings and mutations refuse it."""
    ops = ["sep_conv_3x3", "none", "skip_connect", "dil_conv_5x5", "none", "max_pool_3x3",
           "none", "none", "avg_pool_3x3", "sep_conv_5x5", "none", "none", "skip_connect",
           "dil_conv_3x3"]
    g = DARTSGenotype(_edge_all_cell(ops), _edge_all_cell(ops[::-1]))
    assert g.edge_all and not DARTS.parse(DARTS_V2).edge_all
    s = g.to_string()
    assert DARTSGenotype.from_string(s) == g == DARTS.parse(s)
    assert DARTSGenotype.from_string(s.replace("[2, 3, 4, 5]", "range(2, 6)")) == g
    assert [len(n) for n in g.nodes("normal")] == [2, 3, 4, 5]
    assert g.nodes("normal")[1] == (("skip_connect", 2), ("dil_conv_5x5", 1), ("none", 0))
    c = g.canonical()
    assert c.nodes("normal")[1] == (("none", 0), ("dil_conv_5x5", 1), ("skip_connect", 2))
    assert c.canonical() == c and c != g
    with pytest.raises(ValueError, match="inputs of intermediate node 1 must be different"):
        bad = _edge_all_cell(ops)
        bad[2] = (bad[2][0], 1)
        DARTSGenotype(bad, g.reduce)
    with pytest.raises(ValueError, match="needs 8 .* or 14"):
        DARTSGenotype(_edge_all_cell(ops)[:13], g.reduce)
    with pytest.raises(ValueError, match="inputs 0..2, got 3"):
        bad = _edge_all_cell(ops)
        bad[2] = (bad[2][0], 3)
        DARTSGenotype(bad, g.reduce)
    with pytest.raises(ValueError, match="8-pair"):
        g.to_graph()
    with pytest.raises(ValueError, match="8-pair"):
        DARTS.mutate(0, g)


# ----------------------------------------------------------------------------- NB101
def test_nb101_hash_matches_official_records(data_dir):
    """The keys of the official-layout records are the official hashes of their cells."""
    with open(data_dir / "nb101" / "nb101_dummy.pkl", "rb") as f:
        records = pickle.load(f)
    assert len(records) == 30
    for h, (fixed, _) in records.items():
        a = NB101Arch(fixed["module_adjacency"], fixed["module_operations"])
        assert a.spec_hash() == h
        assert NB101.parse(a.to_string()).spec_hash() == h


def test_nb101_hash_groups_identical_cells(data_dir):
    """In the 500-cell NAS-Bench-Suite-Zero table (unpruned specs), cells with one hash have
    the same parameter count and FLOPs up to 3 % (isomorphic cells can differ slightly: the
    channel split among the output's inputs depends on node order), and pruning leaves the
    hash unchanged."""
    with open(data_dir / "nb101" / "zc_nasbench101.json") as f:
        table = json.load(f)["nasbench101"]["cifar10"]
    groups = collections.defaultdict(set)
    for k, rec in table.items():
        v = ast.literal_eval(k)
        a = NB101Arch(np.array(v[:49]).reshape(7, 7), [ZC_OPS[i] for i in v[49:]])
        groups[a.spec_hash()].add((float(rec["params"]), float(rec["flops"])))
        assert a.pruned().spec_hash() == a.spec_hash()
    assert len(groups) > 200
    assert sum(len(p) > 1 for p in groups.values()) >= 3  # isomorphic cells present
    for p in groups.values():
        arr = np.array(sorted(p))
        assert np.all(arr.max(0) <= 1.03 * arr.min(0)), arr


def test_nb101_hash_invariance():
    a = NB101Arch(NB101_M, NB101_O)
    m = np.array(NB101_M)
    labels = [-1] + [NB101_OPS.index(o) for o in NB101_O[1:-1]] + [-2]
    h = hash_module(m, labels)
    assert a.spec_hash() == h
    rng = np.random.default_rng(0)
    for _ in range(10):  # any relabelling of the nodes (hash_module needs no order)
        p = rng.permutation(7)
        assert hash_module(m[np.ix_(p, p)], [labels[i] for i in p]) == h
    # topological relabellings of the interior nodes give another valid NB101Arch
    order = [2, 1, 5, 3, 4]  # 3 must precede 4
    perm = [0] + order + [6]
    b = NB101Arch(m[np.ix_(perm, perm)], [NB101_O[i] for i in perm])
    assert b != a and b.spec_hash() == a.spec_hash()
    # changing one op or one edge changes the hash
    c = NB101Arch(m, NB101_O[:5] + ["conv1x1-bn-relu", "output"])
    assert c.spec_hash() != h
    m2 = m.copy()
    m2[0, 3] = 0
    assert NB101Arch(m2, NB101_O).spec_hash() != h


def test_nb101_pruning_and_dangling_nodes():
    m = np.array(NB101_M)
    m[0, 5] = 0  # node 5 now has no input: dangling
    a = NB101Arch(m, NB101_O)
    p = a.pruned()
    assert p.num_nodes == 6 and "maxpool3x3" not in p.ops
    assert p.spec_hash() == a.spec_hash()
    mm = np.delete(np.delete(m, 5, 0), 5, 1)
    assert p == NB101Arch(mm, NB101_O[:5] + ["output"])
    adj, ops = p.to_graph()
    assert adj.shape == (7, 7) and ops.shape == (7, NB101.num_node_types) == (7, 5)
    assert ops[6].argmax() == spaces.NB101_NODE_TYPES.index("output") and ops[5].sum() == 0
    assert adj[5].sum() == 0 and adj[:, 5].sum() == 0  # the padding node
    assert adj[:, 6].nonzero()[0].tolist() == [1, 2, 4]
    full_adj, _ = NB101Arch(NB101_M, NB101_O).to_graph()
    assert np.array_equal(full_adj, np.array(NB101_M, np.float32))


def test_nb101_string_roundtrip():
    a = NB101Arch(NB101_M, NB101_O)
    s = a.to_string()
    assert s.startswith("[[0,1,1,1,0,1,0],") and s.endswith("|" + ",".join(NB101_O))
    assert NB101Arch.from_string(s) == a == NB101.parse(s)
    assert hash(NB101Arch(np.array(NB101_M), list(NB101_O))) == hash(a)


def _mat(edges, n):
    m = np.zeros((n, n), int)
    for i, j in edges:
        m[i, j] = 1
    return m


@pytest.mark.parametrize("matrix, ops, msg", [
    (NB101_M, NB101_O[:3] + ["conv5x5"] + NB101_O[4:], "unknown NB101 op 'conv5x5'"),
    (_mat([(0, 1), (1, 2), (2, 1), (2, 3)], 4), ["input", "maxpool3x3", "maxpool3x3", "output"],
     "cyclic"),
    (_mat([(0, 1), (2, 3)], 4), ["input", "maxpool3x3", "maxpool3x3", "output"], "disconnected"),
    (_mat([(0, 2), (2, 1), (1, 3)], 4), ["input", "maxpool3x3", "maxpool3x3", "output"],
     "not upper-triangular"),
    (np.triu(np.ones((6, 6), int), 1), ["input"] + ["maxpool3x3"] * 4 + ["output"],
     "too many edges: 15 > 9"),
    (_mat([(i, i + 1) for i in range(7)], 8), ["input"] + ["maxpool3x3"] * 6 + ["output"],
     "too many nodes: 8 > 7"),
    (_mat([(0, 1)], 2), ["output", "input"], "start with 'input'"),
    (_mat([(0, 1)], 2), ["input", "maxpool3x3", "output"], "3 ops for a 2x2"),
    ([[0, 2], [0, 0]], ["input", "output"], "0 or 1"),
    ([[0, 1, 0], [0, 0]], ["input", "output"], "square"),
])
def test_nb101_bad_cells(matrix, ops, msg):
    with pytest.raises(ValueError, match=msg):
        NB101Arch(matrix, ops)
    assert not NB101.is_valid(matrix, ops)


@pytest.mark.parametrize("s, msg", [
    ("[[0,1],[0,0]]", "MATRIX_JSON"),
    ("[[0,1],[0,0]|input,output", "not JSON"),
    ("[[0,1],[0,0]]|input,conv,output", "2x2"),
])
def test_nb101_bad_strings(s, msg):
    with pytest.raises(ValueError, match=msg):
        NB101.parse(s)


def test_nb101_dangling_edges_do_not_count():
    """As in the official API, the 9-edge limit applies after pruning dangling nodes."""
    m = np.array(NB101_M)  # 9 edges
    m[1, 2] = 1  # 10th edge, all still live
    with pytest.raises(ValueError, match="too many edges: 10"):
        NB101Arch(m, NB101_O)
    m = _mat([(0, 1), (1, 6), (0, 2), (0, 3), (0, 4), (0, 5), (2, 3), (3, 4), (4, 5), (2, 5)], 7)
    a = NB101Arch(m, NB101_O)  # nodes 2..5 never reach the output: 10 raw edges, 2 live
    assert a.pruned().num_edges == 2


def test_nb101_sampling():
    k1, k2 = keys(2, seed=2)
    a = NB101.sample(k1, 200)
    assert a == NB101.sample(k1, 200)
    assert [x.spec_hash() for x in a[:20]] != [x.spec_hash() for x in NB101.sample(k2, 20)]
    assert all(NB101.is_valid(x) and x.num_nodes == 7 for x in a)
    # The official sampler often prunes to the same small cell: dedup drops those repeats.
    uniq = NB101.dedup(a)
    assert 100 < len(uniq) < 200
    assert len({x.spec_hash() for x in uniq}) == len(uniq) == len({x.spec_hash() for x in a})
    ops = collections.Counter(o for x in a for o in x.ops[1:-1])
    assert all(abs(c - 1000 / 3) < 100 for c in ops.values()), ops


def test_nb101_mutation():
    a = NB101Arch(NB101_M, NB101_O)
    kinds = collections.Counter()
    for k in keys(100):
        b = NB101.mutate(k, a)
        assert NB101.is_valid(b) and b.spec_hash() != a.spec_hash()
        n_edge = int(np.abs(np.array(b.matrix) - np.array(a.matrix)).sum())
        n_op = sum(x != y for x, y in zip(a.ops, b.ops))
        assert n_edge + n_op == 1
        kinds["edge" if n_edge else "op"] += 1
    assert kinds["edge"] > 0 and kinds["op"] > 0
    for x in NB101.sample(jax.random.key(5), 20):
        assert NB101.mutate(jax.random.key(6), x).spec_hash() != x.spec_hash()


def test_nb101_small_cells_can_grow():
    """Pruned cells (as benchmark tables store them) are padded with dead nodes, so mutation
    and neighbours can add a node; the 2-node cell input->output has exactly 3 neighbours."""
    tiny = NB101.parse("[[0,1],[0,0]]|input,output")
    nb = NB101.neighbours(tiny)
    assert sorted(b.pruned().ops[1] for b in nb) == sorted(NB101_OPS)
    assert all(b.pruned().matrix == ((0, 1, 1), (0, 0, 1), (0, 0, 0)) for b in nb)
    for k in keys(10):
        b = NB101.mutate(k, tiny)
        assert b.pruned().num_nodes == 3 and b.spec_hash() != tiny.spec_hash()
    m = np.array(NB101_M)
    m[0, 5] = 0
    small = NB101Arch(m, NB101_O).pruned()  # 6 nodes, 7 edges
    sizes = collections.Counter(NB101.mutate(k, small).pruned().num_nodes for k in keys(200))
    assert sizes[7] > 0 and sizes[6] > 0, sizes


def test_nb101_neighbours_and_dedup():
    a = NB101Arch(NB101_M, NB101_O)
    nb = NB101.neighbours(a)
    hashes = [b.spec_hash() for b in nb]
    assert len(set(hashes)) == len(nb) > 10 and a.spec_hash() not in hashes
    # 10 op changes all give new cells; of 21 edge flips only the valid ones count
    assert sum(b.matrix == a.matrix for b in nb) == 10
    # permuted duplicates collapse to one
    m = np.array(NB101_M)
    perm = [0, 2, 1, 5, 3, 4, 6]
    b = NB101Arch(m[np.ix_(perm, perm)], [NB101_O[i] for i in perm])
    assert NB101.dedup([a, b, nb[0], a]) == [a, nb[0]]
    assert NB101.dedup_key(b) == NB101.dedup_key(a)


# ----------------------------------------------------------------------------- registry
def test_get_space_and_attributes():
    assert get_space("nb201") is NB201 and get_space("DARTS") is DARTS
    assert get_space("nasbench101") is NB101
    with pytest.raises(ValueError, match="valid spaces: nb201, darts, nb101"):
        get_space("nb301")
    assert (NB201.num_edges, DARTS.num_edges) == (6, 14)
    assert NB201.ops == NB201_OPS and DARTS.ops == DARTS_OPS and NB101.ops == NB101_OPS
    assert DARTS.size is None and NB101.size is None
    for sp in (DARTS, NB101):
        with pytest.raises(ValueError, match="enumerat"):
            sp.enumerate()
    for sp in (NB201, DARTS, NB101):
        arch = sp.sample(jax.random.key(0), 1)[0]
        adj, ops = arch.to_graph()
        assert adj.shape == (sp.graph_size, sp.graph_size) and adj.dtype == np.float32
        assert ops.shape == (sp.graph_size, sp.num_node_types) and ops.dtype == np.float32
        assert np.all(np.tril(adj) == 0)  # every graph is a DAG in node order
        assert sp.parse(arch.to_string()) == arch == sp.validate(arch)
        assert len({arch, sp.parse(arch.to_string())}) == 1


def test_cross_type_errors():
    with pytest.raises(ValueError, match="NB101Arch"):
        NB101.validate(NB201.parse(C10_OPTIMUM))
    with pytest.raises(ValueError, match="DARTSGenotype"):
        DARTS.validate(42)
    with pytest.raises(ValueError):
        NB201.parse(DARTS_V2)


# ----------------------------------------------------------------------------- graph inverse
@pytest.mark.parametrize("space", [NB201, DARTS, NB101], ids=lambda s: s.name)
def test_from_graph_inverts_to_graph(space):
    for arch in space.sample(jax.random.key(3), 40):
        back = type(arch).from_graph(*arch.to_graph())
        assert back == (arch.pruned() if space is NB101 else arch)
    if space is NB201:
        assert NB201.from_graph(*arch.to_graph()) == arch
        adj, ops = arch.to_graph()
        adj[0, 7] = 1.0
        with pytest.raises(ValueError, match="not the fixed NB201 node-op topology"):
            NB201.from_graph(adj, ops)
    with pytest.raises(ValueError, match="graph is"):
        type(arch).from_graph(np.zeros((3, 3)), np.zeros((3, 2)))


def test_get_space_takes_names_and_objects():
    assert spaces.get_space("NB201") is NB201 and spaces.get_space(DARTS) is DARTS
    with pytest.raises(ValueError, match="unknown space 'nb999'; valid spaces: nb201"):
        spaces.get_space("nb999")
    with pytest.raises(ValueError, match="space name .* or a space object"):
        spaces.get_space(3)
