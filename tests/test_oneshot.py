"""Tests of the one-shot engine (jnas.oneshot): α forms and discretisation, config validation,
progress output and quiet, divergence errors, the α plot, resume of the shared real-image
search, and 1 vs 4 devices."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TINY, TINY_DARTS, XLA_CACHE, toy_data, toy_net, xla_flags
from jnas import cells, darts, less_local, oneshot, report, snas, spaces, train
from jnas.config import field_docs

CONFIGS = (oneshot.OneShotConfig, darts.DARTSConfig, darts.DARTS2Config, darts.GDASConfig,
           snas.SNASConfig, less_local.LessLocalConfig)


# ----------------------------------------------------------------------------- α and cells
def test_discretise_rules_and_alpha_forms():
    a = np.zeros((6, 5))
    a[:, 1] = 1.0
    a[2, 0] = 5.0  # 'none' wins edge 2: NB201 keeps it (argmax over all ops)
    arch = oneshot.discretise("nb201", {"cell": a})
    assert arch.ops[2] == "none" and arch.ops[0] == "skip_connect"
    assert oneshot.discretise("nb201", a) == arch  # the bare array: the same argmax cell
    assert oneshot.discretise("nb201", jnp.asarray(a)) == arch
    np.testing.assert_allclose(oneshot.alpha_probs(a)["cell"], oneshot.alpha_probs({"cell": a})
                               ["cell"])
    with pytest.raises(ValueError, match=r"\(6, 5\)"):
        oneshot.discretise("nb201", np.zeros((5, 5)))
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
    with pytest.raises(ValueError, match="dict"):
        oneshot.discretise("darts", al["normal"])  # two cell types need the dict form


def test_supernets_accept_bare_and_dict_alpha():
    x = jnp.zeros((2, 32, 32, 3))
    sup = cells.NB201Supernet(C=4, N=1)
    w = jnp.full((6, 5), 0.2)
    for form in (w, {"cell": w}):
        out = jax.eval_shape(lambda f=form: sup.init_with_output(jax.random.key(0), x, f,
                                                                 train=True))
        assert out[0].shape == (2, 10)
    net = oneshot.make_supernet("nb201", oneshot.OneShotConfig(**TINY))
    v = jax.eval_shape(lambda: net.init_variables(jax.random.key(0), x))
    for form in (w, {"cell": w}):
        logits, _ = jax.eval_shape(lambda p, b, f: net.apply(p, b, x, f, True), *v, form)
        assert logits.shape == (2, 10)
    wd = jnp.full((14, 8), 1 / 8)
    dsup = cells.DARTSSupernet(C=4, layers=3)
    out = jax.eval_shape(lambda: dsup.init_with_output(
        jax.random.key(0), x, {"normal": wd, "reduce": wd}, train=True))
    assert out[0].shape == (2, 10)


def test_discrete_networks_need_train_and_nhwc_and_init_fast():
    net = cells.NB201Network("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|"
                             "+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|", C=4, N=1)
    x = jnp.zeros((2, 32, 32, 3))
    with pytest.raises(TypeError, match="train"):
        jax.eval_shape(lambda: net.init(jax.random.key(0), x))  # train is a required keyword
    with pytest.raises(ValueError, match=r"NCHW.*transpose\(0, 2, 3, 1\)"):
        jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((2, 3, 32, 32)),
                                        train=False))
    with pytest.raises(ValueError, match="NHWC"):
        cells.init_fast(net, jax.random.key(0), jnp.zeros((32, 32, 3)), train=False)
    v = cells.init_fast(net, jax.random.key(0), x, train=False)
    ref = jax.eval_shape(lambda: net.init(jax.random.key(0), x, train=False))
    assert jax.tree.structure(v) == jax.tree.structure(ref)
    y = jax.jit(lambda v: net.apply(v, x, train=False))(v)  # eval mode: no mutable stats
    assert y.shape == (2, 10)


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize("cls", CONFIGS)
def test_every_config_field_has_a_comment(cls):
    docs = field_docs(cls)
    assert all(docs.values()), [k for k, v in docs.items() if not v]
    cls()  # the defaults are valid


@pytest.mark.parametrize("cls, field, value, match", [
    (darts.DARTSConfig, "epochs", 0, "epochs"), (darts.DARTSConfig, "epochs", -1, "epochs"),
    (darts.DARTSConfig, "batch_size", 0, "batch_size"), (darts.DARTSConfig, "C", 0, "C"),
    (darts.DARTSConfig, "N", 0, "N"), (darts.DARTSConfig, "layers", 0, "layers"),
    (darts.DARTSConfig, "w_lr", float("nan"), "w_lr"),
    (darts.DARTSConfig, "w_lr", float("inf"), "w_lr"),
    (darts.DARTSConfig, "a_lr", -1.0, "a_lr"), (darts.DARTSConfig, "w_lr", 0.0, "w_lr"),
    (darts.DARTSConfig, "xla", "turbo", "xla.*'turbo'"),
    (darts.DARTSConfig, "compute_dtype", "int8", "compute dtype"),
    (darts.DARTSConfig, "order", 3, "order"), (darts.DARTSConfig, "xi", -0.1, "xi"),
    (darts.GDASConfig, "tau_end", 0.0, "tau_end"),
    (snas.SNASConfig, "cost", "watts", "cost"),
    (less_local.LessLocalConfig, "population", 0, "population"),
    (less_local.LessLocalConfig, "exploit_frac", 1.5, "exploit_frac"),
])
def test_bad_config_values_are_refused_at_construction(cls, field, value, match):
    with pytest.raises(ValueError, match=match):
        cls(**{field: value})


# ----------------------------------------------------------------------------- progress
def test_search_prints_progress_per_step_and_epoch(tiny_darts):
    out, err = tiny_darts.stdout, tiny_darts.stderr
    lines = [ln for ln in out.splitlines() if ln.startswith("[darts] epoch")]
    assert len(lines) == 2, out
    res = tiny_darts.result
    for ln, h in zip(lines, res.history):
        assert "train_loss" in ln and "val_acc" in ln and h["arch"] in ln
    assert lines[1].startswith("[darts] epoch 2/2")
    assert "[darts] epoch 1/2" in err and "2/2" in err  # the tqdm bar over the steps


def test_quiet_prints_nothing_and_a_killed_search_resumes_exactly(tiny_darts, tmp_path,
                                                                  capfd):
    """The shared search's folder as if killed during epoch 2 (its last checkpoint gone),
    resumed quietly: nothing printed, epoch 1 not re-run, the same final state."""
    run = tmp_path / "run"
    shutil.copytree(tiny_darts.out, run)
    (run / "ckpt" / "ckpt_2.msgpack").unlink()
    res, state = darts.run_darts(tiny_darts.config, space="nb201", dataset="cifar10", key=0,
                                 out_dir=run, data=tiny_darts.data, quiet=True)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert res.history == tiny_darts.result.history
    assert res.to_json()["alpha_final"] == tiny_darts.result.to_json()["alpha_final"]
    for a, b in zip(jax.tree.leaves(jax.device_get(state)),
                    jax.tree.leaves(jax.device_get(tiny_darts.state))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ----------------------------------------------------------------------------- divergence
def test_diverging_search_raises_non_finite_error_naming_the_step(tmp_path):
    cfg = darts.DARTSConfig(**{**TINY, "w_lr": 1e30, "w_clip": 1e38, "epochs": 1})
    with pytest.raises(train.NonFiniteLossError, match=r"at step \d+ .*w_lr"):
        darts.run_darts(cfg, dataset="mock", key=3, out_dir=tmp_path, net=toy_net(),
                        data=toy_data(), quiet=True)


def test_divergence_in_a_later_epoch_keeps_the_earlier_checkpoints(tmp_path):
    """NaN from step 3 on (epoch 2 of 2-step epochs): the error names step 3 and the
    checkpoint of epoch 1 stays."""
    inner = darts.bilevel_maker(1)

    def make(*a):
        step = inner(*a)

        def nan_from_step_3(state, batch):
            new, m = step(state, batch)
            return new, {**m, "train_loss": jnp.where(state.step >= 2, jnp.nan,
                                                      m["train_loss"])}
        return nan_from_step_3

    with pytest.raises(train.NonFiniteLossError, match=r"step 3 \(epoch 2\).*ckpt"):
        oneshot.run_oneshot("darts", darts.DARTSConfig(**TINY), make, space="nb201",
                            dataset="mock", key=0, out_dir=tmp_path, net=toy_net(),
                            data=toy_data(16), quiet=True)
    assert train.latest_checkpoint(tmp_path / "ckpt")[0] == 1


def test_alpha_plot_of_one_epoch_shows_points(tmp_path):
    probs = {"cell": np.tile([0.1, 0.15, 0.2, 0.25, 0.3], (6, 1)).tolist()}
    p = report.plot_alpha([{"epoch": 1, "alpha": probs}], spaces.NB201_OPS, tmp_path / "a.png")
    import matplotlib.image
    img = matplotlib.image.imread(p)[..., :3]
    img = img[:, img.shape[1] // 6:]  # edges 1-5: panels without the legend
    blue = np.array([31, 119, 180]) / 255  # the first line colour (tab:blue)
    assert (np.abs(img - blue).max(-1) < 0.1).sum() > 20  # the markers of the single point


# ----------------------------------------------------------------------------- devices
def test_one_and_four_devices_find_the_same_genotype(tiny_darts):
    """The shared search (4 fake CPU devices in this process: the batch of 8 is split in 4)
    run again on a different device count in a subprocess: same genotype, α close."""
    here = jax.device_count()
    other = 1 if here == 4 else 4
    assert oneshot.data_mesh(8).devices.size == min(here, 8)
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import jax
        from conftest import real_split
        from jnas import darts
        cfg = darts.DARTSConfig(**{TINY_DARTS!r})
        res, state = darts.run_darts(cfg, space="nb201", dataset="cifar10", key=0,
                                     out_dir=None, data=real_split(), quiet=True)
        print(json.dumps({{"devices": jax.device_count(), "arch": res.best_arch,
                          "alpha": np.asarray(state.alpha["cell"]).tolist()}}))
    """)
    env = {**os.environ, "XLA_FLAGS": xla_flags(other), "JNAS_XLA_CACHE_DIR": XLA_CACHE}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["devices"] == other
    assert got["arch"] == tiny_darts.result.best_arch
    np.testing.assert_allclose(got["alpha"], np.asarray(tiny_darts.state.alpha["cell"]),
                               atol=1e-3)


def test_a_repeated_run_reuses_its_compiled_programs():
    """Runs of the same method and config in one process share their compiled init and step
    (oneshot.program_key): the second seed compiles nothing and equals a fresh run."""
    from jnas import fastconv
    cfg = darts.DARTSConfig(**{**TINY, "epochs": 1})
    kw = dict(space="nb201", dataset="mock", net=toy_net(), data=toy_data(16), quiet=True,
              out_dir=None)
    oneshot.clear_program_cache()
    first, _ = darts.run_darts(cfg, key=0, **kw)
    again, st = darts.run_darts(cfg, key=1, **kw)
    assert first.compile_s > 0 and again.compile_s == 0.0
    oneshot.clear_program_cache()
    fresh, st_fresh = darts.run_darts(cfg, key=1, **kw)
    assert fresh.compile_s > 0
    for a, b in zip(jax.tree_util.tree_leaves(st), jax.tree_util.tree_leaves(st_fresh)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # what the trace reads is part of the key: another config, step count or conv impl
    net = kw["net"]
    k = oneshot.program_key(("bilevel", 1, "softmax"), "nb201", net, cfg, 2)
    assert k == oneshot.program_key(("bilevel", 1, "softmax"), "nb201", net, cfg, 2)
    assert k != oneshot.program_key(("bilevel", 1, "softmax"), "nb201", net, cfg, 3)
    assert k != oneshot.program_key(("bilevel", 2, "softmax"), "nb201", net, cfg, 2)
    assert k != oneshot.program_key(("bilevel", 1, "softmax"), "nb201", net,
                                    darts.DARTSConfig(**{**TINY, "w_lr": 0.1}), 2)
    other = "matmul" if fastconv.get_conv_impl() == "xla" else "xla"
    with fastconv.conv_impl(other):
        assert k != oneshot.program_key(("bilevel", 1, "softmax"), "nb201", net, cfg, 2)
    assert oneshot.program_key(None, "nb201", net, cfg, 2) is None
