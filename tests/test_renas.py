"""Tests for jnas.renas: feature tensors, standardisation, loss, predictor, searchers."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import renas
from jnas.metrics import kendall_tau, kendall_tau_jax
from jnas.spaces import NB201, NB201_OPS as OPS, NB201Arch, get_space


def _synthetic_score(arch) -> float:
    """A known ranking: 3x3 convs count most, 1x1 convs half."""
    return sum(o == "nor_conv_3x3" for o in arch.ops) + 0.5 * sum(
        o == "nor_conv_1x1" for o in arch.ops) + 0.01 * arch.to_index() / 15625


def test_rank_loss_equals_double_loop():
    rng = np.random.default_rng(0)
    pred, y = rng.normal(size=7).astype(np.float32), rng.normal(size=7).astype(np.float32)
    y[3] = y[1]  # a tie
    brute = []
    for i, j in itertools.permutations(range(7), 2):
        z = (pred[i] - pred[j]) * np.sign(y[i] - y[j])
        brute.append(np.log1p(np.exp(-z)))
    got = float(renas.pairwise_rank_loss(jnp.asarray(pred), jnp.asarray(y)))
    assert got == pytest.approx(np.mean(brute), rel=1e-5)
    assert float(renas.mse_loss(jnp.asarray(pred), jnp.asarray(y))) == pytest.approx(
        np.mean((pred - y) ** 2), rel=1e-5)


def test_kendall_tau_jax_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=40), rng.normal(size=40)
    b[:5] = b[5]  # ties -> tau-b
    assert float(kendall_tau_jax(jnp.asarray(a), jnp.asarray(b))) == pytest.approx(
        kendall_tau(a, b), abs=1e-5)


def test_nb101_features_hand_made_cell():
    # input -> conv3x3 -> output, input -> maxpool -> output: 4 nodes padded to 7.
    m = [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]
    f = renas.nb101_features(m, ops)
    assert f.shape == (19, 7, 7)
    t = f[0]
    assert t[0, 1] == 3 and t[0, 2] == 4          # edge value = op id of the node it enters
    assert t[1, 6] == 5 and t[2, 6] == 5          # output moved to the last node
    assert np.count_nonzero(t) == 4 and not t[:, 3:6].any() and not t[3:6].any()
    # Cell 1 (128 -> 128 channels, 32x32): two vertices feed the output -> 64 channels each.
    conv_flops = (128 * 64 + 64 * 64 * 9) * 32 * 32 / 1e7
    proj_params = (128 * 64 + 2 * 64) / 1e5
    assert f[1, 0, 1] == pytest.approx(conv_flops, rel=1e-6)
    assert f[2, 0, 2] == pytest.approx(proj_params, rel=1e-6)
    assert f[1, 1, 6] == 0.0                      # output vertex: no projection, no cost
    # Last cell (512 -> 512 at 8x8): 256 channels per vertex.
    assert f[17, 0, 1] == pytest.approx((512 * 256 + 256 * 256 * 9) * 64 / 1e7, rel=1e-6)
    with pytest.raises(ValueError, match="unknown ops"):
        renas.nb101_features(m, ["input", "conv5x5", "maxpool3x3", "output"])


def test_nb201_features_layout():
    arch = NB201Arch.from_string(
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|")
    f = renas.features(NB201, [arch])[0]
    assert f.shape == (7, 8, 8)
    t = f[0]
    # node 1 = edge (1,0) nor_conv_3x3 (id 5): fed by the input, feeds edges leaving node 1.
    assert t[0, 1] == 5 and t[1, 3] == 3 and t[1, 5] == 4   # skip (2,1), conv1x1 (3,1)
    assert t[0, 2] == 2 and t[0, 4] == 6                      # none (2,0), avg_pool (3,0)
    assert t[3, 6] == 5 and t[2, 6] == 5                      # into edge (3,2)
    assert t[4, 7] == 7 and t[5, 7] == 7 and t[6, 7] == 7 and t[1, 7] == 0
    assert f[1, 0, 1] == pytest.approx(16 * 16 * 9 * 32 * 32 / 1e7)   # stage-1 FLOPs
    assert f[6, 3, 6] == pytest.approx((64 * 64 * 9 + 128) / 1e5)     # stage-3 params
    assert f[1, 0, 2] == 0.0                                          # 'none' costs nothing


def test_standardizer_fitted_on_train_only():
    rng = np.random.default_rng(0)
    train = rng.normal(2.0, 3.0, size=(50, 2, 3, 3)).astype(np.float32)
    train[:, 0, 0, 0] = 7.0                       # constant element
    test = rng.normal(10.0, 1.0, size=(20, 2, 3, 3)).astype(np.float32)
    st = renas.Standardizer.fit(train)
    z = st(train)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0)[0, 1:], 1, atol=1e-4)
    assert np.all(z[:, 0, 0, 0] == 0)
    zt = st(test)                                 # uses train statistics, not the test ones
    np.testing.assert_allclose(zt, (test - train.mean(0)) / st.std, rtol=1e-5, atol=1e-5)
    assert zt.mean() > 1.0
    with pytest.raises(ValueError, match="differs"):
        st(np.zeros((3, 2, 4, 4)))
    y, lo, hi = renas.minmax([3.0, 5.0, 4.0])
    np.testing.assert_allclose(y, [0, 1, 0.5]) and (lo, hi) == (3.0, 5.0)


def test_predictor_learns_synthetic_ranking():
    archs = NB201.sample(0, 60)
    held = NB201.sample(1, 200)
    y = np.array([_synthetic_score(a) for a in archs])
    tp = renas.train_predictor(0, renas.features(NB201, archs), y, epochs=30)
    assert tp.train_tau.shape == (30,) and tp.best_train_tau == pytest.approx(tp.train_tau.max())
    pred = tp.predict(renas.features(NB201, held))
    tau = kendall_tau([_synthetic_score(a) for a in held], pred)
    assert tau > 0.5, tau
    with pytest.raises(ValueError, match="unknown loss"):
        renas.train_predictor(0, renas.features(NB201, archs), y, loss="hinge")


class _FakeEvaluator:
    def __init__(self):
        self.num_queries = 0

    def evaluate(self, archs):
        self.num_queries += len(archs)
        return [_synthetic_score(a) for a in archs]


def _run(searcher, budget):
    ev, asked = _FakeEvaluator(), []
    for _ in range(budget):
        a = searcher.ask(1)
        searcher.tell(a, ev.evaluate(a))
        asked += a
    return asked, ev


def test_searcher_deterministic_and_query_count():
    cfg = renas.ReNASConfig(train_size=30, top_k=5, epochs=15)
    pool = NB201.sample(3, 400)
    runs = [_run(renas.ReNASSearcher(NB201, jax.random.key(s), cfg, candidates=pool), 35)
            for s in (0, 0, 1)]
    (a0, ev0), (a1, _), (a2, _) = runs
    assert [a.to_string() for a in a0] == [a.to_string() for a in a1]
    assert [a.to_string() for a in a0] != [a.to_string() for a in a2]
    assert ev0.num_queries == cfg.train_size + cfg.top_k
    assert len({a.to_string() for a in a0}) == 35          # all distinct
    # The top-k picks are better on average than the random training cells.
    train_mean = np.mean([_synthetic_score(a) for a in a0[:30]])
    assert np.mean([_synthetic_score(a) for a in a0[30:]]) > train_mean
    with pytest.raises(ValueError, match="train_size"):
        renas.ReNASSearcher(NB201, jax.random.key(0), renas.ReNASConfig(train_size=1))


def test_ranked_picks_skip_isomorphs_of_asked_cells():
    from jnas.search_history import iso_key
    from jnas.spaces import NB201Arch
    base = [list(a.ops) for a in NB201.sample(5, 60)]
    pool = []  # node 1 feeds nothing: the op on edge (1, 0) does not matter -> 5 isomorphs each
    for ops in base:
        ops[2] = ops[4] = "none"
        pool += [NB201Arch(tuple([o] + ops[1:])) for o in NB201.ops]
    pool = NB201.dedup(pool)
    cfg = renas.ReNASConfig(train_size=30, top_k=8, epochs=5)
    asked, _ = _run(renas.ReNASSearcher(NB201, jax.random.key(0), cfg, candidates=pool), 38)
    keys = [iso_key(a) for a in asked]
    assert len(set(keys[30:])) == 8 and not set(keys[30:]) & set(keys[:30])
    off = renas.ReNASConfig(train_size=30, top_k=8, epochs=5, skip_isomorphs=False)
    asked, _ = _run(renas.ReNASSearcher(NB201, jax.random.key(0), off, candidates=pool), 38)
    keys = [iso_key(a) for a in asked]
    assert len({a.to_string() for a in asked}) == 38 and len(set(keys)) < 38


def test_renas_pool_is_the_restricted_space(data_dir):
    from jnas.benchmarks import load_nb201
    from jnas.tables import TableBench, TableSpace
    bench = load_nb201()
    archs = [NB201.parse(str(s)) for s in bench.arch_strings[:300]]
    t = TableBench("nb201", archs, np.arange(300.0), np.arange(300.0), "v", "v",
                   [a.to_string() for a in archs])
    s = renas.ReNASSearcher(TableSpace(t, NB201), 0, renas.ReNASConfig(train_size=20))
    assert {a.to_string() for a in s.pool} == {a.to_string() for a in archs}


def test_registry_and_nb101_pool(data_dir):
    from jnas import registry
    spec = registry.get_method("renas")
    assert spec.kind == "sample" and set(spec.spaces) == {"nb201", "nb101"}
    cfg = renas.ReNASConfig(train_size=20, top_k=3, epochs=5)
    s = spec.load()(get_space("nb101"), jax.random.key(0), cfg)
    from jnas.benchmarks import load_nb101_json
    assert len(s.pool) == len(load_nb101_json()) > 100   # every (deduplicated) table cell
    x = renas.features("nb101", s.pool[:5])
    assert x.shape == (5, 19, 7, 7) and np.all(np.isfinite(x))
    with pytest.raises(ValueError, match="spaces 'nb201' and 'nb101'"):
        renas.features("darts", [])
    # the paper's 424 training cells do not fit the offline table: a clear error, no search
    with pytest.raises(ValueError, match=r"train_size must be in \[2, \d+\].*full NB101"):
        spec.load()(get_space("nb101"), jax.random.key(0), renas.ReNASConfig())


def test_predictor_guided_evolution_runs():
    cfg = renas.PGEConfig(warmup=20, candidates=10, retrain_every=1000, epochs=5)
    s = renas.PredictorGuidedEvolution(NB201, jax.random.key(0), cfg)
    asked, ev = _run(s, 26)
    assert s.predictor is not None and ev.num_queries == 26
    s2 = renas.PredictorGuidedEvolution(NB201, jax.random.key(0), cfg)
    assert [a.to_string() for a in _run(s2, 26)[0]] == [a.to_string() for a in asked]


def test_ranking_predictor_fit_predict_on_arch_values():
    archs = NB201.sample(0, 40)
    y = [_synthetic_score(a) for a in archs]
    p = renas.RankingPredictor("nb201", 0, epochs=20)
    with pytest.raises(ValueError, match="before fit"):
        p.predict(archs[:2])
    pred = p.fit(archs[:30], y[:30]).predict(archs[30:])
    assert pred.shape == (10,)
    assert kendall_tau(y[30:], pred) > 0.3


def test_configs_check_themselves_and_names_accepted():
    with pytest.raises(ValueError, match="ReNASConfig.loss"):
        renas.ReNASConfig(loss="hinge")
    with pytest.raises(ValueError, match="PGEConfig.sample"):
        renas.PGEConfig(population=2, sample=3)
    s = renas.make_renas("nb201", 0, renas.ReNASConfig(train_size=4, top_k=1, epochs=2))
    assert len(s.ask(4)) == 4
