"""Tests of jnas.snas (SNAS, Xie et al. 2019): Gumbel sampler statistics, the resource
penalty of the SNAS code (value on hand-computed cells, gradient through the sample), the α
clip, the whole-training-set data, the argmax child of every edge on the DARTS space and its
evaluation network, and end-to-end search on real CIFAR-10 images."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TINY, toy_darts_net, toy_data, toy_net
from jnas import cells, cost, derive, oneshot, relax, snas, spaces


@pytest.mark.parametrize("sampler", ["soft", "hard"])
def test_gumbel_argmax_frequencies_match_softmax(sampler):
    alpha = jnp.array([1.0, -0.5, 0.3, 2.0, -1.0])
    n = 20000
    keys = jax.random.split(jax.random.key(7), n)
    if sampler == "soft":
        z = jax.vmap(lambda k: relax.gumbel_softmax(k, alpha, 0.7))(keys)
    else:
        z = jax.vmap(lambda k: relax.hard_gumbel(k, alpha, 0.7))(keys)
    freq = np.bincount(np.asarray(z.argmax(-1)), minlength=5) / n
    p = np.asarray(jax.nn.softmax(alpha))
    # 4 sigma of a binomial proportion
    tol = 4 * np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) < tol), (freq, p)


def test_op_cost_table_orders_ops():
    for kind in snas.COST_KINDS:
        t = snas.op_cost_table("nb201", 16, N=5, kind=kind)["cell"]
        assert t.shape == (6, 5)
        none, skip, c1, c3, pool = t[0]
        assert none == 0 and c3 > c1 > 0 and c3 > skip and c3 > pool
    d = snas.op_cost_table("darts", 16, layers=8, kind="params")
    assert d["normal"].shape == (14, 8) and d["reduce"].shape == (14, 8)
    ops = spaces.DARTS_OPS
    assert d["normal"][0, ops.index("sep_conv_5x5")] > d["normal"][0, ops.index("sep_conv_3x3")]
    with pytest.raises(ValueError, match="valid"):
        snas.op_cost_table("nb201", 16, kind="watts")


def test_params_and_flops_costs_are_jnas_cost_op_costs():
    """The penalty's params/FLOPs tables are cost.op_costs exactly (one counter)."""
    for C, N, layers in ((16, 5, 8), (4, 1, 5)):
        for kind in ("params", "flops"):
            t = cost.op_costs("nb201", C, N=N, layers=layers)
            np.testing.assert_array_equal(snas.op_cost_table("nb201", C, N=N, kind=kind)["cell"],
                                          t[kind])
            d = cost.op_costs("darts", C, N=N, layers=layers)
            got = snas.op_cost_table("darts", C, layers=layers, kind=kind)
            np.testing.assert_array_equal(got["normal"], d[f"{kind}_normal"])
            np.testing.assert_array_equal(got["reduce"], d[f"{kind}_reduce"])


def _snas(eta, penalty="total_linear", **kw):
    costs = snas.op_cost_table("nb201", 4, N=1, kind="flops")
    costs = {k: v / v.max() for k, v in costs.items()}
    cfg = snas.SNASConfig(**{**TINY, "epochs": 3, "a_lr": 0.05, "eta": eta, "penalty": penalty,
                             "cost": "flops", **kw})
    res, _ = snas.run_snas(cfg, space="nb201", dataset="mock", key=0, out_dir=None,
                           net=toy_net(), data=toy_data(), costs=costs, quiet=True)
    res = res.to_json()
    a = np.asarray(res["alpha_final"]["cell"])
    expected = float((jax.nn.softmax(a, -1) * costs["cell"]).sum())
    discrete = float(costs["cell"][np.arange(6), a.argmax(-1)].sum())
    return res, expected, discrete


def test_larger_eta_gives_cheaper_cell():
    _, e0, d0 = _snas(0.0)
    res, e1, d1 = _snas(5.0)
    assert e1 < e0 - 0.05, (e0, e1)
    assert d1 <= d0
    assert res["eta"] == 5.0
    # the expected-cost metric the step reports falls as the penalty bites
    costs = [h["expected_cost_M"] for h in res["history"]]
    assert costs[-1] < costs[0]


def test_resource_presets_and_bad_values():
    eta = snas.resource_eta
    assert eta(snas.SNASConfig()) == snas.RESOURCE_PRESETS["mild"] == 1.5e-3
    assert eta(snas.SNASConfig(resource="aggressive")) > \
        eta(snas.SNASConfig(resource="moderate")) > eta(snas.SNASConfig())
    assert eta(snas.SNASConfig(eta=0.2)) == 0.2
    with pytest.raises(ValueError, match="resource.*'huge'"):
        snas.SNASConfig(resource="huge")
    with pytest.raises(ValueError, match="penalty"):
        snas.SNASConfig(penalty="square")
    with pytest.raises(ValueError, match="one resource"):
        snas.SNASConfig(penalty="total_log")  # cost='all' is the edge_log form's
    with pytest.raises(ValueError, match="drop_path"):
        snas.SNASConfig(drop_path=1.0)
    with pytest.raises(ValueError, match="split"):
        snas.SNASConfig(split="thirds")
    d = snas.SNASConfig()  # the SNAS code's defaults
    assert (d.penalty, d.cost, d.drop_path, d.a_clip, d.split, d.train_size, d.derive) == \
        ("edge_log", "all", 0.3, 10.0, "all", 50000, "argmax")
    with pytest.raises(ValueError, match="eta"):
        snas.SNASConfig(eta=-1.0)


def test_snas_on_real_images(real_data):
    """SNAS on real CIFAR-10 images (toy supernet; the real supernet's step is traced below):
    α moves, the child is the argmax of every edge, the temperature falls, the cell is
    scored."""
    cfg = snas.SNASConfig(**{**TINY, "a_lr": 3e-2})
    res, _ = snas.run_snas(cfg, space="nb201", dataset="cifar10", key=1, out_dir=None,
                           data=real_data, quiet=True, net=toy_net())
    res = res.to_json()
    assert res["method"] == "snas" and res["eta"] == snas.resource_eta(cfg)
    arch = spaces.NB201.parse(res["best_arch"])
    a = np.asarray(res["alpha_final"]["cell"])
    assert np.abs(a).max() > 1e-2
    np.testing.assert_array_equal(a.argmax(-1), np.array(arch.op_ids))  # argmax every edge
    taus = [h["tau"] for h in res["history"]]
    assert taus[0] > taus[-1]
    assert 0 < res["bench"]["test_accuracy"] <= 100


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_snas_step_of_the_real_supernets_traces(space, real_data):
    """The SNAS step of the real supernets (NB201 C=4 N=1, DARTS space 3 cells, with
    drop-path 0.3 on its edges) with the SNAS-code cost tables: traced (not compiled), a state
    of the same structure and scalar penalty / α-gradient-norm metrics."""
    cfg = snas.SNASConfig(**{**TINY, "layers": 3})
    setup = oneshot.prepare(cfg, space=space, dataset="cifar10", key=0, data=real_data)
    net = setup.net
    state = jax.eval_shape(lambda: oneshot.build_state(
        net, jax.random.key(0), oneshot.init_alpha(net, jax.random.key(1), 1e-3),
        setup.w_opt, setup.a_opt, setup.sample_x))
    step = snas.make_snas_step(net, cfg, setup.w_opt, setup.a_opt, 2)
    batch = {k: v[:8] for k, v in zip(("xt", "yt", "xv", "yv"), real_data)}
    new, m = jax.eval_shape(step, state, batch)
    assert jax.tree.structure(new) == jax.tree.structure(state)
    assert m["resource_penalty"].shape == () and m["alpha_grad_norm"].shape == ()


# ----------------------------------------------------------------------------- official penalty
def _nb201_hand_costs(c: int, h: int) -> np.ndarray:
    """(size, FLOPs, MAC) of the 5 NB201 ops at c channels, h x h pixels, counted by hand the
    SNAS-code way: a ReLU-Conv-BN k x k has c*c*k*k weights, weights x pixels FLOPs and reads
    + writes 2*c*h*h plus its weights; a pool 9 FLOPs per output value, 2*c*h*h MAC; skip
    only its 2*c*h*h MAC; none nothing."""
    a = h * h
    return np.array([[0, 0, 0], [0, 0, 2 * c * a], [c * c, c * c * a, 2 * c * a + c * c],
                     [9 * c * c, 9 * c * c * a, 2 * c * a + 9 * c * c],
                     [0, 9 * c * a, 2 * c * a]], float)


def test_edge_log_penalty_value_on_hand_computed_cells():
    """NB201, C=2, N=1, 4x4 images: cells at (2 ch, 4 px), (4 ch, 2 px), (8 ch, 1 px). The
    penalty is the mean over the 3 cells of Σ_e mean_r log max1(Σ_k Z_ek c_r)."""
    tables = snas.penalty_tables("nb201", 2, N=1, image_hw=4)
    penalty = jax.jit(snas.edge_log_penalty, compiler_options=cells.compiler_options("fastest"))
    hand = [_nb201_hand_costs(c, h) for c, h in ((2, 4), (4, 2), (8, 1))]
    for i in range(3):
        np.testing.assert_array_equal(tables["cell"][i], np.tile(hand[i], (6, 1, 1)))
    # one-hot cell: none, skip, conv1x1, conv3x3, pool, conv3x3
    ops = [0, 1, 2, 3, 4, 3]
    z = np.eye(5)[ops]

    def log1(v):
        return np.log(np.maximum(v, 1.0)) if v >= 1 else 0.0

    want = np.mean([sum(np.mean([log1(hand[i][k, r]) for r in range(3)]) for k in ops)
                    for i in range(3)])
    got = penalty({"cell": jnp.asarray(z)}, tables)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    # the cell (2 ch, 4 px), edge 0 all-conv3x3: size 36, FLOPs 576, MAC 64 + 36 = 100
    assert tables["cell"][0, 0, 3].tolist() == [36, 576, 100]
    # a relaxed sample: an edge cost under 1 counts as 1 (0.05 x skip MAC 16 at 8 ch, 1 px)
    zs = np.zeros((6, 5))
    zs[:, 0] = 1.0
    zs[0] = [0.95, 0.05, 0, 0, 0]  # MAC 0.8, 3.2, 1.6 in the 3 cells -> log 1, log 3.2, 0
    got = penalty({"cell": jnp.asarray(zs)}, tables)
    np.testing.assert_allclose(float(got), np.mean([np.log(3.2) / 3, np.log(1.6) / 3, 0.0]),
                               rtol=1e-5)
    flops_only = snas.penalty_tables("nb201", 2, N=1, image_hw=4, kind="flops")
    assert flops_only["cell"].shape == (3, 6, 5, 1)
    np.testing.assert_allclose(float(penalty({"cell": jnp.asarray(z)}, flops_only)),
                               np.mean([sum(log1(hand[i][k, 1]) for k in ops) for i in range(3)]),
                               rtol=1e-5)


def test_darts_penalty_tables_by_hand():
    """DARTS space, C=4, 3 cells on 8x8 images: cell 0 normal (4 ch, 8 px), cell 1 reduction
    (8 ch, 8 -> 4 px), cell 2 reduction (16 ch, 4 -> 2 px); SNAS-code counts by hand."""
    t = snas.penalty_tables("darts", 4, layers=3, image_hw=8)
    assert t["normal"].shape == (1, 14, 8, 3) and t["reduce"].shape == (2, 14, 8, 3)
    ops = spaces.DARTS_OPS
    # normal cell: sep_conv_3x3 on edge 0 (stride 1, 8x8): size 2*4*9 + 2*16 = 104
    assert t["normal"][0, 0, ops.index("sep_conv_3x3")].tolist() == [104, 104 * 64,
                                                                      64 * 8 * 4 + 104]
    assert t["normal"][0, 3, ops.index("skip_connect")].tolist() == [0, 0, 2 * 4 * 64]
    # first reduction cell, edge 0 from input 0 (stride 2 -> 4x4), 8 channels
    red = t["reduce"][0]
    assert red[0, ops.index("dil_conv_5x5")].tolist() == [8 * 25 + 64, (8 * 25 + 64) * 16,
                                                          16 * 7 * 8 + 8 * 25 + 64]
    assert red[0, ops.index("skip_connect")].tolist() == [64, 64 * 16, 2 * 16 * (32 + 4) + 64]
    assert red[0, ops.index("max_pool_3x3")].tolist() == [0, 9 * 16 * 8, 5 * 16 * 8]
    # edge 4 (node 1 from state 2): stride 1 at 4x4
    assert red[4, ops.index("avg_pool_3x3")].tolist() == [0, 9 * 16 * 8, 2 * 16 * 8]
    assert np.all(red[:, ops.index("none")] == 0)


def test_penalty_gradient_reaches_alpha_through_the_sample():
    """∂penalty/∂α through the Gumbel-softmax sample: positive for the costly conv, negative
    for 'none'."""
    tables = snas.penalty_tables("nb201", 4, N=1)
    key = jax.random.key(3)

    def pen(a):
        return snas.edge_log_penalty({"cell": relax.gumbel_softmax(key, a, 1.0)}, tables)

    grad = jax.jit(jax.grad(pen), compiler_options=cells.compiler_options("fastest"))
    g = np.asarray(grad(jnp.zeros((6, 5))))
    assert np.all(g[:, 3] > 0) and np.all(g[:, 0] < 0)


def test_search_data_is_the_whole_training_set():
    """split='all' (the SNAS default): train_size images of the whole set, the same arrays as
    the 'validation' ones; the halves split stays the DARTS default."""
    cfg = snas.SNASConfig(train_size=12, val_size=4)
    xt, yt, xv, yv = oneshot.load_search_data("mock", cfg, jax.random.key(0))
    assert len(xt) == 12 and xv is xt and yv is yt
    h = oneshot.load_search_data("mock", snas.SNASConfig(train_size=6, val_size=6,
                                                         split="halves"), jax.random.key(0))
    assert (len(h[0]), len(h[2])) == (6, 6) and not np.array_equal(h[0], h[2])
    with pytest.raises(ValueError, match="split"):
        oneshot.load_search_data("mock", dataclasses.replace(cfg, split="x"), jax.random.key(0))


# ----------------------------------------------------------------------------- DARTS-space child
def test_snas_darts_child_keeps_every_non_none_edge():
    """Issue 17's done-when: a tiny SNAS search on the DARTS space (toy supernet, batch 8, 2
    steps) yields the argmax of every edge, so the genotype's edges are exactly the edges
    whose argmax is not 'none' (no top-2 pruning), and its string parses back. The α
    gradient is clipped to norm ``a_clip``: at 1e-10 Adam's step is ~lr * 1e-10 / (1e-10 +
    eps 1e-8), 1 % of the unclipped step."""
    cfg = snas.SNASConfig(**{**TINY, "epochs": 1, "a_lr": 0.3, "alpha_init_std": 1.0,
                             "a_clip": 1e-10, "a_wd": 0.0})
    net = toy_darts_net()
    res, _ = snas.run_snas(cfg, space="darts", dataset="mock", key=0, out_dir=None,
                           net=net, data=toy_data(16), quiet=True)
    res = res.to_json()
    assert res["history"][0]["alpha_grad_norm"] > 1e-6  # the unclipped norm
    a0 = oneshot.init_alpha(net, jax.random.split(jax.random.key(0), 4)[2], 1.0)
    moved = max(np.abs(np.asarray(res["alpha_final"][k]) - np.asarray(a0[k])).max()
                for k in a0)
    assert moved < 2 * 0.3 * 0.02, moved  # 2 Adam steps of lr 0.3, clipped
    g = spaces.DARTS.parse(res["best_arch"])
    assert g.edge_all and spaces.DARTSGenotype.from_string(g.to_string()) == g
    inputs = [j for node in range(4) for j in range(node + 2)]  # input of each of 14 edges
    for which in ("normal", "reduce"):
        best = np.asarray(res["alpha_final"][which]).argmax(-1)
        edges = [(op, j) for op, j in getattr(g, which) if op != "none"]
        want = [(spaces.DARTS_OPS[int(k)], j) for k, j in zip(best, inputs) if k != 0]
        assert edges == want and len(edges) > 8  # more than DARTS's 2 inputs per node
    assert res["history"][0]["arch"] == res["best_arch"]  # per-epoch cells: the same rule
    top2 = derive.discretise("darts", res["alpha_final"])
    assert len(top2.normal) == 8 and not top2.edge_all  # DARTS's rule stays the default


def test_edge_all_network_builds_every_non_none_edge():
    """DARTSNetwork on an edge-all genotype (C=4, 3 cells, 8x8): one parametrised op per
    non-'none' conv edge (params = jnas.cost.arch_cost), a finite forward pass."""
    rng = np.random.default_rng(0)
    al = {"normal": rng.normal(size=(14, 8)), "reduce": rng.normal(size=(14, 8))}
    al["normal"][5, 0] = al["reduce"][13, 0] = 9.0  # two 'none' edges
    g = derive.discretise("darts", al, "argmax")
    assert ("none", 1) in g.nodes("normal")[2] and g.nodes("reduce")[3][4] == ("none", 4)
    net = cells.DARTSNetwork(g, C=4, layers=3)
    x = jnp.asarray(rng.normal(size=(2, 8, 8, 3)), jnp.float32)
    shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), x, train=False))
    n = cost.count_params(shapes["params"])
    assert n == round(cost.arch_cost("darts", g, input_shape=(8, 8, 3), C=4, layers=3)
                      ["params_M"] * 1e6)
    v = jax.tree.map(lambda s: jnp.full(s.shape, 0.1, s.dtype), shapes)
    y = jax.jit(lambda v, x: net.apply(v, x, train=False),
                compiler_options=cells.compiler_options("fastest"))(v, x)
    assert y.shape == (2, 10) and bool(jnp.isfinite(y).all())
