"""Cells, networks and cost counting (jnas.cells, jnas.cells_darts, jnas.cells_nb101, jnas.cost).

Tiny configs (C=4, N=1, 16x16 images, batch 4); DARTS/NB101 shapes by ``jax.eval_shape``
(tracing only, no compilation) so the file stays fast on a 2-core CPU. Compiled functions use
``cells.compiler_options('fastest')`` (XLA CPU options for one-off calls), which the tests
thereby also cover (the discrete reference network is compiled with XLA's defaults).
"""
from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import cells, cost, spaces

from conftest import randn

OPT = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
ZC201_OPS = ["skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3"]


def _jit(f, mode="fastest"):
    """jit with the CPU compile options: 'fastest' for functions called a few times on tiny
    inputs (compile time dominates), 'fast' for the train-step setting."""
    return jax.jit(f, compiler_options=cells.compiler_options(mode))


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
    x = randn(1, (4, 16, 16, 3))
    sup = cells.NB201Supernet(C=4, N=1, num_classes=10)
    w = jnp.full((6, 5), 0.2)
    v = _fast_init(sup, x, w)

    def apply(params, bs, x, w):
        return sup.apply({"params": params, "batch_stats": bs}, x, w, train=True,
                         mutable=["batch_stats"])[0]
    return sup, v, x, _jit(apply)


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
        # reference compiled with XLA's default options (the supernet: 'fastest' options)
        yn, _ = jax.jit(lambda p, bs: net.apply({"params": p, "batch_stats": bs}, x, train=True,
                                                mutable=["batch_stats"]))(params, v["batch_stats"])
        np.testing.assert_allclose(ys, yn, rtol=1e-4, atol=1e-4)


def test_static_op_mask_gives_same_function(nb201):
    sup, v, x, apply = nb201
    w = _onehot(OPT)
    mask = tuple(tuple(int(u) for u in row) for row in np.asarray(w))
    masked = cells.NB201Supernet(C=4, N=1, op_mask=mask)
    ym, _ = _jit(lambda v: masked.apply(v, x, w, train=True, mutable=["batch_stats"]))(v)
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


@pytest.fixture(scope="module")
def darts3():
    """A tiny 3-layer DARTS supernet (C=4, 8x8 images), its variables and a jitted forward."""
    x = randn(2, (2, 8, 8, 3))
    sup = cells.DARTSSupernet(C=4, layers=3)
    w = jnp.zeros((14, 8)).at[:, 4].set(1.0)  # only sep_conv_3x3
    v = _fast_init(sup, x, w, w)
    return sup, v, x, w, _jit(lambda p, x, w: sup.apply({**v, "params": p}, x, w, w,
                                                         train=True, mutable=["batch_stats"])[0])


def test_darts_supernet_numeric_masking(darts3):
    """A tiny 3-layer DARTS supernet runs, and a zero-weight op's params do not matter."""
    sup, v, x, w, f0 = darts3
    f = lambda p: f0(p, x, w)  # noqa: E731
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


def _grad_fn(sup, v, x):
    """Grads (params, alpha) of a non-degenerate scalar of the supernet logits (a random
    projection per sample: ``logits.sum()`` has ~zero gradient through the last BN)."""
    r = randn(5, (x.shape[0], 10))

    def loss(params, alpha):
        y, _ = sup.apply({"params": params, "batch_stats": v["batch_stats"]}, x,
                         jax.nn.softmax(alpha), train=True, mutable=["batch_stats"])
        return (y * r).sum()
    return jax.grad(loss, argnums=(0, 1))


@pytest.fixture(scope="module")
def nb201_grad(nb201):
    """The float32 (params, alpha) gradient of the test-size NB201 supernet (C=4, N=1,
    batch 8, 32x32), compiled once with ``cells.compiler_options('fastest')``; with the
    process CPU seconds its lowering + compilation took."""
    sup, v, _, _ = nb201
    x = randn(3, (8, 32, 32, 3))
    alpha = 0.5 * randn(4, (6, 5))
    # process CPU seconds, not wall time: the shared test machine is often heavily loaded
    t = time.process_time()
    g = _jit(_grad_fn(sup, v, x)).lower(v["params"], alpha).compile()
    return x, alpha, g, time.process_time() - t


def test_compiler_options_per_backend_and_mode():
    """XLA-CPU option sets by mode; accelerators keep XLA's defaults; a bad mode is refused.
    (Compile times are measured by experiments/compile_cpu.py, BENCHMARKS.md, not here.)"""
    assert cells.compiler_options(backend="cpu") == cells.CPU_FAST_COMPILE
    assert cells.compiler_options("fastest", "cpu") == cells.CPU_FASTEST_COMPILE
    assert cells.compiler_options(backend="gpu") is None
    assert cells.compiler_options(None, backend="cpu") is None
    assert cells.compiler_options("none", backend="cpu") is None  # --set xla=none
    with pytest.raises(ValueError, match="mode"):
        cells.compiler_options("turbo")


def test_batch_norm_custom_vjp_matches_autodiff():
    """The closed-form BN backward equals autodiff of the forward, to second order, and
    also for the cotangents of the returned statistics."""
    x = 2.0 * randn(10, (4, 5, 5, 3)) + 1.0
    sc, b = randn(11, (3,)), randn(12, (3,))
    r1, r2 = randn(13, x.shape), randn(14, (3,))

    def ref(x, sc, b):
        xf = x.astype(jnp.float32)
        mean = xf.mean((0, 1, 2))
        var = jnp.maximum((xf * xf).mean((0, 1, 2)) - mean * mean, 0.0)
        return ((xf - mean) * jax.lax.rsqrt(var + 1e-5) * sc + b).astype(x.dtype), mean, var

    def loss(bn):
        def f(x, sc, b):
            y, m, v = bn(x, sc, b)
            return (jnp.sin(y.astype(jnp.float32)) * r1).sum() + (m * r2 + v * r2 ** 2).sum()
        return f
    custom = lambda x, sc, b: cells.batch_norm_train(x, sc, b, 1e-5)  # noqa: E731

    def second(bn):  # grad of a function of the grad (the second-order DARTS pattern)
        return lambda x, sc, b: (jax.grad(loss(bn))(x, sc, b) ** 2).sum()

    def everything(bn):  # one compiled program per implementation (eager is slow)
        return _jit(lambda x, sc, b: (bn(x, sc, b), jax.grad(loss(bn), (0, 1, 2))(x, sc, b),
                                      jax.grad(second(bn), (0, 1))(x, sc, b)))
    (y1, g1, h1), (y2, g2, h2) = everything(custom)(x, sc, b), everything(ref)(x, sc, b)
    for a, c in zip(y1, y2):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)
    for a, c in zip(g1, g2):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)
    for a, c in zip(h1, h2):
        np.testing.assert_allclose(a, c, rtol=1e-3, atol=1e-4)
    # bf16 input: bf16 output and input cotangent, float32 statistics (dtypes: no compile)
    xb = x.astype(jnp.bfloat16)
    yb, mb, _ = jax.eval_shape(custom, xb, sc, b)
    assert yb.dtype == jnp.bfloat16 and mb.dtype == jnp.float32
    assert jax.eval_shape(jax.grad(loss(custom)), xb, sc, b).dtype == jnp.bfloat16


def _cos(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_nb201_bf16_close_to_fp32_with_fp32_params_and_grads(nb201, nb201_grad):
    sup, v, x, apply = nb201
    x8, alpha, g32_fn, _ = nb201_grad
    sup16 = cells.NB201Supernet(C=4, N=1, dtype="bfloat16")
    w = jax.nn.softmax(alpha)
    # the float32 variables of the fp32 supernet drive the bf16 one unchanged
    y16 = _jit(lambda v, x, w: sup16.apply(v, x, w, train=True, mutable=["batch_stats"])[0])(
        v, x, w)
    y32 = apply(v["params"], v["batch_stats"], x, w)
    assert y16.dtype == jnp.float32 and bool(jnp.isfinite(y16).all())
    err = float(jnp.abs(y16 - y32).max())
    assert 0 < err < 0.05 * float(jnp.abs(y32).max())  # bf16 really used; close (~0.2 %)
    g16 = _jit(_grad_fn(sup16, v, x8))(v["params"], alpha)
    g32 = g32_fn(v["params"], alpha)
    assert {a.dtype for a in jax.tree.leaves(g16)} == {jnp.dtype(jnp.float32)}
    assert all(bool(jnp.isfinite(a).all()) for a in jax.tree.leaves(g16))
    assert _cos(g16[1], g32[1]) > 0.9  # alpha gradient (~0.99 measured)
    p16 = np.concatenate([np.ravel(a) for a in jax.tree.leaves(g16[0])])
    p32 = np.concatenate([np.ravel(a) for a in jax.tree.leaves(g32[0])])
    assert _cos(p16, p32) > 0.9
    # the discrete network takes the option too (shapes/dtypes only: no compile)
    net = cells.NB201Network(OPT, C=4, N=1, dtype="bfloat16")
    out, vn = jax.eval_shape(lambda: net.init_with_output(jax.random.key(0), x, train=True))
    assert out.dtype == jnp.float32
    assert {a.dtype for a in jax.tree.leaves(vn)} == {jnp.dtype(jnp.float32)}
    with pytest.raises(ValueError, match="compute dtype"):
        jax.eval_shape(lambda: cells.NB201Supernet(C=4, N=1, dtype="int8").init(
            jax.random.key(0), x, w, train=True))


def test_darts_edge_input_broadcast_is_the_same_function(darts3, monkeypatch):
    """The CPU layout (shared input broadcast to the edges before the edge vmap) and the GPU
    layout (shared input, kernels batched) compute the same supernet."""
    from jnas import cells_darts
    sup, v, x, w, f = darts3
    wn = jax.nn.softmax(randn(7, w.shape))
    assert cells_darts.broadcast_edge_inputs()  # CPU default: the fixture's ``f`` broadcasts
    y_cpu = f(v["params"], x, wn)
    monkeypatch.setattr(cells_darts, "BROADCAST_EDGE_INPUTS", False)
    assert not cells_darts.broadcast_edge_inputs()
    y_gpu = _jit(lambda p: sup.apply({**v, "params": p}, x, wn, wn, train=True,
                                     mutable=["batch_stats"])[0])(v["params"])
    np.testing.assert_allclose(y_cpu, y_gpu, rtol=1e-4, atol=1e-4)  # f32 rounding, 3 cells
    assert float(jnp.abs(y_cpu).max()) > 1e-3


def test_darts_bf16_close_to_fp32_with_fp32_grads(darts3):
    sup, v, x, w, f32 = darts3
    sup16 = cells.DARTSSupernet(C=4, layers=3, dtype="bfloat16")
    y16 = _jit(lambda p: sup16.apply({**v, "params": p}, x, w, w, train=True,
                                     mutable=["batch_stats"])[0])(v["params"])
    y32 = f32(v["params"], x, w)
    assert y16.dtype == jnp.float32 and bool(jnp.isfinite(y16).all())
    err = float(jnp.abs(y16 - y32).max())
    assert 0 < err < 0.05 * float(jnp.abs(y32).max())
    # it ran on the float32 params ``v``; a gradient has its primal's dtype, so the weight
    # gradients are float32 (checked numerically for NB201 above)
    assert {a.dtype for a in jax.tree.leaves(v["params"])} == {jnp.dtype(jnp.float32)}
    g0 = spaces.DARTS.sample(0, 1)[0]
    net = cells.DARTSNetwork(g0, C=4, layers=3, dtype="bfloat16")
    out, vn = jax.eval_shape(lambda: net.init_with_output(jax.random.key(0), x, train=False))
    assert out.dtype == jnp.float32
    assert {a.dtype for a in jax.tree.leaves(vn)} == {jnp.dtype(jnp.float32)}
