"""Tests of jnas.gcn: graph batching (padding, global node, self-loops), the BONAS weighted MSE,
and that the GCN / MLP predictors learn a synthetic target (Shi et al., arXiv 1911.09336)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from jnas.gcn import (PredictorConfig, batch_graphs, graphs_to_arrays,
                      train_predictor, weighted_mse)


def _chain_graph(ops: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    n = len(ops)
    adj = np.zeros((n, n), np.float32)
    for i in range(n - 1):
        adj[i, i + 1] = 1
    adj[0, n - 1] = 1
    oh = np.zeros((n, k), np.float32)
    oh[np.arange(n), ops] = 1
    return adj, oh


def _dataset(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ops = [rng.integers(0, 5, size=6) for _ in range(n)]
    # target: fraction of op 3 plus a position-dependent term (needs the graph structure)
    y = np.array([0.1 + 0.5 * np.mean(o == 3) + 0.3 * (o[-1] == 1) for o in ops])
    return graphs_to_arrays([_chain_graph(o) for o in ops]), y


def test_graph_arrays_shapes_padding_and_global_node():
    adj_a, ops_a = _chain_graph(np.array([0, 1, 2]))          # 3 nodes, 3 edges
    adj_b, ops_b = _chain_graph(np.array([0, 1, 2, 3, 4]))    # 5 nodes, 5 edges
    d = graphs_to_arrays([(adj_a, ops_a), (adj_b, ops_b)], n_max=6)
    e_max = 6 * 5 // 2 + 2 * 6 + 1
    assert d.nodes.shape == (2, 7, 6) and d.senders.shape == (2, e_max)
    # real nodes + global node are valid, padding is not
    np.testing.assert_array_equal(d.node_mask[0], [1, 1, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(d.node_mask[1], [1, 1, 1, 1, 1, 0, 1])
    # the global node (slot 6) carries only the extra 'global' feature
    np.testing.assert_array_equal(d.nodes[0, 6], [0, 0, 0, 0, 0, 1])
    assert d.nodes[0, 3:6].sum() == 0
    # edges of graph a: 3 DAG + 3 self-loops + 3 to global + global self-loop
    valid = d.edge_mask[0] == 1
    assert valid.sum() == 10
    pairs = set(zip(d.senders[0][valid].tolist(), d.receivers[0][valid].tolist()))
    assert {(0, 1), (1, 2), (0, 2)} <= pairs
    assert {(i, i) for i in range(3)} | {(6, 6)} <= pairs
    assert {(i, 6) for i in range(3)} <= pairs
    assert not any(s == 6 and r != 6 for s, r in pairs)  # global node only receives
    # batched GraphsTuple: offsets per graph, static sizes
    g = batch_graphs(d.nodes, d.senders, d.receivers, d.node_mask, d.edge_mask)
    assert g.nodes["x"].shape == (14, 6)
    assert int(g.senders.max()) <= 13 and int(np.asarray(g.senders)[e_max:].min()) >= 7
    np.testing.assert_array_equal(np.asarray(g.n_node), [7, 7])
    # flat one-hot baseline encoding: upper-triangular adjacency + ops, no self-loops
    flat = d.flat_onehot()
    assert flat.shape == (2, 15 + 6 * 5)
    assert flat[0, :15].sum() == 3 and flat[1, :15].sum() == 5


def test_graph_arrays_rejects_bad_input():
    adj, ops = _chain_graph(np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="n_max"):
        graphs_to_arrays([(adj, ops)], n_max=3)
    with pytest.raises(ValueError, match="ops"):
        graphs_to_arrays([(adj, ops), (adj, ops[:, :3])])
    with pytest.raises(ValueError, match="at least one"):
        graphs_to_arrays([])


def test_weighted_mse_values():
    pred = np.array([0.5, 0.9], np.float32)
    y = np.array([0.4, 1.0], np.float32)
    expected = np.mean(np.exp(y - 1) * (pred - y) ** 2)
    assert float(weighted_mse(pred, y)) == pytest.approx(expected, rel=1e-5)
    # good architectures weigh more: the same error costs more at y=1 than at y=0
    assert float(weighted_mse(np.array([0.9]), np.array([1.0]))) > \
        float(weighted_mse(np.array([0.1]), np.array([0.0])))
    # masked rows do not count
    w = np.array([1.0, 0.0], np.float32)
    assert float(weighted_mse(pred, y, w)) == pytest.approx(np.exp(-0.6) * 0.01, rel=1e-5)


def test_gcn_learns_synthetic_target_and_reuses_compiled_program():
    data, y = _dataset(240)
    cfg = PredictorConfig(epochs=60, batch_size=64)
    tr, te = np.arange(160), np.arange(160, 240)
    p = train_predictor(data.take(tr), y[tr], 0, cfg)
    pred, emb = p.predict(data.take(te))
    assert pred.shape == (80,) and emb.shape == (80, 64)
    tau = stats.kendalltau(pred, y[te]).statistic
    assert tau > 0.3, tau  # clearly above chance (0)
    # same data bucket -> no recompilation; same key -> identical model
    p2 = train_predictor(data.take(tr), y[tr], 0, cfg)
    assert p2.compile_s == 0.0
    np.testing.assert_allclose(p2.predict(data.take(te))[0], pred, rtol=1e-5, atol=1e-6)
    p3 = train_predictor(data.take(tr[:150]), y[tr[:150]], 1, cfg)  # same bucket, new key
    assert p3.compile_s == 0.0
    assert not np.allclose(p3.predict(data.take(te))[0], pred)


def test_mlp_baseline_learns_and_bad_targets_rejected():
    data, y = _dataset(200, seed=1)
    p = train_predictor(data.take(np.arange(150)), y[:150], 0,
                        PredictorConfig(model="mlp", epochs=60, batch_size=64))
    tau = stats.kendalltau(p.predict(data.take(np.arange(150, 200)))[0], y[150:]).statistic
    assert tau > 0.4, tau
    with pytest.raises(ValueError, match="percentages"):
        train_predictor(data.take(np.arange(10)), y[:10] * 100, 0)
    with pytest.raises(ValueError, match="one accuracy per graph"):
        train_predictor(data.take(np.arange(10)), y[:9], 0)


@pytest.mark.parametrize("model", ["gcn", "mlp"])
def test_graph_predictor_fit_predict_on_arch_values(model):
    """fit(archs, y) / predict(archs) on a few dozen NB201 cells (no GraphArrays needed)."""
    from jnas.gcn import GraphPredictor
    from jnas.spaces import NB201
    archs = NB201.sample(0, 48)
    y = np.array([sum(o == "nor_conv_3x3" for o in a.ops) / 6 for a in archs], np.float32)
    p = GraphPredictor("nb201", 0, PredictorConfig(model=model, epochs=40, batch_size=16))
    with pytest.raises(ValueError, match="before fit"):
        p.predict(archs[:2])
    pred = p.fit(archs[:36], y[:36]).predict(archs[36:])
    with pytest.raises(ValueError, match="GraphPredictor"):
        p.predictor.predict(archs[36:])  # the low-level predictor wants GraphArrays
    assert pred.shape == (12,) and np.all((pred >= 0) & (pred <= 1))
    assert stats.kendalltau(pred, y[36:]).statistic > 0.2
