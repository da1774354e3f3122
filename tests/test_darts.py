"""Tests of jnas.relax and jnas.darts (DARTS first/second order, GDAS-style).

Behaviour tests drive a tiny toy supernet (one 6-edge NB201-style cell, C=4, 16x16; conftest)
so they compile in seconds on the 2-core CPU; the real ``NB201Supernet`` (C=4, N=1) on real
CIFAR-10 images runs in the session's shared search (conftest ``tiny_darts``) and below for
the second-order, GDAS and DARTS-space variants.
"""
from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TINY, randn, toy_darts_net, toy_data, toy_net
from jnas import darts, less_local, oneshot, relax, registry, snas, spaces, xla
from jnas.config import apply_overrides, config_to_dict


# ----------------------------------------------------------------------------- relaxations
def test_relaxations_are_distributions_and_hard_gumbel_is_straight_through(key):
    alpha = randn(0, (6, 5))
    for w in (relax.softmax_weights(alpha), relax.gumbel_softmax(key, alpha, 0.5),
              relax.hard_gumbel(key, alpha, 1.0)):
        np.testing.assert_allclose(np.asarray(w.sum(-1)), 1.0, rtol=1e-5)
        assert np.all(np.asarray(w) >= -1e-6)
    hard = np.asarray(relax.hard_gumbel(key, alpha, 1.0))
    assert set(np.unique(hard)) <= {0.0, 1.0} and np.all(hard.sum(-1) == 1)
    # Low temperature: Gumbel-softmax is nearly one-hot at the same argmax as the hard sample.
    cold = np.asarray(relax.gumbel_softmax(key, alpha, 1e-3))
    np.testing.assert_array_equal(cold.argmax(-1), hard.argmax(-1))
    # The hard sample's gradient is the soft sample's gradient (straight-through).
    c = randn(3, (6, 5))
    g_hard = jax.grad(lambda a: jnp.sum(c * relax.hard_gumbel(key, a, 1.0)))(alpha)
    g_soft = jax.grad(lambda a: jnp.sum(c * relax.gumbel_softmax(key, a, 1.0)))(alpha)
    np.testing.assert_allclose(np.asarray(g_hard), np.asarray(g_soft), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="PRNG key"):
        relax.relax("gumbel", alpha)
    with pytest.raises(ValueError, match="valid"):
        relax.relax("bogus", alpha, key)


def test_linear_temperature_endpoints():
    assert float(relax.linear_temperature(0, 100)) == pytest.approx(1.0)
    assert float(relax.linear_temperature(99, 100)) == pytest.approx(0.03)
    assert float(relax.linear_temperature(49.5, 100)) == pytest.approx(0.515, rel=1e-4)


# ----------------------------------------------------------------------------- hypergradient
def _virtual_momentum(params, wd):
    """A random momentum buffer like ``params`` and the weight decay of the DARTS code's
    virtual step (float64)."""
    leaves, tdef = jax.tree_util.tree_flatten(params)
    return tdef.unflatten([0.1 * randn(200 + i, p.shape, jnp.float64)
                           for i, p in enumerate(leaves)]), wd


@pytest.mark.parametrize("virtual_momentum", [False, True])
def test_second_order_hypergradient_matches_finite_differences(virtual_momentum):
    """jax.grad through the virtual step equals a central finite difference of
    α -> L_val(w - ξ ∇_w L_train(w, α), α) (float64, tiny problem), plain and with the DARTS
    code's virtual step ``w - ξ (momentum + ∇_w L + wd·w)``."""
    with jax.enable_x64(True):
        net = toy_net()
        xt, yt, xv, yv = toy_data(8)
        k = jax.random.key(0)
        prep = lambda x: oneshot.preprocess(k, jnp.asarray(x), False).astype(jnp.float64)  # noqa
        xt, xv = prep(xt), prep(xv)
        params, bs = net.init(k, xt)
        params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), params)
        alpha = {"cell": 0.3 * randn(1, (6, 5), jnp.float64)}
        loss_fn = darts.make_loss_fn(net, "softmax")
        xi = 0.5
        mom, wd = _virtual_momentum(params, 3e-4) if virtual_momentum else (None, 0.0)
        vg = xla.Compiled(lambda a: darts.second_order_value_and_grad(
            loss_fn, params, bs, a, (xt, yt, k), (xv, yv, k), xi, 1.0, mom, wd),
            options="fastest")
        (lv, _), g = vg(alpha)
        f = lambda a: float(vg({"cell": a})[0][0])  # noqa: E731
        rng = np.random.default_rng(0)
        for _ in range(3):
            d = rng.normal(size=(6, 5))
            eps = 1e-6  # the toy net has ReLU kinks within 1e-3 of alpha
            fd = (f(alpha["cell"] + eps * d) - f(alpha["cell"] - eps * d)) / (2 * eps)
            an = float(jnp.sum(g["cell"] * d))
            assert an == pytest.approx(fd, rel=1e-5, abs=1e-8)
        # and it differs from the first-order gradient (the Hessian term matters here)
        g1 = jax.grad(lambda a: loss_fn(params, bs, a, xv, yv, k, 1.0)[0])(alpha)
        assert float(jnp.abs(g1["cell"] - g["cell"]).max()) > 1e-6


def test_second_order_hypergradient_real_nb201_supernet():
    """The exact hypergradient on the real NB201 supernet with BN (C=4, N=1, float64):
    central finite differences along 3 random directions. (The virtual step with momentum and
    weight decay is checked on the toy supernet above: on this one it triples the compile.)"""
    with jax.enable_x64(True):
        cfg = darts.DARTS2Config(C=4, N=1, compute_dtype="float64")
        net = oneshot.make_supernet("nb201", cfg)
        xt, yt, xv, yv = toy_data(4)
        k = jax.random.key(0)
        prep = lambda x: oneshot.preprocess(k, jnp.asarray(x), False).astype(jnp.float64)  # noqa
        xt, xv = prep(xt), prep(xv)
        params, bs = net.init(k, xt)
        f64 = lambda t: jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), t)  # noqa
        params, bs = f64(params), f64(bs)
        alpha = {"cell": 0.3 * randn(1, (6, 5), jnp.float64)}
        loss_fn = darts.make_loss_fn(net, "softmax")
        vg = xla.Compiled(lambda a: darts.second_order_value_and_grad(
            loss_fn, params, bs, a, (xt, yt, k), (xv, yv, k), 0.5, 1.0),
            options="fastest")
        (_, _), g = vg(alpha)
        f = lambda a: float(vg({"cell": a})[0][0])  # noqa: E731
        rng = np.random.default_rng(0)
        for _ in range(3):
            d = rng.normal(size=(6, 5))
            eps = 1e-6  # small: ReLU masks of the inner gradient flip for larger steps
            fd = (f(alpha["cell"] + eps * d) - f(alpha["cell"] - eps * d)) / (2 * eps)
            an = float(jnp.sum(g["cell"] * d))
            assert an == pytest.approx(fd, rel=1e-4, abs=1e-9)


def test_momentum_buffer_reads_the_sgd_trace():
    params = {"w": jnp.ones((3,))}
    opt = oneshot.weight_optimizer(darts.DARTSConfig(), 10)
    st = opt.init(params)
    assert float(jnp.abs(darts.momentum_buffer(st, params, 0.9)["w"]).max()) == 0.0
    _, st = opt.update({"w": jnp.full((3,), 2.0)}, st, params)
    np.testing.assert_allclose(np.asarray(darts.momentum_buffer(st, params, 0.9)["w"]),
                               0.9 * (2.0 + 5e-4), rtol=1e-6)


# ----------------------------------------------------------------------------- runs
def test_darts_real_supernet_real_images_end_to_end(tiny_darts):
    """The shared 2-epoch search: a valid, scored cell, α moved, one record per epoch, the
    fields the CLI writes already set, the α plot written."""
    res, cfg = tiny_darts.result, tiny_darts.config
    r = res.to_json()
    assert (r["method"], r["space"], r["dataset"], r["seed"]) == ("darts", "nb201", "cifar10", 0)
    assert r["config"] == config_to_dict(cfg) and r["wall_s"] > 0 and "_state" not in r
    arch = spaces.NB201.parse(r["best_arch"])
    assert arch.to_string() == r["genotype"]
    init = oneshot.init_alpha(oneshot.make_supernet("nb201", cfg),
                              jax.random.split(jax.random.key(0), 4)[2], cfg.alpha_init_std)
    moved = np.abs(np.asarray(r["alpha_final"]["cell"]) - np.asarray(init["cell"])).max()
    assert moved > 1e-3
    np.testing.assert_array_equal(np.asarray(tiny_darts.state.alpha["cell"]),
                                  np.asarray(r["alpha_final"]["cell"], np.float32))
    assert len(r["alpha_history"]) == 2 and len(r["trajectory"]) == 2
    assert 0 <= r["bench"]["test_accuracy"] <= 100
    assert set(r["bench"]) >= {"test_accuracy_cifar100", "test_accuracy_ImageNet16-120"}
    assert (tiny_darts.out / "alpha.png").stat().st_size > 1000
    json.dumps(r)  # JSON-ready


def _run(cfg, out, stop_after=None, fn=darts.run_darts):
    """A quiet toy search: ``(result.json dict, state)``."""
    res, state = fn(cfg, space="nb201", dataset="mock", key=3, out_dir=out, net=toy_net(),
                    data=toy_data(), stop_after=stop_after, quiet=True)
    return res.to_json(), state


def _method(method: str, **over):
    """(config, run function) of one of the five CLI one-shot methods, at the TINY size."""
    table = {"darts": (darts.DARTSConfig, darts.run_darts),
             "darts2": (darts.DARTS2Config, darts.run_darts),
             "gdas": (darts.GDASConfig, darts.run_gdas),
             "snas": (snas.SNASConfig, snas.run_snas),
             "less-local": (less_local.LessLocalConfig, less_local.run_less_local)}
    cls, fn = table[method]
    extra = {"population": 2, "eval_batches": 1} if method == "less-local" else {}
    return cls(**{**TINY, **extra, **over}), fn


@pytest.mark.parametrize("method", ["darts", "darts2", "gdas", "snas", "less-local"])
def test_resume_mid_search_gives_identical_state(method, tmp_path):
    """Killed after epoch 1, resumed: the same state as the uninterrupted run. The kill is
    ``stop_after=1`` for DARTS and, for the others, the uninterrupted run's folder cut back
    to epoch 1 (what a kill leaves: no second checkpoint, one history record)."""
    cfg, fn = _method(method)
    full, full_state = _run(cfg, tmp_path / "a", fn=fn)
    meta_path = tmp_path / "b" / "search_progress.json"
    if method == "darts":
        part, _ = _run(cfg, tmp_path / "b", stop_after=1, fn=fn)
        assert len(part["history"]) == 1 and part["history"][0] == full["history"][0]
    else:
        shutil.copytree(tmp_path / "a", tmp_path / "b")
        (tmp_path / "b" / "ckpt" / "ckpt_2.msgpack").unlink()
        meta = json.loads(meta_path.read_text())
        meta_path.write_text(json.dumps({**meta, "history": meta["history"][:1]}))
    # a run saved before a config field existed: refused while the field is off its default
    # (TINY's xla='fastest'), resumed when it is at its default
    meta = json.loads(meta_path.read_text())
    saved = dict(meta["config"])
    assert cfg.xla != type(cfg)().xla
    meta["config"].pop("xla")
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="xla"):
        _run(cfg, tmp_path / "b", fn=fn)
    defaults = config_to_dict(type(cfg)())
    field = next(k for k, v in config_to_dict(cfg).items() if v == defaults[k])
    meta["config"] = {k: v for k, v in saved.items() if k != field}
    meta_path.write_text(json.dumps(meta))
    resumed, resumed_state = _run(cfg, tmp_path / "b", fn=fn)
    assert resumed["best_arch"] == full["best_arch"]
    for a, b in zip(jax.tree_util.tree_leaves(jax.device_get(full_state)),
                    jax.tree_util.tree_leaves(jax.device_get(resumed_state))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [h["train_loss"] for h in resumed["history"]] == \
        [h["train_loss"] for h in full["history"]]
    assert resumed["history"] == full["history"]
    # a different config in the same folder is refused, not overwritten
    with pytest.raises(ValueError, match="different config"):
        _run(_method(method, w_lr=0.1)[0], tmp_path / "b", fn=fn)


@pytest.mark.parametrize("method", ["darts2", "gdas"])
def test_second_order_and_gdas_on_real_images(method, real_data):
    """darts2 and GDAS on real CIFAR-10 images (toy supernet; the real supernet's steps are
    traced below, resume is tested above): α moves, the cell is valid and scored."""
    cfg, fn = _method(method, a_lr=3e-2)
    res = fn(cfg, space="nb201", dataset="cifar10", key=0, out_dir=None, data=real_data,
             quiet=True, net=toy_net())[0].to_json()
    assert res["method"] == method and len(res["history"]) == cfg.epochs
    arch = spaces.NB201.parse(res["best_arch"])
    assert arch.to_string() == res["genotype"]
    a = np.asarray(res["alpha_final"]["cell"])
    assert np.abs(a).max() > 1e-2  # moved well beyond the 1e-3 initialisation
    assert all(np.isfinite(h["val_loss"]) for h in res["history"])
    assert 0 < res["bench"]["test_accuracy"] <= 100


def test_darts_space_search_real_images_end_to_end(real_data):
    """DARTS on a two-cell-type toy supernet with real CIFAR-10 images: α of both cell types
    moves and the genotype follows the DARTS rule (two distinct inputs per node, ``none``
    never chosen)."""
    cfg = darts.DARTSConfig(**{**TINY, "layers": 3, "epochs": 1, "a_lr": 3e-2})
    res = darts.run_darts(cfg, space="darts", dataset="cifar10", key=0, out_dir=None,
                          data=real_data, quiet=True, net=toy_darts_net())[0].to_json()
    g = spaces.DARTS.parse(res["genotype"])
    for cell in (g.normal, g.reduce):
        assert all(op != "none" for op, _ in cell)
        assert all(cell[2 * i][1] != cell[2 * i + 1][1] for i in range(4))
    assert set(res["alpha_final"]) == {"normal", "reduce"}
    for k in ("normal", "reduce"):
        assert np.abs(np.asarray(res["alpha_final"][k])).max() > 1e-2
    assert res["bench"] is None  # no table scores the DARTS space
    assert np.isfinite(res["history"][0]["val_loss"])


@pytest.mark.parametrize("method, space", [("darts2", "nb201"), ("gdas", "nb201"),
                                           ("darts", "darts")])
def test_real_supernet_steps_trace(method, space, real_data):
    """The steps of the real supernets (NB201: second order differentiates the closed-form BN
    backward again; the 3-cell DARTS-space net) trace to a state of the same structure. They
    are traced, not compiled: compiling each takes about a minute on 2 cores (the first-order
    NB201 step compiles in the shared search, the supernets' forward/backward in test_cells)."""
    cfg, _ = _method(method, layers=3)
    setup = oneshot.prepare(cfg, space=space, dataset="cifar10", key=0, data=real_data)
    net = setup.net
    state = jax.eval_shape(lambda: oneshot.build_state(
        net, jax.random.key(0), oneshot.init_alpha(net, jax.random.key(1), 1e-3),
        setup.w_opt, setup.a_opt, setup.sample_x))
    order, relaxation = (2, "softmax") if method == "darts2" else (
        (1, "hard_gumbel") if method == "gdas" else (1, "softmax"))
    step = darts.bilevel_maker(order, relaxation)(net, cfg, setup.w_opt, setup.a_opt, 2)
    batch = {k: v[:8] for k, v in zip(("xt", "yt", "xv", "yv"), real_data)}
    new, m = jax.eval_shape(step, state, batch)
    assert jax.tree.structure(new) == jax.tree.structure(state)
    assert set(m) == {"train_loss", "train_acc", "val_loss", "val_acc"}


def test_methods_in_the_registry_table():
    for name in ("darts", "darts2", "snas", "less-local", "gdas"):
        spec = registry.get_method(name)
        assert spec.kind == "oneshot" and set(spec.spaces) == {"nb201", "darts"}
        assert callable(spec.load())
    assert registry.get_method("darts2").load() in (darts.run_darts, darts.run_darts2)
    cfg = apply_overrides(registry.get_method("darts2").default_config(), ["C=8", "epochs=3"])
    assert (cfg.C, cfg.epochs, cfg.order) == (8, 3, 2)
    with pytest.raises(ValueError, match="valid keys"):
        apply_overrides(darts.DARTSConfig(), ["bogus=1"])


def test_compute_dtype_reaches_the_supernet():
    cfg = darts.DARTSConfig(**{**TINY, "compute_dtype": "bfloat16"})
    net = oneshot.make_supernet("nb201", cfg)
    assert jnp.dtype(net.module.dtype) == jnp.bfloat16
    x = jnp.zeros((2, 32, 32, 3))
    params, _ = jax.eval_shape(lambda: net.init_variables(jax.random.key(0), x))
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))


def test_run_darts2_needs_order_2():
    with pytest.raises(ValueError, match="order=2"):
        darts.run_darts2(darts.DARTSConfig(**TINY), dataset="mock")
