"""Compile with options: one helper for every jitted program of jnas, with its compile time.

:func:`compiler_options` gives the XLA-CPU options that halve the compile time of a supernet
step at an unchanged step time (``'fast'``) or compile ~3x faster again for one-off calls
(``'fastest'``); both were chosen by profiling (BENCHMARKS.md). :class:`Compiled` compiles a
function ahead of time once per input signature with those options and adds the seconds spent
compiling to ``compile_s`` (what ``result.json`` reports); :func:`compiled` is its decorator
form, :func:`run_once` compiles and runs a one-off program (e.g. a flax ``init``).
:func:`enable_compilation_cache` turns on JAX's persistent cache so identical programs
compile once across processes. :data:`CPU_MALLOC_TUNABLES` / :func:`malloc_env` are the glibc
allocator settings that keep XLA-CPU's per-step temporaries from being page-faulted afresh
every step (for launching a process: glibc reads them at start).

Share a :class:`Compiled` between callers by building it in a ``functools.cache``-d function
keyed by what the program reads (big_vision's eval builders do the same).
"""
from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np

__all__ = ["CPU_FAST_COMPILE", "CPU_FASTEST_COMPILE", "compiler_options", "Compiled",
           "compiled", "run_once", "enable_compilation_cache", "CPU_MALLOC_TUNABLES",
           "malloc_env", "malloc_retained"]

CPU_FAST_COMPILE: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False,
                                     "xla_backend_optimization_level": 1}
"""XLA options that roughly halve the CPU compile time of a supernet step at an unchanged
step time (test-size NB201 first-order DARTS step: ~17 -> ~9 CPU-s lower + compile, ~65
ms/step either way; BENCHMARKS.md)."""
CPU_FASTEST_COMPILE: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False,
                                        "xla_backend_optimization_level": 0}
"""XLA options that compile ~3x faster again but run ~10x slower: for functions run once or
twice on tiny inputs (tests, shape checks)."""


def compiler_options(mode: str | None = "fast",
                     backend: str | None = None) -> dict[str, Any] | None:
    """``compiler_options`` for ``jax.jit(...)`` / ``.compile(...)`` of a supernet function.

    ``mode``: ``'fast'`` (:data:`CPU_FAST_COMPILE`, for train steps), ``'fastest'``
    (:data:`CPU_FASTEST_COMPILE`, for one-off calls) or ``None`` (XLA defaults). Options are
    only returned when the backend (default: JAX's default backend) is ``'cpu'``; GPU/TPU
    keep XLA's defaults (``None``). The string ``'none'`` (e.g. from ``--set xla=none``) means
    ``None``."""
    if isinstance(mode, str) and mode.lower() == "none":
        mode = None
    if mode not in (None, "fast", "fastest"):
        raise ValueError(f"compiler_options mode must be 'fast', 'fastest' or None, got {mode!r}")
    backend = jax.default_backend() if backend is None else backend
    if mode is None or backend != "cpu":
        return None
    return dict(CPU_FAST_COMPILE if mode == "fast" else CPU_FASTEST_COMPILE)


def _resolve(options: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """A mode name goes through :func:`compiler_options`; a dict is used as given."""
    if isinstance(options, dict):
        return dict(options)
    return compiler_options(options)


def _leaf_sig(x: Any) -> tuple:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return (tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False)))
    return (np.shape(x), type(x).__name__)


class Compiled:
    """``fn`` compiled ahead of time once per input signature, with XLA options; callable.

    Args:
      fn: the function (positional arguments only).
      options: ``'fast'`` / ``'fastest'`` / ``None`` (see :func:`compiler_options`) or an
        explicit dict of XLA options (used on every backend).
      donate_argnums, static_argnums: as for :func:`jax.jit`; static arguments are part of
        the signature (by value, so they must be hashable).

    ``compile_s`` is the total time spent lowering and compiling so far; ``num_compiles`` the
    number of signatures compiled. A signature is the pytree structure plus, per leaf, shape,
    dtype and weak type (arrays) or Python type (scalars).
    """

    def __init__(self, fn: Callable[..., Any], *, options: str | dict[str, Any] | None = "fast",
                 donate_argnums: int | Sequence[int] = (),
                 static_argnums: int | Sequence[int] = ()) -> None:
        self.fn = fn
        self.options = options
        self._static = ((static_argnums,) if isinstance(static_argnums, int)
                        else tuple(static_argnums))
        self._jit = jax.jit(fn, donate_argnums=donate_argnums, static_argnums=self._static)
        self._cache: dict[Any, Any] = {}
        self.compile_s = 0.0
        functools.update_wrapper(self, fn)

    @property
    def num_compiles(self) -> int:
        """How many input signatures have been compiled."""
        return len(self._cache)

    @property
    def executables(self) -> list[Any]:
        """The compiled executables so far (``jax.stages.Compiled``), in compile order."""
        return list(self._cache.values())

    def _split(self, args: tuple) -> tuple[tuple, tuple]:
        n = len(args)
        static = {i % n if n else i for i in self._static}
        return (tuple(a for i, a in enumerate(args) if i in static),
                tuple(a for i, a in enumerate(args) if i not in static))

    def signature(self, *args: Any) -> tuple:
        """The cache key of a call with ``args``."""
        static, dynamic = self._split(args)
        leaves, treedef = jax.tree.flatten(dynamic)
        return (static, treedef, tuple(_leaf_sig(x) for x in leaves))

    def lower_compile(self, *args: Any) -> Any:
        """The compiled executable for ``args`` (compiled now if this signature is new)."""
        sig = self.signature(*args)
        exe = self._cache.get(sig)
        if exe is None:
            t0 = time.perf_counter()
            exe = self._jit.lower(*args).compile(compiler_options=_resolve(self.options))
            self.compile_s += time.perf_counter() - t0
            self._cache[sig] = exe
        return exe

    def __call__(self, *args: Any) -> Any:
        exe = self.lower_compile(*args)
        return exe(*self._split(args)[1])


def compiled(fn: Callable[..., Any] | None = None, **kw: Any) -> Any:
    """:class:`Compiled` as a decorator: ``@compiled`` or ``@compiled(options='fastest')``."""
    if fn is None:
        return lambda f: Compiled(f, **kw)
    return Compiled(fn, **kw)


def run_once(fn: Callable[..., Any], *args: Any) -> Any:
    """``jax.jit(fn)(*args)`` for a function called once, e.g. a flax ``init``.

    On CPU it compiles with :func:`compiler_options` ``('fastest')``: the backend's
    optimisation passes dominate the compile time of threefry-heavy init graphs (test-size NB201
    supernet init: ~150 s -> ~10 s on the 2-core CPU) and buy nothing for a single call. On
    accelerators it is a plain jit call. Results equal the optimised
    program's up to float rounding and are deterministic in ``args``.
    """
    return jax.jit(fn, compiler_options=compiler_options("fastest"))(*args)


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
    """Turns on JAX's persistent compilation cache, so identical programs compile once across
    seeds, resumed runs and processes (a multi-seed one-shot search on CPU compiles its step
    once instead of per seed: 24 s -> 3 s per repeat for the test-size DARTS search).

    ``path`` defaults to ``$JNAS_XLA_CACHE_DIR`` or ``<jnas cache>/xla``; set
    ``JNAS_XLA_CACHE_DIR=off`` to disable. Returns the folder used (None when disabled).
    """
    env = os.environ.get("JNAS_XLA_CACHE_DIR")
    if path is None and env is not None and env.lower() in ("off", "0", "none", ""):
        return None
    if path is None:
        if env:
            path = env
        else:
            d = os.environ.get("JNAS_CACHE_DIR")
            path = (Path(d).expanduser() if d else Path.home() / ".cache" / "jnas") / "xla"
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


CPU_MALLOC_TUNABLES: str = ("glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:"
                            "glibc.malloc.trim_threshold=100000000000")
"""glibc malloc settings (``GLIBC_TUNABLES``) that keep freed memory in the process: one
arena, no ``mmap``-ed chunks, no trimming below 100 GB. XLA-CPU allocates each execution's
temporaries afresh (1.7 GB for the NB201 C=16, N=5, batch-64 DARTS step); with glibc's
defaults a block that large is ``mmap``-ed and unmapped every step, and touching it again
costs ~450k page faults, ~1 CPU-s of kernel time a step, more after another library (the
PyTorch reference in ``experiments/bench_jit.py``) has fragmented memory. With these
settings the second and later steps fault no pages (BENCHMARKS.md, eleventh session). The
price: the process keeps its peak heap until it exits, and one arena without ``mmap``
fragments more: compiling the paper-size DARTS-space step (C=16, 8 cells) passed 23 GB of
RSS with these settings, about 10 GB without. GPU/TPU memory is unaffected."""


def malloc_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) whose ``GLIBC_TUNABLES`` has
    :data:`CPU_MALLOC_TUNABLES` added; a tunable ``env`` already sets keeps its value.
    glibc reads ``GLIBC_TUNABLES`` once, at process start, so this is for launching a
    process (``subprocess``, ``os.execve``); see :func:`malloc_retained` for the current one."""
    out = dict(os.environ if env is None else env)
    have = _tunables(out.get("GLIBC_TUNABLES", ""))
    add = {k: v for k, v in _tunables(CPU_MALLOC_TUNABLES).items() if k not in have}
    out["GLIBC_TUNABLES"] = ":".join(f"{k}={v}" for k, v in {**have, **add}.items())
    return out


def malloc_retained() -> bool:
    """Whether this process runs on glibc with every tunable of :data:`CPU_MALLOC_TUNABLES`
    named in its ``GLIBC_TUNABLES`` (set when it started)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    return _tunables(CPU_MALLOC_TUNABLES).keys() <= _tunables(
        os.environ.get("GLIBC_TUNABLES", "")).keys()


def _tunables(s: str) -> dict[str, str]:
    """``name=value:name=value`` (``GLIBC_TUNABLES``) as an ordered dict."""
    return dict((t.split("=", 1) + [""])[:2] for t in s.split(":") if t)
