"""Tests of jnas.snas (SNAS, Xie et al. 2019): Gumbel sampler statistics, the resource
penalty, and end-to-end search on the real supernet with real CIFAR-10 images."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TINY, toy_data, toy_net
from jnas import cost, oneshot, relax, snas, spaces


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


def _snas(eta, penalty="linear", **kw):
    costs = snas.op_cost_table("nb201", 4, N=1, kind="flops")
    costs = {k: v / v.max() for k, v in costs.items()}
    cfg = snas.SNASConfig(**{**TINY, "epochs": 3, "a_lr": 0.05, "eta": eta, "penalty": penalty,
                             **kw})
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
    """The SNAS step of the real supernets (NB201 C=4 N=1, DARTS space 3 cells) with the
    exact cost table: traced (not compiled), a state of the same structure and a finite-shaped
    expected cost."""
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
    assert m["expected_cost_M"].shape == ()
