"""jnas.xla: one compile per input signature, compile_s bookkeeping, options applied."""
import platform
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import xla


def test_compiles_once_per_signature_and_compile_s_grows_only_on_new_ones():
    calls = []

    def f(x, y):
        calls.append(1)  # traced once per compile
        return x * 2 + y

    c = xla.Compiled(f, options="fastest")
    assert c.compile_s == 0.0 and c.num_compiles == 0
    np.testing.assert_allclose(c(jnp.ones(3), jnp.ones(3)), 3.0)
    t1 = c.compile_s
    assert t1 > 0 and c.num_compiles == 1
    c(jnp.zeros(3), jnp.ones(3))  # same signature: no compile
    assert c.compile_s == t1 and c.num_compiles == 1 and len(calls) == 1
    c(jnp.ones(4), jnp.ones(4))  # new shape
    assert c.compile_s > t1 and c.num_compiles == 2
    c(jnp.ones(4, jnp.int32), jnp.ones(4, jnp.int32))  # new dtype
    assert c.num_compiles == 3


def test_static_args_are_part_of_the_signature():
    c = xla.Compiled(lambda x, n: x * n, options=None, static_argnums=1)
    assert float(c(jnp.float32(2.0), 3)) == 6.0
    assert float(c(jnp.float32(2.0), 3)) == 6.0
    assert c.num_compiles == 1
    assert float(c(jnp.float32(2.0), 4)) == 8.0
    assert c.num_compiles == 2


def test_decorator_forms():
    @xla.compiled
    def g(x):
        return x + 1

    @xla.compiled(options="fastest")
    def h(x):
        return x - 1

    assert isinstance(g, xla.Compiled) and isinstance(h, xla.Compiled)
    assert float(g(jnp.float32(1))) == 2.0 and float(h(jnp.float32(1))) == 0.0
    assert g.__name__ == "g"


def test_options_are_applied(monkeypatch):
    seen = []
    real = jax.stages.Lowered.compile

    def spy(self, compiler_options=None):
        seen.append(compiler_options)
        return real(self, compiler_options=compiler_options)

    monkeypatch.setattr(jax.stages.Lowered, "compile", spy)
    xla.Compiled(lambda x: x, options="fast")(jnp.ones(2))
    xla.Compiled(lambda x: x, options={"xla_backend_optimization_level": 0})(jnp.ones(2))
    xla.Compiled(lambda x: x, options=None)(jnp.ones(2))
    assert seen == [xla.compiler_options("fast"), {"xla_backend_optimization_level": 0}, None]
    if jax.default_backend() == "cpu":
        assert seen[0] == xla.CPU_FAST_COMPILE


def test_compiler_options_modes():
    assert xla.compiler_options(backend="cpu") == xla.CPU_FAST_COMPILE
    assert xla.compiler_options("fastest", "cpu") == xla.CPU_FASTEST_COMPILE
    assert xla.compiler_options(backend="gpu") is None
    assert xla.compiler_options("none", backend="cpu") is None
    with pytest.raises(ValueError, match="'fast', 'fastest' or None"):
        xla.compiler_options("turbo")


def test_run_once_and_reexports():
    from jnas import layers, train
    assert float(xla.run_once(lambda x: x * 3, jnp.float32(2))) == 6.0
    assert layers.compiler_options is xla.compiler_options
    assert train.run_once is xla.run_once
    assert train.enable_compilation_cache is xla.enable_compilation_cache


def test_enable_compilation_cache_off(monkeypatch):
    monkeypatch.setenv("JNAS_XLA_CACHE_DIR", "off")
    assert xla.enable_compilation_cache() is None


def test_malloc_env_adds_the_tunables_and_keeps_explicit_ones(monkeypatch):
    env = xla.malloc_env({"PATH": "/bin"})
    assert env["GLIBC_TUNABLES"] == xla.CPU_MALLOC_TUNABLES and env["PATH"] == "/bin"
    mine = "glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1"
    env = xla.malloc_env({"GLIBC_TUNABLES": mine})["GLIBC_TUNABLES"].split(":")
    assert env[:2] == mine.split(":")  # the caller's values win and come first
    assert "glibc.malloc.mmap_max=0" in env and len(env) == 4  # arena_max not repeated
    monkeypatch.setenv("GLIBC_TUNABLES", ":".join(env))
    assert xla.malloc_retained() == (platform.libc_ver()[0] == "glibc")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=1")
    assert not xla.malloc_retained()


def test_a_process_started_with_malloc_env_faults_no_pages_for_a_repeated_buffer():
    """The point of the tunables: a freed 64 MB block is reused, not mapped afresh (glibc's
    defaults map and unmap it per allocation, so each round faults ~16k pages again)."""
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("GLIBC_TUNABLES is glibc's")
    code = ("import ctypes, resource\n"  # plain malloc, as XLA-CPU's (numpy madvises
            "libc = ctypes.CDLL(None)\n"   # huge pages for its own arrays)
            "libc.malloc.restype = ctypes.c_void_p\n"
            "for i in range(4):\n"
            "    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "    p = libc.malloc(64 << 20); ctypes.memset(p, 1, 64 << 20)\n"
            "    libc.free(ctypes.c_void_p(p))\n"
            "    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)\n")
    env = xla.malloc_env()
    kept = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, check=True).stdout.split()
    plain = dict(env)
    plain.pop("GLIBC_TUNABLES")
    fresh = subprocess.run([sys.executable, "-c", code], env=plain, capture_output=True,
                           text=True, timeout=60, check=True).stdout.split()
    assert max(int(x) for x in kept[1:]) < 1000, kept  # reused: almost no faults
    assert min(int(x) for x in fresh[1:]) > 10000, fresh  # 64 MB / 4 KiB = 16k pages
