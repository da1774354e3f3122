"""jnas.train: optimiser, data parallelism on 4 fake CPU devices, checkpoint/resume, BN
recalibration, NaN guard, run folders and metric logs. Tiny models to stay fast on CPU."""
from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import cells, train

from conftest import randn


class _Tiny(nn.Module):
    """conv -> BN -> relu -> GAP -> dense: small, but with BN statistics."""

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = cells.conv(8, 3)(x)
        x = nn.relu(cells.BatchNorm(8)(x, train))
        return nn.Dense(10)(x.mean(axis=(1, 2)))


def _data(n=8, seed=0, hw=8):
    return randn(seed, (n, hw, hw, 3)), jnp.asarray(np.random.default_rng(seed).integers(0, 10, n))


def test_sgd_cosine_schedule_and_validation():
    opt = train.sgd_cosine(lr=0.025, lr_min=0.001, momentum=0.0, wd=0.0, clip=None, steps=10)
    p = {"w": jnp.zeros(())}
    s = opt.init(p)
    lrs = []
    for _ in range(11):
        u, s = opt.update({"w": jnp.ones(())}, s, p)
        lrs.append(-float(u["w"]))
    assert abs(lrs[0] - 0.025) < 1e-7 and abs(lrs[10] - 0.001) < 1e-7
    assert abs(lrs[5] - (0.001 + 0.024 * 0.5)) < 1e-6
    # gradient clipping at norm 5
    opt = train.sgd_cosine(momentum=0.0, wd=0.0, clip=5.0, steps=10)
    u, _ = opt.update({"w": jnp.full((4,), 100.0)}, opt.init({"w": jnp.zeros(4)}))
    assert abs(float(jnp.linalg.norm(u["w"])) - 5 * 0.025) < 1e-5
    with pytest.raises(ValueError, match="steps"):
        train.sgd_cosine(steps=0)


def test_data_parallel_equals_single_device():
    assert jax.device_count() >= 4, "conftest should provide 4 fake CPU devices"
    model = _Tiny()
    opt = train.sgd_cosine(steps=10)
    x, y = _data(8)
    st0 = train.create_train_state(model, opt, 0, x[:2])
    train_step, eval_step = train.make_classifier_steps(model, opt)
    # one device
    s1 = st0
    for i in range(3):
        s1, m1 = train_step(s1, *_data(8, seed=i))
    # 4 devices: replicated state, batch sharded
    mesh = train.make_mesh(jax.devices()[:4])
    s4 = train.replicate(st0, mesh)
    for i in range(3):
        xb, yb = train.shard_batch(_data(8, seed=i), mesh)
        s4, m4 = train_step(s4, xb, yb)
    assert len(s4.params["Dense_0"]["kernel"].sharding.device_set) == 4
    np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(s1), jax.tree_util.tree_leaves(s4)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    e1 = eval_step(s1, x, y)
    e4 = eval_step(s4, *train.shard_batch((x, y), mesh))
    np.testing.assert_allclose(e1["loss"], e4["loss"], rtol=1e-5)
    with pytest.raises(ValueError, match="not divisible"):
        train.shard_batch(_data(6), mesh)


def test_checkpoint_kill_and_resume_is_exact(tmp_path):
    model = _Tiny()
    opt = train.sgd_cosine(steps=6)
    train_step, _ = train.make_classifier_steps(model, opt)
    st0 = train.create_train_state(model, opt, 3, _data(2)[0])
    ref = st0
    for i in range(6):
        ref, _ = train_step(ref, *_data(8, seed=i))
    # run 1: 3 steps, checkpoint each step, then "killed" (state dropped)
    s = st0
    for i in range(3):
        s, _ = train_step(s, *_data(8, seed=i))
        train.save_checkpoint(tmp_path / "ckpt", s, int(s.step), keep=2)
    del s
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["ckpt_2.msgpack",
                                                                     "ckpt_3.msgpack"]
    # run 2: restore into a fresh template and continue
    template = train.create_train_state(model, opt, 99, _data(2)[0])
    restored, step = train.restore_checkpoint(tmp_path / "ckpt", template)
    assert step == 3 and int(restored.step) == 3
    for i in range(step, 6):
        restored, _ = train_step(restored, *_data(8, seed=i))
    for a, b in zip(jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(restored)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert train.restore_checkpoint(tmp_path / "empty", template) is None
    (tmp_path / "ckpt" / "ckpt_9.msgpack").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        train.restore_checkpoint(tmp_path / "ckpt", template)


def test_nan_loss_raises_clear_error():
    assert train.check_finite(jnp.asarray(1.5)) == 1.5
    with pytest.raises(train.NonFiniteLossError, match="step 7: training diverged"):
        train.check_finite(jnp.asarray(jnp.nan), step=7)
    model = _Tiny()
    opt = train.sgd_cosine(steps=2)
    train_step, _ = train.make_classifier_steps(model, opt)
    st = train.create_train_state(model, opt, 0, _data(2)[0])
    x, y = _data(8)
    # a diverged state (NaN weights) -> NaN loss -> clear error
    bad = st.replace(params={**st.params, "Dense_0": {**st.params["Dense_0"],
                                                       "bias": jnp.full((10,), jnp.nan)}})
    _, m = train_step(bad, x, y)
    with pytest.raises(FloatingPointError, match="loss is nan"):
        train.check_finite(m["loss"], step=0)


def test_recalibrate_bn_matches_exact_batch_statistics():
    model = _Tiny()
    x, _ = _data(16, hw=6)
    v = model.init(jax.random.key(0), x[:2], train=True)
    batches = [x[:8], x[8:]]
    out = train.recalibrate_bn(model, v, batches)
    h = jax.vmap(lambda b: cells.conv(8, 3).apply(
        {"params": v["params"]["Conv_0"]}, b))(jnp.stack(batches))  # [2, 8, 6, 6, 8]
    means = h.mean(axis=(1, 2, 3))
    n = 8 * 6 * 6
    vars_ = h.var(axis=(1, 2, 3)) * n / (n - 1)
    got = out["batch_stats"]["BatchNorm_0"]
    np.testing.assert_allclose(got["mean"], means.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["var"], vars_.mean(0), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="no batches"):
        train.recalibrate_bn(model, v, [])


def test_run_dir_metrics_and_progress(tmp_path):
    d = train.resolve_run_dir(tmp_path / "run")
    log = train.MetricsLogger(d / "metrics.jsonl")
    log.log(1, loss=jnp.asarray(2.0), acc=0.5)
    with pytest.raises(FileExistsError, match="--resume"):
        train.resolve_run_dir(tmp_path / "run")
    assert train.resolve_run_dir(tmp_path / "run", resume=True) == d
    train.MetricsLogger(d / "metrics.jsonl").log(2, loss=1.0)  # resumed: appends
    recs = [json.loads(s) for s in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2] and recs[0]["loss"] == 2.0
    assert list(train.progress(range(3), total=3, desc="x")) == [0, 1, 2]


def test_compilation_cache_switches_and_reuses_programs(tmp_path, monkeypatch):
    old = jax.config.jax_compilation_cache_dir
    try:
        monkeypatch.setenv("JNAS_XLA_CACHE_DIR", "off")
        assert train.enable_compilation_cache() is None
        assert jax.config.jax_compilation_cache_dir == old  # untouched when disabled
        monkeypatch.setenv("JNAS_XLA_CACHE_DIR", str(tmp_path / "xla"))
        assert train.enable_compilation_cache() == tmp_path / "xla"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")
    finally:
        jax.config.update("jax_compilation_cache_dir", old)


def test_run_once_equals_jit():
    f = lambda k, x: (jax.random.normal(k, (3, 4)) * x).sum(0)  # noqa: E731
    k, x = jax.random.key(3), jnp.arange(4.0)
    np.testing.assert_allclose(np.asarray(train.run_once(f, k, x)),
                               np.asarray(jax.jit(f)(k, x)), rtol=1e-6)


def test_config_mismatch_names_the_field():
    saved = {"w_lr": 0.025, "epochs": 2}
    assert train.config_mismatch(saved, {"w_lr": 0.025, "epochs": 2, "xla": "fast"},
                                 {"xla": "fast"}) == ""
    assert "xla" in train.config_mismatch(saved, {"w_lr": 0.025, "epochs": 2, "xla": None},
                                          {"xla": "fast"})
    assert "w_lr" in train.config_mismatch(saved, {"w_lr": 0.1, "epochs": 2}, {})
    assert "epochs" in train.config_mismatch(saved, {"w_lr": 0.025}, {})


def test_resume_search_of_an_empty_folder_starts_fresh(tmp_path):
    state = {"w": jnp.ones(3)}
    assert train.resume_search(tmp_path, state, {"a": 1}, {}) == (state, [], 0)
