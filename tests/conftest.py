"""Test set-up: 4 fake CPU devices (for the data-parallel tests), offline data, fresh keys."""
from __future__ import annotations

import os
from pathlib import Path

# Must be set before JAX is imported anywhere.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_default = Path(__file__).resolve().parents[2] / "shared" / "data"
if "JNAS_DATA_DIR" not in os.environ and _default.is_dir():
    os.environ["JNAS_DATA_DIR"] = str(_default)

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

from jnas.train import enable_compilation_cache  # noqa: E402

# Tests are bound by XLA compile time and many build the same programs (the same toy search
# run fresh, resumed and killed): a per-session persistent cache compiles each program once.
_XLA_CACHE = tempfile.mkdtemp(prefix="jnas-test-xla-")
enable_compilation_cache(_XLA_CACHE)
atexit.register(shutil.rmtree, _XLA_CACHE, True)


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
