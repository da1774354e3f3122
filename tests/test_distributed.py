"""Multi-process one-shot search on JAX's distributed runtime (jnas.distributed): flags and
environment, bad input, and two local processes of two fake CPU devices each (gloo
collectives) against one process of four devices: the same genotype and α, only process 0
writes, and the run resumes on another process count."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import TINY_DARTS, toy_net, xla_flags
from jnas import darts, distributed, train
from jnas.cli import main

HERE = Path(__file__).resolve().parent
# The toy supernet (one NB201-style cell, C=4) compiles in seconds; real images, batch 8
# (no augmentation: its sharding invariance is test_oneshot's 1-vs-4-device test).
CFG = dict(TINY_DARTS, plot=False, augment=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- settings
def test_cluster_spec_from_flags_then_environment():
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4",
           "JAX_PROCESS_ID": "3"}
    assert distributed.cluster_spec(environ={}) is None  # nothing asked: one process
    assert distributed.cluster_spec(num_processes=1, environ={}) is None
    s = distributed.cluster_spec(environ=env)
    assert (s.coordinator, s.num_processes, s.process_id, s.detect) == ("10.0.0.1:1234", 4, 3,
                                                                        None)
    s = distributed.cluster_spec("h:99", None, 1, timeout_s=5, environ=env)  # flags win
    assert (s.coordinator, s.num_processes, s.process_id, s.timeout_s) == ("h:99", 4, 1, 5)
    slurm = {"SLURM_NTASKS": "2", "SLURM_PROCID": "1"}
    assert distributed.cluster_spec(environ=slurm).detect == "slurm"  # JAX auto-detects
    assert distributed.cluster_spec(environ={**slurm, "SLURM_NTASKS": "1"}) is None
    for kw, words in [(dict(num_processes=2, process_id=2, coordinator="h:1"), "outside 0..1"),
                      (dict(num_processes=2, process_id=1), "--coordinator"),
                      (dict(num_processes=2, coordinator="h:1"), "--process-id"),
                      (dict(num_processes=2, process_id=0, coordinator="h"), "HOST:PORT"),
                      (dict(num_processes=0), "at least 1"),
                      (dict(process_id=0), "--num-processes")]:
        with pytest.raises(ValueError, match=words):
            distributed.cluster_spec(**kw, environ={})
    assert distributed.local_rows(None, 8) == slice(0, 8)  # one process: every row


@pytest.mark.parametrize("argv,words", [
    (["darts", "--num-processes", "2", "--process-id", "2", "--coordinator", "127.0.0.1:1"],
     ["--process-id 2", "0..1"]),
    (["darts", "--num-processes", "2", "--process-id", "1"], ["--coordinator HOST:PORT"]),
    (["gdas", "--num-processes", "2", "--process-id", "0", "--coordinator", "nohost"],
     ["HOST:PORT"]),
    (["rs", "--num-processes", "2", "--process-id", "0"], ["--process-id", "do not apply"]),
])
def test_bad_cluster_flags_exit_2(argv, words, tmp_path, capsys):
    assert main(["search", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jnas: error: "), err
    assert all(w in err[0] for w in words), err[0]
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- two processes
_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {here!r})
    from jnas import distributed
    spec = distributed.cluster_spec({addr!r}, 2, int(sys.argv[1]), timeout_s=120)
    distributed.initialize(spec)
    import jax, numpy as np
    from conftest import toy_net
    from jnas import darts
    with np.load({data!r}) as f:  # the real images of the test process
        data = tuple(f[k] for k in ("xt", "yt", "xv", "yv"))
    res, state = darts.run_darts(darts.DARTSConfig(**{cfg!r}), space="nb201",
                                 dataset="cifar10", key=0, out_dir=sys.argv[2],
                                 data=data, net=toy_net(), quiet=False)
    def refuse():  # e.g. a saved run of other settings, seen by process 0 only
        raise ValueError("OUT holds other settings")
    try:
        distributed.on_primary(refuse)
    except ValueError as e:
        error = str(e)
    print(json.dumps({{"process": jax.process_index(), "devices": jax.device_count(),
                      "local": jax.local_device_count(), "arch": res.best_arch,
                      "alpha": np.asarray(state.alpha["cell"]).tolist(), "error": error}}))
""")


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, real_data):
    """The toy search run by 2 processes of 2 fake devices each (process 1 writes to its own
    folder, as a host without a shared filesystem would) and, meanwhile, the same search in
    this process (1 process, 4 devices): ``(root, [per-process records], [(stdout, stderr)],
    (result, state))``."""
    root = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "XLA_FLAGS": xla_flags(2), "JAX_PLATFORMS": "cpu",
           "PYTHONUNBUFFERED": "1"}
    for k in distributed.ENV_VARS.values():
        env.pop(k, None)
    np.savez(root / "data.npz", **dict(zip(("xt", "yt", "xv", "yv"), real_data)))
    script = _SCRIPT.format(here=str(HERE), addr=f"127.0.0.1:{_free_port()}", cfg=CFG,
                            data=str(root / "data.npz"))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i), str(root / f"out{i}")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in (0, 1)]
    try:  # the one-process reference, while the others run
        one = darts.run_darts(darts.DARTSConfig(**CFG), space="nb201", dataset="cifar10",
                              key=0, out_dir=None, data=real_data, net=toy_net(), quiet=True)
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e[-3000:]
    got = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    return root, got, outs, one


def test_two_processes_find_the_same_genotype_as_one(two_processes):
    root, got, outs, (res, state) = two_processes
    assert [(g["process"], g["devices"], g["local"]) for g in got] == [(0, 4, 2), (1, 4, 2)]
    assert got[0]["alpha"] == got[1]["alpha"]  # one program: every process holds the same α
    # an error of process 0 (on_primary) reaches every process: none waits for the others
    assert [g["error"] for g in got] == ["OUT holds other settings",
                                         "process 0: OUT holds other settings"]
    # one process of 4 devices, fed the same global batches
    assert got[0]["arch"] == res.best_arch
    np.testing.assert_allclose(got[0]["alpha"], np.asarray(state.alpha["cell"]), atol=1e-5)
    assert not np.allclose(got[0]["alpha"], 0, atol=1e-3)  # α moved: the test can fail
    # only process 0 printed and wrote (results, checkpoints, progress)
    assert "[darts] epoch 2/2" in outs[0][0] and "[darts] epoch" not in outs[1][0]
    assert not (root / "out1").exists()
    assert sorted(p.name for p in (root / "out0" / "ckpt").iterdir()) == [
        "ckpt_1.msgpack", "ckpt_2.msgpack"]
    saved = json.loads((root / "out0" / "search_progress.json").read_text())
    assert [h["epoch"] for h in saved["history"]] == [1, 2]


def test_resume_a_two_process_run_on_one_process(two_processes, real_data, tmp_path):
    """The 2-process run's epoch-1 checkpoint resumed by this single process: epoch 2 gives
    the α of the uninterrupted 2-process run."""
    root, got, _, _ = two_processes
    out = tmp_path / "resumed"
    shutil.copytree(root / "out0", out)
    (out / "ckpt" / "ckpt_2.msgpack").unlink()
    assert train.latest_checkpoint(out / "ckpt")[0] == 1
    res, state = darts.run_darts(darts.DARTSConfig(**CFG), space="nb201", dataset="cifar10",
                                 key=0, out_dir=out, data=real_data, net=toy_net(),
                                 quiet=True)
    assert [h["epoch"] for h in res.history] == [1, 2]
    assert res.best_arch == got[0]["arch"]
    np.testing.assert_allclose(np.asarray(state.alpha["cell"]), got[0]["alpha"], atol=1e-5)


def test_unreachable_coordinator_or_busy_port_exits_2_with_one_line(tmp_path, capsys):
    """Checked before JAX's runtime starts (JAX would abort the process): process 1 waits
    --coordinator-timeout for the coordinator, process 0 needs its port free."""
    out = tmp_path / "o"
    argv = ["search", "darts", "--out", str(out), "--num-processes", "2"]
    assert main([*argv, "--coordinator", f"127.0.0.1:{_free_port()}", "--process-id", "1",
                 "--coordinator-timeout", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jnas: error: "), err
    assert "not reachable within 1 s" in err[0] and "--coordinator-timeout" in err[0]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main([*argv, "--coordinator", f"127.0.0.1:{port}", "--process-id", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"port {port}" in err[0] and "free port" in err[0], err
    assert not out.exists() and not jax.distributed.is_initialized()
