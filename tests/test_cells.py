"""Cells, networks and cost counting (jnas.cells, jnas.cells_darts, jnas.cells_nb101, jnas.cost).

Tiny configs (C=4, N=1, 16x16 images, batch 4); DARTS/NB101 shapes by ``jax.eval_shape``
(tracing only, no compilation) so the file stays fast on a 2-core CPU.
"""
from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import cells, cost, spaces

OPT = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
ZC201_OPS = ["skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3"]


def _onehot(arch: str) -> jnp.ndarray:
    ids = spaces.NB201.parse(arch).op_ids
    return jax.nn.one_hot(jnp.asarray(ids), 5)


def _fast_init(model, *args):
    """Random variables with the model's structure, without compiling ``model.init``.

    (Compiling the init of a scanned supernet is the slowest part of a CPU test: the
    threefry random draws of every parameter; test functions only need *some* weights.)"""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *args, train=True))
    rng = np.random.default_rng(0)

    def fill(path, s):
        name = jax.tree_util.keystr(path)
        if name.endswith("['var']") or name.endswith("['scale']"):
            return jnp.asarray(rng.uniform(0.5, 1.5, s.shape), s.dtype)
        fan_in = int(np.prod(s.shape[:-1][-3:])) if len(s.shape) > 1 else 1
        return jnp.asarray(rng.normal(0, 1 / np.sqrt(max(fan_in, 1)), s.shape), s.dtype)
    return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.fixture(scope="module")
def nb201():
    """A C=4, N=1 supernet, its params, and a batch (initialised once: jit compile)."""
    x = jax.random.normal(jax.random.key(1), (4, 16, 16, 3))
    sup = cells.NB201Supernet(C=4, N=1, num_classes=10)
    w = jnp.full((6, 5), 0.2)
    v = _fast_init(sup, x, w)

    @jax.jit
    def apply(params, bs, x, w):
        return sup.apply({"params": params, "batch_stats": bs}, x, w, train=True,
                         mutable=["batch_stats"])[0]
    return sup, v, x, apply


def test_nb201_supernet_shapes_and_weight_forms(nb201):
    sup, v, x, apply = nb201
    y = apply(v["params"], v["batch_stats"], x, jnp.full((6, 5), 0.2))
    assert y.shape == (4, 10) and bool(jnp.isfinite(y).all())
    # per-cell weights [3N, 6, 5] equal to the shared ones give the same output
    y2 = apply(v["params"], v["batch_stats"], x, jnp.full((3, 6, 5), 0.2))
    np.testing.assert_allclose(y, y2, rtol=1e-5, atol=1e-5)
    # cell params are stacked over the N scanned cells and the edges of one source node
    k = v["params"]["stage_0"]["edges_from_0"]["conv_3x3"]["kernel"]
    assert k.shape == (1, 3, 3, 3, 4, 4)
    with pytest.raises(ValueError, match="edge weights must have shape"):
        sup.apply(v, x, jnp.ones((5, 5)), train=True, mutable=["batch_stats"])


def test_zero_weight_ops_do_not_affect_output(nb201):
    sup, v, x, apply = nb201
    w = _onehot(OPT)  # conv_1x1 only on edge (3<-2); conv_3x3 never on edges 3
    base = apply(v["params"], v["batch_stats"], x, w)
    p = jax.tree_util.tree_map(lambda a: a, v["params"])
    # perturb the 1x1 kernels of edges leaving node 0 (weight 0 there) -> no change
    e0 = dict(p["stage_1"]["edges_from_0"])
    e0["conv_1x1"] = {"kernel": e0["conv_1x1"]["kernel"] + 3.0}
    p2 = {**p, "stage_1": {**p["stage_1"], "edges_from_0": e0}}
    np.testing.assert_allclose(apply(p2, v["batch_stats"], x, w), base, rtol=1e-6, atol=1e-6)
    # ... but perturbing a used 3x3 kernel does change it (the test can fail)
    e0b = dict(p["stage_1"]["edges_from_0"])
    e0b["conv_3x3"] = {"kernel": e0b["conv_3x3"]["kernel"] + 3.0}
    p3 = {**p, "stage_1": {**p["stage_1"], "edges_from_0": e0b}}
    assert float(jnp.abs(apply(p3, v["batch_stats"], x, w) - base).max()) > 1e-3


def test_one_hot_supernet_equals_discrete_network(nb201):
    sup, v, x, apply = nb201
    for arch in (OPT, "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"):
        ys = apply(v["params"], v["batch_stats"], x, _onehot(arch))
        net = cells.NB201Network(arch, C=4, N=1)
        params = cells.nb201_subnet_params(v["params"], arch)
        # the discrete net's own init has the same structure as the inherited params
        ref = jax.eval_shape(lambda: net.init(jax.random.key(0), x, train=True))
        assert (jax.tree_util.tree_structure(ref["params"])
                == jax.tree_util.tree_structure(params))
        yn, _ = net.apply({"params": params, "batch_stats": v["batch_stats"]}, x, train=True,
                          mutable=["batch_stats"])
        np.testing.assert_allclose(ys, yn, rtol=1e-4, atol=1e-4)


def test_static_op_mask_gives_same_function(nb201):
    sup, v, x, apply = nb201
    w = _onehot(OPT)
    mask = tuple(tuple(int(u) for u in row) for row in np.asarray(w))
    masked = cells.NB201Supernet(C=4, N=1, op_mask=mask)
    ym, _ = masked.apply(v, x, w, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(ym, apply(v["params"], v["batch_stats"], x, w),
                               rtol=1e-5, atol=1e-5)


def test_nb201_network_bad_arch():
    with pytest.raises(ValueError):
        cells.nb201_arch(("nor_conv_3x3",) * 5)
    with pytest.raises(ValueError, match="6 ops"):
        cells.nb201_arch(("conv",) * 6)


def test_darts_supernet_and_network_shapes():
    x = jnp.zeros((2, 32, 32, 3))
    w = jnp.full((14, 8), 1 / 8)
    sup = cells.DARTSSupernet(C=4, layers=5)
    out = jax.eval_shape(lambda: sup.init_with_output(jax.random.key(0), x, w, w, train=True))
    assert out[0].shape == (2, 10)
    with pytest.raises(ValueError, match="w_normal must have shape"):
        jax.eval_shape(lambda: sup.init(jax.random.key(0), x, w[:10], w, train=True))
    g = spaces.DARTS.sample(0, 1)[0]
    net = cells.DARTSNetwork(g, C=4, layers=8, auxiliary=True, drop_path=0.2)
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    (logits, aux), v = jax.eval_shape(lambda: net.init_with_output(rngs, x, train=True))
    assert logits.shape == (2, 10) and aux.shape == (2, 10)
    # 8 layers: no scan run; 20 layers: cells 2..5, 8..12, 15..19 are scanned (stacked params)
    deep = cells.DARTSNetwork(g, C=4, layers=20)
    vd = jax.eval_shape(lambda: deep.init(rngs, x, train=False))
    scanned = sorted(k for k in vd["params"] if k.startswith("cells_"))
    assert scanned == ["cells_15_19", "cells_2_5", "cells_8_12"]
    assert vd["params"]["cells_8_12"]["cell"]["pre1"]["Conv_0"]["kernel"].shape[0] == 5
    # parameters of the discrete net match the analytic counter (aux head excluded)
    params = {k: a for k, a in vd["params"].items()}
    n = cost.count_params(params)
    c = cost.arch_cost("darts", g, input_shape=(32, 32, 3), C=4, layers=20)
    assert n == round(c["params_M"] * 1e6)


def test_darts_supernet_numeric_masking():
    """A tiny 3-layer DARTS supernet runs, and a zero-weight op's params do not matter."""
    x = jax.random.normal(jax.random.key(2), (2, 8, 8, 3))
    sup = cells.DARTSSupernet(C=4, layers=3)
    w = jnp.zeros((14, 8)).at[:, 4].set(1.0)  # only sep_conv_3x3
    v = _fast_init(sup, x, w, w)
    f = jax.jit(lambda p: sup.apply({**v, "params": p}, x, w, w, train=True,
                                    mutable=["batch_stats"])[0])
    y = f(v["params"])
    assert y.shape == (2, 10) and bool(jnp.isfinite(y).all())
    p = jax.tree_util.tree_map_with_path(
        lambda path, a: a + 1.0 if "dil_conv_5x5" in jax.tree_util.keystr(path) else a,
        v["params"])
    np.testing.assert_allclose(f(p), y, rtol=1e-5, atol=1e-5)


def test_nb101_network_shapes_and_params(data_dir):
    d = json.loads((data_dir / "nb101" / "zc_nasbench101.json").read_text())
    table = d["nasbench101"]["cifar10"]
    ops_map = ["input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu"]
    x = jnp.zeros((2, 32, 32, 3))
    for k in list(table)[:3]:
        t = [int(u) for u in k.strip("()").split(",")]
        arch = spaces.NB101Arch(np.array(t[:49]).reshape(7, 7), [ops_map[o] for o in t[49:]])
        net = cells.NB101Network(arch)
        y, v = jax.eval_shape(lambda: net.init_with_output(jax.random.key(0), x, train=False))
        assert y.shape == (2, 10)
        n = cost.count_params(v["params"])
        assert abs(n - table[k]["params"] * 1e6) < 1, (n, table[k]["params"])


def test_nb201_cost_matches_benchmark_json(data_dir):
    d = json.loads((data_dir / "nb201" / "zc_nasbench201.json").read_text())
    c = cost.arch_cost("nb201", ("nor_conv_3x3",) * 6)
    assert abs(c["params_M"] - 1.5315) < 1e-4 and abs(c["flops_M"] - 222.86) < 0.01
    shapes = {"cifar10": ((32, 32, 3), 10), "cifar100": ((32, 32, 3), 100),
              "ImageNet16-120": ((16, 16, 3), 120)}
    n = 0
    for ds, (shape, nc) in shapes.items():
        for key, rec in d[ds].items():
            i = [int(u) for u in key.strip("()").split(",")]
            s = (f"|{ZC201_OPS[i[0]]}~0|+|{ZC201_OPS[i[1]]}~0|{ZC201_OPS[i[3]]}~1|+|"
                 f"{ZC201_OPS[i[2]]}~0|{ZC201_OPS[i[4]]}~1|{ZC201_OPS[i[5]]}~2|")
            c = cost.arch_cost("nb201", s, input_shape=shape, num_classes=nc)
            assert abs(c["params_M"] / rec["params"]["score"] - 1) < 1e-4, (ds, s)
            assert abs(c["flops_M"] / rec["flops"]["score"] - 1) < 1e-2, (ds, s)
            n += 1
    assert n > 2000


def test_nb101_cost_matches_benchmark_json(data_dir):
    d = json.loads((data_dir / "nb101" / "zc_nasbench101.json").read_text())
    ops_map = ["input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu"]
    for key, rec in d["nasbench101"]["cifar10"].items():
        t = [int(u) for u in key.strip("()").split(",")]
        arch = spaces.NB101Arch(np.array(t[:49]).reshape(7, 7), [ops_map[o] for o in t[49:]])
        c = cost.arch_cost("nb101", arch)
        assert abs(c["params_M"] / rec["params"] - 1) < 1e-6
        assert abs(c["flops_M"] / rec["flops"] - 1) < 1e-2
        cc = cost.cell_costs("nb101", arch)
        assert cc["params"].shape[0] == 9


def test_op_costs_tables_are_consistent():
    t = cost.op_costs("nb201", C=16, N=5)
    assert t["params"].shape == (6, 5)
    # params of arch = base + sum of the chosen ops' table entries
    base = cost.arch_cost("nb201", ("none",) * 6)
    full = cost.arch_cost("nb201", ("nor_conv_3x3",) * 6)
    assert abs(full["params_M"] - base["params_M"] - t["params"][:, 3].sum()) < 1e-5
    assert abs(full["flops_M"] - base["flops_M"] - t["flops"][:, 3].sum()) < 1e-3
    assert (t["flops"][:, 0] == 0).all() and (t["params"][:, 4] == 0).all()
    dt = cost.op_costs("darts", C=16, layers=8)
    assert dt["flops_normal"].shape == (14, 8)
    assert dt["params_normal"][:, 5].min() > dt["params_normal"][:, 4].max()  # 5x5 > 3x3
    cc = cost.cell_costs("nb201", OPT)
    assert cc["flops"].shape == (15, 6)
    with pytest.raises(ValueError, match="unknown space"):
        cost.arch_cost("nb999", OPT)


def test_supernet_compile_time_cpu():
    """Compile of the test-size NB201 search step (fwd + bwd, C=4 N=1, batch 8) is bounded.

    The real figures (idle vs loaded machine) are in RESULTS.md."""
    sup = cells.NB201Supernet(C=4, N=1)
    x = jnp.zeros((8, 32, 32, 3))
    w = jnp.full((6, 5), 0.2)
    v = jax.eval_shape(lambda: sup.init(jax.random.key(0), x, w, train=True))

    def loss(params, bs, alpha):
        y, _ = sup.apply({"params": params, "batch_stats": bs}, x, jax.nn.softmax(alpha),
                         train=True, mutable=["batch_stats"])
        return y.mean()
    # process CPU seconds, not wall time: the shared test machine is often heavily loaded
    # and XLA compiles (mostly) on one thread, so CPU time ~ wall time on an idle machine.
    t = time.process_time()
    jax.jit(jax.grad(loss, argnums=(0, 2))).lower(v["params"], v["batch_stats"], w).compile()
    assert time.process_time() - t < 60
