"""Tests of jnas.relax, jnas.darts (DARTS first/second order, GDAS-style) and jnas.oneshot.

Most behaviour tests drive a tiny toy supernet (one 6-edge NB201-style cell, C=4, 16x16) so
they compile in seconds on the 2-core CPU; one test runs the real ``NB201Supernet`` (C=4, N=1)
on real CIFAR-10 images end to end.
"""
from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import darts, oneshot, relax, snas, spaces
from jnas.config import config_to_dict
from jnas.data import mock_cifar
from jnas.oneshot import Supernet


class ToyCell(nn.Module):
    """One NB201-style cell (6 edges x 5 ops) on a strided stem; edge weights from outside."""
    C: int = 4

    @nn.compact
    def __call__(self, x, w, train=True):
        x = nn.Conv(self.C, (3, 3), strides=2)(x)
        nodes, e = [x], 0
        for i in range(1, 4):
            acc = 0.0
            for j in range(i):
                h = nodes[j]
                outs = [jnp.zeros_like(h), h, nn.Conv(self.C, (1, 1))(nn.relu(h)),
                        nn.Conv(self.C, (3, 3))(nn.relu(h)),
                        nn.avg_pool(h, (3, 3), (1, 1), "SAME")]
                acc = acc + sum(w[e, k] * o for k, o in enumerate(outs))
                e += 1
            nodes.append(acc)
        return nn.Dense(10)(nodes[-1].mean((1, 2)))


def toy_net() -> Supernet:
    return Supernet("nb201", ToyCell(), {"cell": (6, 5)}, tuple(spaces.NB201_OPS))


def toy_data(n: int = 32, seed: int = 1):
    x, y = mock_cifar(2 * n, jax.random.key(seed), image_size=16)
    return x[:n], y[:n], x[n:], y[n:]


TINY = dict(C=4, N=1, batch_size=8, epochs=2, train_size=16, val_size=16, plot=False,
            xla="fastest")  # a few steps: compile time dominates


def real_data(data_dir, n: int = 16):
    from jnas.data import load_cifar10
    x, y = load_cifar10(split="train", max_per_class=(2 * n) // 10 + 1)
    perm = np.random.default_rng(0).permutation(len(x))[:2 * n]
    x, y = x[perm], y[perm].astype(np.int32)
    return x[:n], y[:n], x[n:], y[n:]


# ----------------------------------------------------------------------------- relaxations
def test_relaxations_are_distributions_and_hard_gumbel_is_straight_through(key):
    alpha = jax.random.normal(key, (6, 5))
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
    c = jax.random.normal(jax.random.key(3), (6, 5))
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
def test_second_order_hypergradient_matches_finite_differences():
    """jax.grad through the virtual step equals a central finite difference of
    α -> L_val(w - ξ ∇_w L_train(w, α), α) (float64, tiny problem)."""
    with jax.enable_x64(True):
        net = toy_net()
        xt, yt, xv, yv = toy_data(8)
        k = jax.random.key(0)
        prep = lambda x: oneshot.preprocess(k, jnp.asarray(x), False).astype(jnp.float64)  # noqa
        xt, xv = prep(xt), prep(xv)
        params, bs = net.init(k, xt)
        params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), params)
        alpha = {"cell": 0.3 * jax.random.normal(jax.random.key(1), (6, 5), jnp.float64)}
        loss_fn = darts.make_loss_fn(net, "softmax")
        xi = 0.5
        (lv, _), g = jax.jit(lambda a: darts.second_order_value_and_grad(
            loss_fn, params, bs, a, (xt, yt, k), (xv, yv, k), xi))(alpha)

        @jax.jit
        def f_(a):
            (v, _), _ = darts.second_order_value_and_grad(
                loss_fn, params, bs, {"cell": a}, (xt, yt, k), (xv, yv, k), xi)
            return v
        f = lambda a: float(f_(a))  # noqa: E731
        rng = np.random.default_rng(0)
        for _ in range(3):
            d = rng.normal(size=(6, 5))
            eps = 1e-4
            fd = (f(alpha["cell"] + eps * d) - f(alpha["cell"] - eps * d)) / (2 * eps)
            an = float(jnp.sum(g["cell"] * d))
            assert an == pytest.approx(fd, rel=1e-5, abs=1e-8)
        # and it differs from the first-order gradient (the Hessian term matters here)
        g1 = jax.grad(lambda a: loss_fn(params, bs, a, xv, yv, k, 1.0)[0])(alpha)
        assert float(jnp.abs(g1["cell"] - g["cell"]).max()) > 1e-6


# ----------------------------------------------------------------------------- discretise
def test_discretise_rules():
    a = np.zeros((6, 5))
    a[:, 1] = 1.0
    a[2, 0] = 5.0  # 'none' wins edge 2: NB201 keeps it (argmax over all ops)
    arch = oneshot.discretise("nb201", {"cell": a})
    assert arch.ops[2] == "none" and arch.ops[0] == "skip_connect"
    rng = np.random.default_rng(0)
    al = {"normal": rng.normal(size=(14, 8)), "reduce": rng.normal(size=(14, 8))}
    al["normal"][:, 0] = 10.0  # 'none' strongest everywhere: must still be excluded
    g = oneshot.discretise("darts", al)
    assert isinstance(g, spaces.DARTSGenotype)
    assert all(op != "none" for op, _ in g.normal + g.reduce)
    spaces.DARTS.validate(spaces.DARTS.parse(g.to_string()))
    # node 0 (edges 0,1) keeps both its inputs; the strongest edges are chosen elsewhere
    assert [j for _, j in g.normal[:2]] == [0, 1]
    p = np.array(oneshot.alpha_probs(al)["reduce"])
    p[:, 0] = -np.inf
    rows = p[2:5].max(1)
    assert sorted(j for _, j in g.reduce[2:4]) == sorted(np.argsort(-rows)[:2].tolist())


# ----------------------------------------------------------------------------- runs
def test_darts_real_supernet_real_images_end_to_end(data_dir, tmp_path):
    data = real_data(data_dir)
    cfg = darts.DARTSConfig(**{**TINY, "plot": True, "a_lr": 3e-2})
    res = darts.run_darts(cfg, space="nb201", dataset="cifar10", key=0, out_dir=tmp_path,
                          data=data)
    res.pop("_state")
    arch = spaces.NB201.parse(res["best_arch"])
    assert arch.to_string() == res["genotype"]
    init = oneshot.init_alpha(oneshot.make_supernet("nb201", cfg),
                              jax.random.split(jax.random.key(0), 4)[2], cfg.alpha_init_std)
    moved = np.abs(np.asarray(res["alpha_final"]["cell"]) - np.asarray(init["cell"])).max()
    assert moved > 1e-3
    assert len(res["alpha_history"]) == 2 and len(res["trajectory"]) == 2
    assert 0 <= res["bench"]["test_accuracy"] <= 100
    assert set(res["bench"]) >= {"test_accuracy_cifar100", "test_accuracy_ImageNet16-120"}
    assert (tmp_path / "alpha.png").stat().st_size > 1000
    json.dumps(res)  # JSON-ready


def _run(cfg, out, stop_after=None, fn=darts.run_darts):
    return fn(cfg, space="nb201", dataset="mock", key=3, out_dir=out, net=toy_net(),
              data=toy_data(), stop_after=stop_after)


def _method(method: str, **over):
    """(config, run function) of one of the five CLI one-shot methods, at the TINY size."""
    from jnas import less_local
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
    cfg, fn = _method(method)
    full = _run(cfg, tmp_path / "a", fn=fn)
    part = _run(cfg, tmp_path / "b", stop_after=1, fn=fn)
    assert len(part["history"]) == 1
    # a run saved before a config field existed: refused while the field is off its default
    # (TINY's xla='fastest'), resumed when it is at its default
    meta_path = tmp_path / "b" / "search_progress.json"
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
    resumed = _run(cfg, tmp_path / "b", fn=fn)
    assert resumed["best_arch"] == full["best_arch"]
    for a, b in zip(jax.tree_util.tree_leaves(jax.device_get(full["_state"])),
                    jax.tree_util.tree_leaves(jax.device_get(resumed["_state"]))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [h["train_loss"] for h in resumed["history"]] == \
        [h["train_loss"] for h in full["history"]]
    assert resumed["history"][0] == part["history"][0]  # epoch 1 kept, not re-run
    # a different config in the same folder is refused, not overwritten
    with pytest.raises(ValueError, match="different config"):
        _run(_method(method, w_lr=0.1)[0], tmp_path / "b", fn=fn)


def test_config_mismatch_names_the_field():
    from jnas.oneshot import config_mismatch
    saved = {"w_lr": 0.025, "epochs": 2}
    assert config_mismatch(saved, {"w_lr": 0.025, "epochs": 2, "xla": "fast"},
                           {"xla": "fast"}) == ""
    assert "xla" in config_mismatch(saved, {"w_lr": 0.025, "epochs": 2, "xla": None},
                                    {"xla": "fast"})
    assert "w_lr" in config_mismatch(saved, {"w_lr": 0.1, "epochs": 2}, {})
    assert "epochs" in config_mismatch(saved, {"w_lr": 0.025}, {})


@pytest.mark.parametrize("method", ["darts2", "gdas"])
def test_second_order_and_gdas_real_images_killed_and_resumed(method, data_dir, tmp_path):
    """Real NB201Supernet (C=4, N=1) on real CIFAR-10 images: killed after epoch 1, resumed;
    α moves, the genotype is valid and scored by the table."""
    cfg, fn = _method(method, a_lr=3e-2)
    kw = dict(space="nb201", dataset="cifar10", key=0, out_dir=tmp_path,
              data=real_data(data_dir))
    part = fn(cfg, stop_after=1, **kw)
    assert len(part["history"]) == 1
    res = fn(cfg, **kw)
    assert res["method"] == method
    assert [h["epoch"] for h in res["history"]] == [1, 2]
    assert res["history"][0] == part["history"][0]
    arch = spaces.NB201.parse(res["best_arch"])
    assert arch.to_string() == res["genotype"]
    a = np.asarray(res["alpha_final"]["cell"])
    assert np.abs(a).max() > 1e-2  # moved well beyond the 1e-3 initialisation
    assert all(np.isfinite(h["val_loss"]) for h in res["history"])
    assert 0 < res["bench"]["test_accuracy"] <= 100


def test_darts_space_search_real_images_end_to_end(data_dir):
    """DARTS on the DARTS-space supernet (C=4, 3 layers: normal, reduction, reduction) with
    real CIFAR-10 images: α of both cell types moves and the genotype follows the DARTS rule
    (two distinct inputs per node, ``none`` never chosen)."""
    cfg = darts.DARTSConfig(**{**TINY, "layers": 3, "epochs": 1, "a_lr": 3e-2})
    res = darts.run_darts(cfg, space="darts", dataset="cifar10", key=0, out_dir=None,
                          data=real_data(data_dir))
    g = spaces.DARTS.parse(res["genotype"])
    for cell in (g.normal, g.reduce):
        assert all(op != "none" for op, _ in cell)
        assert all(cell[2 * i][1] != cell[2 * i + 1][1] for i in range(4))
    assert set(res["alpha_final"]) == {"normal", "reduce"}
    for k in ("normal", "reduce"):
        assert np.abs(np.asarray(res["alpha_final"][k])).max() > 1e-2
    assert res["bench"] is None  # no table scores the DARTS space
    assert np.isfinite(res["history"][0]["val_loss"])


def test_nan_loss_raises_clear_error():
    cfg = darts.DARTSConfig(**{**TINY, "w_lr": 1e30, "w_clip": 1e38, "epochs": 1})
    with pytest.raises(FloatingPointError, match="non-finite"):
        _run(cfg, None)


def test_methods_registered_for_cli():
    from jnas import registry
    from jnas.config import apply_overrides
    for name in ("darts", "darts2", "snas", "less-local", "gdas"):
        spec = registry.get_method(name)
        assert spec.kind == "oneshot" and set(spec.spaces) == {"nb201", "darts"}
    cfg = apply_overrides(registry.get_method("darts2").config_cls(), ["C=8", "epochs=3"])
    assert (cfg.C, cfg.epochs, cfg.order) == (8, 3, 2)
    with pytest.raises(ValueError, match="valid keys"):
        apply_overrides(darts.DARTSConfig(), ["bogus=1"])


def test_compute_dtype_reaches_the_supernet_and_bad_values_are_refused():
    cfg = darts.DARTSConfig(**{**TINY, "compute_dtype": "bfloat16"})
    net = oneshot.make_supernet("nb201", cfg)
    assert jnp.dtype(net.module.dtype) == jnp.bfloat16
    x = jnp.zeros((2, 32, 32, 3))
    params, _ = net.init(jax.random.key(0), x)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
    with pytest.raises(ValueError, match="compute dtype"):
        oneshot.make_supernet("nb201", darts.DARTSConfig(**{**TINY, "compute_dtype": "int8"}))


def test_bad_xla_option_is_refused_with_its_name(tmp_path):
    with pytest.raises(ValueError, match="compiler_options mode.*'turbo'"):
        _run(_method("darts", xla="turbo")[0], tmp_path)
