"""Tests of jnas.oneshot_seeds: the seeds of a one-shot search run as one vmapped search equal
their sequential runs (final α, genotype, per-epoch losses), keep sequential-format folders
that resume, and come out of ``jnas search ... --vmap-seeds`` as one result.json per seed.

Sizes: the toy one-cell supernet of conftest (C=4, 6 edges x 5 ops; the real NB201 supernet's
vmapped step alone takes longer to trace and compile than this file's budget) on real
CIFAR-10 images, batch 8, 2 epochs of 2 steps, 2 seeds with different search splits, on the
4 fake CPU devices (seeds vmapped, batch sharded). Tracing and compiling dominate: three runs
in all (seed 1 sequential, the two seeds vmapped twice: killed, then resumed by the CLI).
GDAS, SNAS and the real NB201 supernet: ``experiments/vmap_seeds_bench.py --check``.
"""
from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from conftest import TINY, XLA_CACHE, toy_net
from jnas import darts, oneshot, oneshot_seeds, train
from jnas.cli import main

CFG = dict(TINY, a_lr=3e-2, alpha_init_std=1.0)  # α: far-apart inits, moved by Adam steps


def _splits(real_data):
    """A different search split per seed (seed 1: the halves swapped, reordered)."""
    xt, yt, xv, yv = real_data
    p = np.random.default_rng(1).permutation(len(xt))
    return [real_data, (xv[p], yv[p], xt, yt)]


def _assert_same_epochs(seq: list, vm: list) -> None:
    assert [h["epoch"] for h in vm] == [h["epoch"] for h in seq]
    for ha, hb in zip(seq, vm):
        assert hb["arch"] == ha["arch"]
        for k, v in ha.items():
            if isinstance(v, float):
                assert hb[k] == pytest.approx(v, rel=1e-4, abs=1e-5), k


@pytest.fixture(scope="module")
def seq_darts(real_data):
    """Sequential first-order DARTS of seed 1 on its own split (the second slot of the
    vmapped stack; seed 0 is checked against its own keys): ``(result, final state)``."""
    return darts.run_darts(darts.DARTSConfig(**CFG), key=1, net=toy_net(),
                           data=_splits(real_data)[1], quiet=True)


@pytest.fixture(scope="module")
def vm_stopped(real_data, tmp_path_factory):
    """Seeds 0 and 1 vmapped, killed after epoch 1: ``(results, folder)``."""
    out = tmp_path_factory.mktemp("vm")
    res, _ = oneshot_seeds.run_vmapped_seeds("darts", darts.DARTSConfig(**CFG), seeds=[0, 1],
                                             net=toy_net(), data=_splits(real_data),
                                             out_dir=out, stop_after=1, quiet=True)
    return res, out


def test_vmapped_epochs_equal_sequential_in_sequential_format_folders(seq_darts, vm_stopped):
    res, out = vm_stopped
    cfg = darts.DARTSConfig(**CFG)
    seq, seq_state = seq_darts
    assert res[1].seed == 1 and res[1].extra["vmapped_seeds"] == [0, 1]
    _assert_same_epochs(seq.history[:1], res[1].history)
    np.testing.assert_allclose(res[1].extra["alpha_history"][0]["cell"],
                               seq.extra["alpha_history"][0]["cell"], atol=1e-6)
    assert res[0].history[0]["train_loss"] != res[1].history[0]["train_loss"]
    for s in (0, 1):
        prog = json.loads((out / f"seed_{s}" / "search_progress.json").read_text())
        assert prog["config"] == oneshot.search_config_dict("darts", "nb201", "cifar10", s, cfg)
        # the checkpoint restores into a sequential run's state
        tree, epoch = train.restore_checkpoint(out / f"seed_{s}" / "ckpt", seq_state)
        assert epoch == 1 and int(tree.step) == 2
        np.testing.assert_allclose(np.asarray(jax.nn.softmax(tree.alpha["cell"], -1)),
                                   res[s].extra["alpha_history"][0]["cell"], atol=1e-6)
    # seed 0's slot started from seed 0's own α initialisation (oneshot.prepare's key split;
    # init std 1 against 2 Adam steps of lr 0.03)
    init = {s: np.asarray(oneshot.init_alpha(toy_net(), jax.random.split(jax.random.key(s), 4)[2],
                                             cfg.alpha_init_std)["cell"]) for s in (0, 1)}
    a0 = np.asarray(res[0].extra["alpha_final"]["cell"])
    assert np.abs(a0 - init[0]).max() < 0.1 < np.abs(a0 - init[1]).max()


def test_cli_vmap_seeds_resumes_and_writes_one_result_per_seed(seq_darts, vm_stopped,
                                                               real_data, tmp_path,
                                                               monkeypatch, capsys):
    """``jnas search darts --seeds 0-1 --vmap-seeds`` on the killed run's folder: both seeds
    resume at epoch 2, seed 1 ends as its sequential run; a rerun finds them finished."""
    monkeypatch.setenv("JNAS_XLA_CACHE_DIR", XLA_CACHE)  # the CLI keeps the session's cache
    monkeypatch.setattr(oneshot_seeds, "make_supernet", lambda space, config: toy_net())
    by_key = {tuple(np.asarray(jax.random.key_data(jax.random.split(jax.random.key(s), 4)[0])
                               ).tolist()): d for s, d in zip((0, 1), _splits(real_data))}
    monkeypatch.setattr(oneshot, "load_search_data", lambda dataset, config, key: by_key[
        tuple(np.asarray(jax.random.key_data(key)).tolist())])
    shutil.copytree(vm_stopped[1], tmp_path, dirs_exist_ok=True)
    argv = ["search", "darts", "--seeds", "0-1", "--vmap-seeds", "--out", str(tmp_path),
            *[a for k, v in CFG.items() for a in ("--set", f"{k}={v}")]]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "as one vmapped search" in out and "[darts seed 1] best_arch=" in out
    assert "[darts seed 0] epoch 2/2" in out and "epoch 1/2" not in out  # resumed
    recs = {s: json.loads((tmp_path / f"seed_{s}" / "result.json").read_text())
            for s in (0, 1)}
    assert [(r["seed"], r["vmapped_seeds"]) for r in recs.values()] == [(0, [0, 1]),
                                                                        (1, [0, 1])]
    seq, state = seq_darts
    rec = recs[1]
    assert rec["genotype"] == seq.extra["genotype"] == rec["best_arch"]
    np.testing.assert_allclose(rec["alpha_final"]["cell"], np.asarray(state.alpha["cell"]),
                               atol=2e-5)
    _assert_same_epochs(seq.history, rec["history"])
    np.testing.assert_allclose(rec["alpha_history"][1]["cell"],
                               seq.extra["alpha_history"][1]["cell"], atol=1e-6)
    assert rec["bench"] == seq.bench
    assert main(argv) == 0  # finished: nothing runs again
    assert capsys.readouterr().out.count("finished earlier") == 2
