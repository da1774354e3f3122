"""Compiled one-shot programs: the data-parallel search step (:class:`JitStep`) and the
in-process cache that lets later runs of the same method and config skip tracing, lowering
and compiling (:func:`program_key`, :func:`cached_programs`).

A one-shot search (:func:`jnas.oneshot.run_oneshot`; DARTS, Liu et al., ICLR 2019; GDAS,
Dong & Yang, CVPR 2019; SNAS, Xie et al., ICLR 2019) compiles two programs: the state init
and the step. Their trace reads the method, the supernet module, the config, the step count
(the cosine schedule's horizon) and the trace-time switches; :func:`program_key` is that
tuple, and a run with an equal key reuses the programs of the run before (another seed, a
resumed or repeated search, the sequential ``--seeds`` of one command). The persistent XLA
cache (:func:`jnas.xla.enable_compilation_cache`) saves only the XLA compile, not the trace.
"""
from __future__ import annotations

import collections
from typing import Any, Callable

import jax

from jnas import cells_darts, cells_fast, distributed, fastconv, train, xla

__all__ = ["JitStep", "jit_step", "program_key", "cached_programs", "clear_program_cache"]


class JitStep:
    """A compiled search step run data parallel (see :func:`jit_step`)."""

    def __init__(self, step: Callable, batch_size: int, xla_mode: str | None = "fast"):
        self.mesh = train.data_mesh(batch_size)  # replicate the state on it
        if distributed.process_count() > 1:  # every process reads the whole new state
            step = distributed.replicated_outputs(step, self.mesh)
        self.compiled = xla.Compiled(step, options=xla_mode, donate_argnums=0)

    @property
    def compile_s(self) -> float:
        """Seconds spent compiling so far."""
        return self.compiled.compile_s

    def __call__(self, state: Any, batch: dict) -> tuple[Any, dict]:
        return self.compiled(state, train.shard_batch(batch, self.mesh))


def jit_step(step: Callable, batch_size: int, xla_mode: str | None = "fast") -> JitStep:
    """``step`` compiled with the state donated and XLA-CPU options ``xla_mode``
    (:class:`jnas.xla.Compiled`), each batch split over :func:`jnas.train.data_mesh`."""
    return JitStep(step, batch_size, xla_mode)


# The compiled (init, step) programs of recent runs in this process, by program_key: a run of
# the same method and config (another seed, a resumed or repeated search) skips tracing,
# lowering and compiling. Small: each entry holds compiled executables.
_PROGRAMS: collections.OrderedDict[tuple, tuple[xla.Compiled, JitStep]] = (
    collections.OrderedDict())
_MAX_PROGRAMS = 4


def program_key(step_key: Any, space: str, net: Any, config: Any,
                total_steps: int) -> tuple | None:
    """What a one-shot run's compiled programs depend on: the method's ``step_key`` (a
    hashable description of its ``make_step``; ``None``: not shareable), the space, the
    supernet module, the config, the step count (the cosine schedule's horizon), the
    trace-time switches (convolution implementation, fused NB201 cell, DARTS edge-input
    broadcast), the devices and the process count. ``None`` when any part is unhashable."""
    if step_key is None:
        return None
    key = (step_key, space, net.module, config, int(total_steps), fastconv.get_conv_impl(),
           cells_fast.get_fused(), cells_darts.broadcast_edge_inputs(), jax.default_backend(),
           tuple(d.id for d in jax.devices()), distributed.process_count())
    try:
        hash(key)
    except TypeError:
        return None
    return key


def clear_program_cache() -> None:
    """Forget the compiled programs kept for later runs in this process (frees their memory)."""
    _PROGRAMS.clear()


def cached_programs(key: tuple | None, init_fn: Callable[..., Any],
                    make_step: Callable[[], Callable], batch_size: int,
                    xla_mode: str | None = "fast") -> tuple[xla.Compiled, JitStep]:
    """The ``(init, step)`` programs of a run: the ones kept under ``key`` when there are,
    else ``init_fn`` compiled with the ``'fastest'`` options (it runs once per run, as
    :func:`jnas.xla.run_once`) and ``make_step()`` through :func:`jit_step`, kept under
    ``key`` unless it is ``None`` (the oldest of more than 4 entries is dropped)."""
    if key is not None and key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    progs = (xla.Compiled(init_fn, options="fastest"),
             jit_step(make_step(), batch_size, xla_mode))
    if key is not None:
        _PROGRAMS[key] = progs
        while len(_PROGRAMS) > _MAX_PROGRAMS:
            _PROGRAMS.popitem(last=False)
    return progs
