"""Test set-up: 4 fake CPU devices (for the data-parallel tests), offline data, fresh keys,
and the one-shot helpers shared by the one-shot tests: a toy supernet, tiny sizes, the real
CIFAR-10 search split and one tiny real-image DARTS search run once per session."""
from __future__ import annotations

import os
from pathlib import Path

# Must be set before JAX is imported anywhere.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
# XLA-CPU's legacy loop emitters for every program of the suite (jnas's own train steps
# already compile with them: jnas.xla.CPU_FAST_COMPILE): the tests' eager ops, gradient
# checks and predictor/generator programs then compile ~25 % faster, with the same math
# (BENCHMARKS.md, eleventh session). Subprocesses (CLI, gpu_suite.sh) inherit it.
LEGACY_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
if "xla_cpu_use_fusion_emitters" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " " + LEGACY_EMITTERS


def xla_flags(devices: int) -> str:
    """``XLA_FLAGS`` for a test subprocess with ``devices`` fake CPU devices and the suite's
    legacy loop emitters."""
    return f"--xla_force_host_platform_device_count={devices} {LEGACY_EMITTERS}"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_default = Path(__file__).resolve().parents[2] / "shared" / "data"
if "JNAS_DATA_DIR" not in os.environ and _default.is_dir():
    os.environ["JNAS_DATA_DIR"] = str(_default)
elif os.environ.get("JNAS_DATA_DIR"):  # the README's relative path must survive tests' chdir
    os.environ["JNAS_DATA_DIR"] = str(Path(os.environ["JNAS_DATA_DIR"]).resolve())

import atexit  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import types  # noqa: E402

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from jnas import cells, darts, spaces  # noqa: E402
from jnas.data import load_cifar10, mock_cifar  # noqa: E402
from jnas.train import enable_compilation_cache  # noqa: E402

# Tests are bound by XLA compile time and many build the same programs (the same toy search
# run fresh, resumed and killed, by several test files and by the CLI in subprocesses): one
# persistent cache per test session compiles each program once. The first process to load
# this file (pytest, or pytest-xdist's controller) makes the folder and removes it at exit;
# xdist workers and the CLI subprocesses inherit it through the environment. (A worker that
# reads an entry another is still writing gets a decompression error, which JAX reports as a
# warning and answers by compiling.)
if "JNAS_TEST_XLA_CACHE" not in os.environ:
    os.environ["JNAS_TEST_XLA_CACHE"] = tempfile.mkdtemp(prefix="jnas-test-xla-")
    atexit.register(shutil.rmtree, os.environ["JNAS_TEST_XLA_CACHE"], True)
XLA_CACHE = os.environ["JNAS_XLA_CACHE_DIR"] = os.environ["JNAS_TEST_XLA_CACHE"]
enable_compilation_cache(XLA_CACHE)


def randn(seed: int, shape, dtype=jnp.float32) -> jax.Array:
    """Standard-normal test inputs from NumPy (an eager ``jax.random.normal`` compiles a
    program per shape: ~1 s each on the 2-core CPU)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(tuple(shape)), dtype)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The offline benchmark/CIFAR folder (``$JNAS_DATA_DIR``); skips with a reason if absent."""
    d = os.environ.get("JNAS_DATA_DIR")
    if not d or not Path(d).is_dir():
        pytest.skip("JNAS_DATA_DIR is not set or missing: offline data not available")
    return Path(d)


@pytest.fixture
def key() -> jax.Array:
    """A fresh PRNG key per test."""
    return jax.random.key(0)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """An isolated jnas cache folder for one test."""
    monkeypatch.setenv("JNAS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ----------------------------------------------------------------------------- one-shot helpers
TINY = dict(C=4, N=1, batch_size=8, epochs=2, train_size=16, val_size=16, plot=False,
            xla="fastest")  # a few steps: compile time dominates


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


def toy_net():
    """The toy supernet behind the one-shot adapter (compiles in seconds)."""
    return cells.Supernet("nb201", ToyCell(), {"cell": (6, 5)}, tuple(spaces.NB201_OPS))


class ToyTwoCells(nn.Module):
    """A toy DARTS-space supernet: 14 edges x 8 ops for each of a normal and a reduction
    weight tensor (one Dense feature per op), compiling in seconds."""

    @nn.compact
    def __call__(self, x, w_normal, w_reduce, train=True):
        z = nn.Conv(4, (3, 3), strides=4)(x).mean((1, 2))
        out = 0.0
        for name, w in (("n", w_normal), ("r", w_reduce)):
            ops = [jnp.zeros_like(z)] + [nn.Dense(4, name=f"{name}{k}")(z) for k in range(7)]
            out = out + jnp.einsum("ek,kbc->bc", w, jnp.stack(ops))
        return nn.Dense(10)(nn.relu(out))


def toy_darts_net():
    """The toy DARTS-space supernet behind the one-shot adapter."""
    return cells.Supernet("darts", ToyTwoCells(), {"normal": (14, 8), "reduce": (14, 8)},
                          tuple(spaces.DARTS_OPS))


def toy_data(n: int = 32, seed: int = 1):
    """Random 16x16 uint8 images: ``(xt, yt, xv, yv)`` of ``n`` each."""
    x, y = mock_cifar(2 * n, jax.random.key(seed), image_size=16)
    return x[:n], y[:n], x[n:], y[n:]


def real_split(n: int = 16):
    """``n`` + ``n`` real CIFAR-10 training images (``$JNAS_DATA_DIR``) as a search split."""
    x, y = load_cifar10(split="train", max_per_class=(2 * n) // 10 + 1)
    perm = np.random.default_rng(0).permutation(len(x))[:2 * n]
    x, y = x[perm], y[perm].astype(np.int32)
    return x[:n], y[:n], x[n:], y[n:]


@pytest.fixture(scope="session")
def real_data(data_dir):
    """The real-image search split of the one-shot tests (16 + 16 CIFAR-10 images)."""
    return real_split()


TINY_DARTS = dict(TINY, plot=True, a_lr=3e-2)  # the shared search: α moves in 2 epochs


@pytest.fixture(scope="session")
def tiny_darts(real_data, tmp_path_factory):
    """One tiny 2-epoch DARTS search (real NB201Supernet C=4, N=1, batch 8, real images) run
    once per session, with its printed output: ``result`` (report.Result), ``state``, ``out``
    (its folder), ``stdout``, ``stderr``, ``config``, ``data``. Tests read it and build on it
    (resume from its folder, compare with other device counts) instead of compiling their own
    search."""
    out = tmp_path_factory.mktemp("tiny_darts")
    cfg = darts.DARTSConfig(**TINY_DARTS)
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        res, state = darts.run_darts(cfg, space="nb201", dataset="cifar10", key=0, out_dir=out,
                                     data=real_data)
    return types.SimpleNamespace(result=res, state=state, out=out, stdout=o.getvalue(),
                                 stderr=e.getvalue(), config=cfg, data=real_data)
