"""jit speed benchmark of the jnas one-shot search steps against the PyTorch reference (issue 8).

What it measures, in ONE process, for every combination of the flags:

* jnas first-order DARTS step (``jnas.darts.make_bilevel_step(order=1)``: α Adam step on a
  val batch + weight SGD step on a train batch) and the exact second-order step
  (``order=2``), on the NB201 supernet (``--C 16 --N 5``) and the DARTS-space supernet
  (``--C 16 --layers 8``), built by ``jnas.oneshot.make_supernet`` with
  ``weight_optimizer`` / ``alpha_optimizer`` of ``jnas.oneshot``; batch ``--batches``;
* the less-local population step (``jnas.less_local.make_population_step``, vmap over the
  member axis) for P in ``--populations`` (default 1 and 8; first order, ``--pop-orders``);
* compute dtype ``--dtypes fp32,bf16``: bf16 runs the supernet with ``dtype=bfloat16``
  (activations and convolutions in bf16; params, BN statistics, optimiser states and
  logits float32), through the config's ``compute_dtype`` when ``jnas.oneshot`` has it,
  else by cloning the module with ``dtype``;
* the convolution implementation ``--conv-impls xla,matmul`` (``jnas.layers.set_conv_impl``
  while the step is traced: XLA's convolution, or ``jnas.fastconv``'s XLA forward/input
  gradient with matmul kernel gradients, the CPU default); field ``conv_impl`` of each jnas
  line, and ``conv_batch_chunks`` (``jnas.fastconv.get_batch_chunks``: the batch-chunk
  setting of ``matmul``'s convolutions, chunks of >= 16 images; ``--conv-chunks auto,1``
  times each); ``--fused 1,0``: the NB201 supernet's fused cell (``jnas.cells_fast``, one conv per
  source node and op, the default) or the per-edge ``vmap`` cell (field ``fused_cells``);
* ``--methods darts,darts2,gdas,snas,less-local`` (issue 17): each method's own step
  (config defaults of ``DARTSConfig``, ``GDASConfig`` with the sampled-op supernet,
  ``SNASConfig``, the less-local population of ``max(--populations)`` or 8) instead of the
  ``--orders``/``--populations`` grid; every jnas line has ``method``, ``flops``
  (``compiled.cost_analysis()``), ``flops_lowered`` (the un-optimised HLO's), and GDAS
  ``flops_sampled`` (the lowered step with its sampled ops fixed, mean of ``--gdas-samples``
  (4) uniform samples: what a step executes; XLA counts a ``lax.switch`` as its costliest branch); a final
  ``{"check": "gdas_flops_le_half_darts", "ratio_sampled": ..., "ok": ...}`` line compares
  GDAS with DARTS. ``--flops-only`` lowers the steps without compiling or timing them;
* the PyTorch reference (eager, synthetic data, fp32) on the device jnas runs on (CUDA when
  JAX's backend is a GPU, else the CPU with ``torch.set_num_threads(--threads)``; default
  ``os.cpu_count()``, the thread count XLA-CPU uses), when ``torch`` and ``xautodl`` (PyPI
  ``xautodl`` 1.0.0, D-X-Y/AutoDL-Projects) import:
  NB201: ``xautodl.models.cell_searchs.TinyNetworkDarts(C, N, max_nodes=4, num_classes=10,
  search_space=get_search_spaces("cell", "nas-bench-201"), affine=False,
  track_running_stats=False)``; DARTS space: ``NASNetworkDARTS(C, N, steps=4, multiplier=4,
  stem_multiplier=3, num_classes=10, search_space=get_search_spaces("cell", "darts"),
  affine=False, track_running_stats=False)``. NASNetworkDARTS builds 3N cells (reductions
  after N and 2N cells), so ``--layers 8`` gets N=3, i.e. 9 cells (``ref_cells`` in the
  JSON; ``--layers 9`` matches jnas cell for cell). Both return ``(features, logits)`` and
  split parameters by ``get_weights()`` / ``get_alphas()``. First-order step = weight step
  (SGD 0.025, momentum 0.9, wd 3e-4, grad-norm clip 5) on a train batch + α step (Adam
  3e-4, betas (0.5, 0.999), wd 1e-3) on a val batch, as in xautodl's DARTS-V1 search
  script. Otherwise one JSON line ``{"impl": "torch-xautodl", "status": "skipped",
  "reason": ...}`` (e.g. "torch not importable: No module named 'torch'"), and the jnas
  lines have no speed-up.

Install of the reference in its own venv (two steps: xautodl 1.0.0 declares
``numpy<=1.19.5`` and ``fvcore``, which its model classes do not need, so it is installed
without its dependencies; torch 2.13.0 is the pin, the newest on the index being 2.15.0;
no shim was needed for it)::

    python3 -m venv /work/benchvenv && . /work/benchvenv/bin/activate
    pip install -e '/work/main[torch-bench]'      # jnas + torch==2.13.0
    pip install --no-deps xautodl==1.0.0

Timing: ``jax.jit(step, donate_argnums=0).lower(...).compile(compiler_options=...)`` is
``compile_s`` (``--xla-options fast`` = ``jnas.cells.compiler_options()``: the fast XLA-CPU
options on CPU, XLA's defaults elsewhere; state built from ``jax.eval_shape`` shapes via
``experiments/compile_cpu.fill_shapes`` so the init graph is never compiled; ``compile_cpu_s`` the
process CPU seconds of the same, robust to a shared machine's load); one warm-up call is
excluded; ``step_ms`` = median over ``--steps`` calls, each followed by
``block_until_ready`` (torch on CUDA: ``torch.cuda.synchronize``). Each jnas line that is
comparable with the reference (first-order DARTS, one member) is timed *interleaved* with
it: ``--steps`` rounds of one reference step then one jnas step (A B A B ...), so that load
from other jobs hits both alike; the line has ``ref_step_ms`` (median), ``ref_step_ms_all``,
``step_ms_all``, ``speedup_paired_median`` (median of the per-round ratios),
``loadavg_1m_start`` / ``loadavg_1m`` (``--no-interleave``: the reference timed once per
space and batch, before). ``--cpus 0,1`` pins the process (both implementations) to those
CPUs. ``OMP_WAIT_POLICY=PASSIVE`` is set unless given: torch's OpenMP threads then sleep
rather than spin while waiting, which on a shared CPU keeps the reference from collapsing
(that would flatter jnas). ``images_per_s`` = 2·batch
(train + val batch) · P / step time. ``peak_mem_gb``: jax
``device.memory_stats()['peak_bytes_in_use']`` (process-wide peak, monotone over the run, so
an upper bound for later configs; null on CPU), ``exec_mem_gb`` the compiled step's own
``memory_analysis()`` (arguments + outputs + temps − aliased), torch
``torch.cuda.max_memory_allocated`` (reset per config). ``--malloc`` (default ``auto``:
``retain`` on a machine without GPU/TPU for NB201-only runs): the script restarts itself with
``jnas.xla.CPU_MALLOC_TUNABLES`` (field ``malloc``), so neither implementation page-faults
its freed temporaries afresh each step. ``speedup_vs_ref`` = reference
first-order fp32 step ms / this step ms at the same space and batch, timed in the same
process, interleaved (above; jnas first-order lines of one member).
``ratio_vs_fp32_o1`` = this step / the jnas fp32 first-order single step of the same space,
batch and conv implementation (second order ≤ 3x, population of 8 ≤ 3x, bf16 < 1
are issue-8 targets). Each line is appended to ``--out`` as soon as it is measured, so a run
killed by a time limit keeps what it finished.

CPU command at the paper's size (BENCHMARKS.md, seventh session; the XLA-convolution step
alone takes ~250 s a step on this CPU, so it is left out; the DARTS-space reference at
batch 64 needs > 11 GB)::

    . /work/benchvenv/bin/activate
    nice -n 10 python experiments/bench_jit.py --spaces nb201 --batches 64 --dtypes fp32 \
        --orders 1 --populations "" --steps 5 --conv-impls matmul --out /tmp/bench_cpu.jsonl

GPU: ``experiments/gpu_suite.sh`` (every space, batch, dtype, order and population, split
into parts under a time limit; each part re-times the reference). Defaults:
``--batches 64,256 --dtypes fp32,bf16 --orders 1,2 --populations 1,8 --steps 20 --C 16
--N 5 --layers 8 --xla-options fast --conv-impls xla,matmul``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

# torch's OpenMP workers sleep instead of spinning while they wait: on a CPU shared with other
# jobs spinning threads collapse the reference's speed (BENCHMARKS.md run B), which would
# flatter jnas; set before torch loads its OpenMP runtime (an explicit setting wins)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, ".."))
sys.path.insert(0, _HERE)
_prev_platforms = os.environ.get("JAX_PLATFORMS")
from compile_cpu import fill_shapes  # noqa: E402  (sets JAX_PLATFORMS=cpu: undone below)
if _prev_platforms is None:
    os.environ.pop("JAX_PLATFORMS", None)

from jnas import cells, cells_fast, fastconv, layers, xla  # noqa: E402
from jnas.darts import DARTSConfig, GDASConfig, bilevel_maker, make_bilevel_step  # noqa: E402
from jnas.snas import SNASConfig, make_snas_step  # noqa: E402
from bench_ref import (bench_torch, check_gdas_flops, exec_gb, flops_of,  # noqa: E402,F401
                       jax_peak_gb, plot, prepare_torch, reexec_with_malloc,
                       torch_available, torch_peak_gb)
from jnas.less_local import make_population_step  # noqa: E402
from jnas.oneshot import (SearchState, alpha_optimizer, init_alpha, make_supernet,  # noqa: E402
                          weight_optimizer)

__all__ = ["bench_jnas", "prepare_jnas", "bench_torch", "prepare_torch", "interleave",
           "torch_available", "plot", "main", "DTYPES", "METHODS"]

TOTAL_STEPS = 10_000  # cosine schedule length (only sets the lr value; no effect on speed)
DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}
METHODS = ("darts", "darts2", "gdas", "snas", "less-local")


def _supernet(space: str, config, dtype: str):
    """``make_supernet`` at the compute dtype: via ``config.compute_dtype`` where the config
    has it, else the module cloned with ``dtype`` (params stay float32 either way)."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}")
    if dtype != "fp32" and "compute_dtype" in {f.name for f in dataclasses.fields(config)}:
        config = dataclasses.replace(config, compute_dtype="bfloat16")
    net = make_supernet(space, config)
    if dtype != "fp32" and getattr(net.module, "dtype", None) is None:
        net = dataclasses.replace(net, module=net.module.clone(dtype=DTYPES[dtype]))
    return net


# ----------------------------------------------------------------------------- jnas
def _state(net, config, w_opt, a_opt, batch: int, P: int) -> SearchState:
    """A SearchState (P = 0: single, else leading member axis P) without compiling init."""
    x = jnp.zeros((batch, 32, 32, 3), jnp.float32)
    w = {k: jnp.full(s, 1.0 / s[-1]) for k, s in net.alpha_shapes.items()}
    v = fill_shapes(jax.eval_shape(lambda: net.module.init(jax.random.key(0), x,
                                                     *[w[k] for k in net.alpha_shapes],
                                                     train=True)))
    params, bs = v["params"], v.get("batch_stats", {})
    alpha = init_alpha(net, jax.random.key(1), config.alpha_init_std)
    st = SearchState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=bs, alpha=alpha,
                     opt_state=w_opt.init(params), alpha_opt_state=a_opt.init(alpha),
                     key=jax.random.key_data(jax.random.key(2)))
    if P == 0:
        return st
    st = jax.tree_util.tree_map(lambda a: jnp.stack([a] * P), st)
    # members differ in α (as in init_population: random one-hot cells + noise) and key
    noise = {k: a + jax.random.normal(jax.random.key(3 + i), a.shape)
             for i, (k, a) in enumerate(st.alpha.items())}
    return st.replace(alpha=noise, key=jax.random.key_data(jax.random.split(jax.random.key(9), P)))


def _batch(batch: int) -> dict:
    rng = np.random.default_rng(0)
    return {"xt": jnp.asarray(rng.integers(0, 256, (batch, 32, 32, 3), np.uint8)),
            "yt": jnp.asarray(rng.integers(0, 10, batch), jnp.int32),
            "xv": jnp.asarray(rng.integers(0, 256, (batch, 32, 32, 3), np.uint8)),
            "yv": jnp.asarray(rng.integers(0, 10, batch), jnp.int32)}


def _method_setup(method: str, space: str, batch: int, args: argparse.Namespace,
                  P: int) -> tuple[object, int, object]:
    """``(config, order, make_step)`` of a one-shot ``method`` (``METHODS``) at the bench
    size; ``make_step(net, config, w_opt, a_opt, total)`` returns the single-member step."""
    kw = dict(C=args.C, N=args.N, layers=args.layers, batch_size=batch)
    if method in ("darts", "darts2", "less-local"):
        order = 2 if method == "darts2" else 1
        cfg = DARTSConfig(**kw, order=order)
        return cfg, order, lambda n, c, w, a, t: make_bilevel_step(n, c, w, a, t, order=order)
    if method == "gdas":
        return GDASConfig(**kw), 1, bilevel_maker(1, "hard_gumbel")
    if method == "snas":
        return SNASConfig(**kw), 1, make_snas_step
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def bench_jnas(space: str, order: int, batch: int, P: int, args: argparse.Namespace,
               dtype: str = "fp32", conv_impl: str = "xla", method: str | None = None) -> dict:
    """Compile and time one jnas search step alone (``--steps`` calls). P = 0: the plain
    DARTS step of ``order``; P >= 1: the less-local population step of P members;
    ``method``: one of ``METHODS`` instead (its own step and config); ``conv_impl`` while
    the step is traced. See :func:`prepare_jnas` for the fields."""
    run, rec = prepare_jnas(space, order, batch, P, args, dtype, conv_impl, method)
    times = [run() for _ in range(args.steps)]
    return rec | _timing(times, batch, P)


def _timing(times: list[float], batch: int, P: int) -> dict:
    ms = 1e3 * float(np.median(times))
    return {"step_ms": round(ms, 3), "step_ms_all": [round(1e3 * x, 1) for x in times],
            "images_per_s": round(2 * batch * max(P, 1) / ms * 1e3, 1),
            "loadavg_1m": round(os.getloadavg()[0], 2), "peak_mem_gb": jax_peak_gb()}


def prepare_jnas(space: str, order: int, batch: int, P: int, args: argparse.Namespace,
                 dtype: str = "fp32", conv_impl: str = "xla", method: str | None = None
                 ) -> tuple[object, dict]:
    """Compile one jnas step and run its warm-up call; returns ``(run, record)``: ``run()``
    does one step (state donated and replaced) and returns its wall seconds; ``record``
    has ``compile_s``, ``compile_cpu_s``, ``flops`` (``compiled.cost_analysis()``),
    ``flops_lowered`` (the un-optimised HLO's), for GDAS ``flops_sampled`` (the lowered
    step's FLOPs with the sampled ops fixed, mean over 4 uniform samples: what a step
    executes; XLA counts a ``lax.switch`` as its costliest branch), ``exec_mem_gb``,
    ``train_loss`` of the warm-up, ``method``, ``conv_impl``, ``fused_cells``."""
    method = method or ("less-local" if P else ("darts2" if order == 2 else "darts"))
    with layers.conv_impl(conv_impl):
        run, rec = _prepare_jnas(space, batch, P, args, dtype, method)
    return run, rec | {"conv_impl": conv_impl, "conv_batch_chunks": fastconv.get_batch_chunks()}


def _prepare_jnas(space, batch, P, args, dtype, method):
    if method == "less-local" and not P:
        P = 8  # LessLocalConfig's default population
    config, order, make = _method_setup(method, space, batch, args, P)
    net = _supernet(space, config, dtype)
    w_opt, a_opt = weight_optimizer(config, TOTAL_STEPS), alpha_optimizer(config)
    single = make(net, config, w_opt, a_opt, TOTAL_STEPS)
    step = single if P == 0 else make_population_step(single)
    state = _state(net, config, w_opt, a_opt, batch, P)
    data = _batch(batch)
    jax.block_until_ready((state, data))
    t, c = time.perf_counter(), time.process_time()
    opts = cells.compiler_options(None if args.xla_options == "default" else args.xla_options)
    lowered = jax.jit(step, donate_argnums=0).lower(state, data)
    compiled = None if args.flops_only else lowered.compile(compiler_options=opts)
    compile_s, compile_cpu_s = time.perf_counter() - t, time.process_time() - c
    flops_sampled = None
    if method == "gdas" and hasattr(net.module, "fixed_ops"):
        rng = np.random.default_rng(0)
        fl = []
        for _ in range(args.gdas_samples):
            ops = tuple(int(i) for i in rng.integers(0, 5, 6))
            n2 = dataclasses.replace(net, module=net.module.clone(fixed_ops=ops))
            s2 = make(n2, config, w_opt, a_opt, TOTAL_STEPS)
            s2 = s2 if P == 0 else make_population_step(s2)
            fl.append(flops_of(jax.jit(s2).lower(state, data).cost_analysis()))
        flops_sampled = None if None in fl else float(np.mean(fl))
    box = {"state": state}

    def run() -> float:
        t0 = time.perf_counter()
        box["state"], m = compiled(box["state"], data)
        jax.block_until_ready((box["state"], m))
        box["m"] = m
        return time.perf_counter() - t0

    rec = {"impl": "jnas", "method": method, "space": space, "order": 1 if method != "darts2"
           else 2, "batch": batch, "dtype": dtype, "population": P if P else None,
           "flops_lowered": flops_of(lowered.cost_analysis()), "flops_sampled": flops_sampled}
    if compiled is None:  # --flops-only
        return None, rec | {"flops": None, "note": "--flops-only: lowered, not compiled"}
    run()  # warm-up (first call), excluded
    loss = float(np.mean(np.asarray(box["m"]["train_loss"])))
    return run, {"impl": "jnas", "method": method, "space": space, "order": order,
                 "batch": batch, "dtype": dtype, "population": P if P else None,
                 "xla_options": args.xla_options, "fused_cells": cells_fast.get_fused(),
                 "compile_s": round(compile_s, 2), "compile_cpu_s": round(compile_cpu_s, 2),
                 "flops": flops_of(compiled.cost_analysis()),
                 "flops_lowered": flops_of(lowered.cost_analysis()),
                 "flops_sampled": flops_sampled, "exec_mem_gb": exec_gb(compiled),
                 "train_loss": loss, "finite": bool(np.isfinite(loss))}


def interleave(runs: list, steps: int) -> list[list[float]]:
    """Time the step functions of ``runs`` alternately (A B A B ...: ``steps`` rounds, each
    calling every function once in order), so that a change of the machine's load hits
    every implementation alike; returns each function's list of seconds."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(steps):
        for i, r in enumerate(runs):
            times[i].append(r())
    return times


# ----------------------------------------------------------------------------- main
def _bench_space_batch(space, batch, args, ok, impls, dtypes, orders, pops, pop_orders,
                       methods, emit) -> None:
    """Every jnas line of one space and batch, each comparable one (first order, one
    member, DARTS) timed alternately with the reference (:func:`interleave`)."""
    ref_run, ref_rec, ref_times = None, None, []
    if ok:
        try:
            ref_run, ref_rec = prepare_torch(space, batch, args)
        except Exception as e:  # noqa: BLE001
            emit({"impl": "torch-xautodl", "space": space, "batch": batch,
                  "status": "failed", "reason": f"{type(e).__name__}: {e}"})
    if ref_run is not None and args.no_interleave:
        ref_times = [ref_run() for _ in range(args.steps)]
    for impl, fz, nc in [(i, f, c) for i in impls for f in args.fused.split(",")
                         for c in args.conv_chunks.split(",")]:
        base = None  # the jnas fp32 first-order single DARTS step of this space, batch, impl
        for dtype in dtypes:
            runs = ([(1 if m != "darts2" else 2,
                      (max(pops) if pops else 8) if m == "less-local" else 0, m)
                     for m in methods] if methods else
                    [(o, 0, None) for o in orders] + [(o, p, None) for o in pop_orders
                                                      for p in pops])
            for order, P, method in runs:
                try:
                    with cells_fast.fused(fz == "1"), \
                            fastconv.batch_chunks(None if nc == "auto" else int(nc)):
                        run, r = prepare_jnas(space, order, batch, P, args, dtype, impl,
                                              method)
                    if run is None:  # --flops-only
                        emit(r | {"conv_impl": impl})
                        continue
                    comparable = (r["method"] == "darts" and r["order"] == 1
                                  and (r["population"] or 1) == 1)
                    load0 = os.getloadavg()[0]
                    if comparable and ref_run is not None and not args.no_interleave:
                        rt, jt = interleave([ref_run, run], args.steps)
                        ref_times += rt
                        r |= {"ref_step_ms": round(1e3 * float(np.median(rt)), 3),
                              "ref_step_ms_all": [round(1e3 * x, 1) for x in rt],
                              "speedup_paired_median": round(float(np.median(
                                  np.asarray(rt) / np.asarray(jt))), 2),
                              "timing": "interleaved"}
                    else:
                        jt = [run() for _ in range(args.steps)]
                        if comparable and ref_times:
                            r |= {"ref_step_ms": round(1e3 * float(np.median(ref_times)), 3),
                                  "timing": "reference timed before"}
                    r |= _timing(jt, batch, P or (8 if r["method"] == "less-local" else 0))
                    r["loadavg_1m_start"] = round(load0, 2)
                    del run
                except Exception as e:  # noqa: BLE001
                    emit({"impl": "jnas", "method": method, "space": space, "order": order,
                          "batch": batch, "dtype": dtype, "population": P or None,
                          "conv_impl": impl, "status": "failed",
                          "reason": f"{type(e).__name__}: {e}"})
                    continue
                if r["method"] == "darts" and P == 0 and dtype == "fp32":
                    base = r["step_ms"]
                if base is not None:
                    r["ratio_vs_fp32_o1"] = round(r["step_ms"] / base, 3)
                if "ref_step_ms" in r:
                    r["speedup_vs_ref"] = round(r["ref_step_ms"] / r["step_ms"], 2)
                emit(r)
    if ref_rec is not None:
        if not ref_times:
            ref_times = [ref_run() for _ in range(args.steps)]
        emit(ref_rec | _timing(ref_times, batch, 0) | {"peak_mem_gb": torch_peak_gb()})


def main(argv: list[str] | None = None) -> list[dict]:
    """Command line (see the module docstring); returns the JSON records it wrote."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", default="nb201,darts")
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--orders", default="1,2")
    ap.add_argument("--populations", default="1,8")
    ap.add_argument("--pop-orders", default="1",
                    help="orders of the population step (subset of --orders)")
    ap.add_argument("--conv-impls", default="xla,matmul",
                    help="comma list of jnas convolution implementations (xla, matmul)")
    ap.add_argument("--conv-chunks", default="auto",
                    help="comma list of batch chunks of matmul convolutions (auto = "
                         "jnas.fastconv.default_batch_chunks(), or a positive integer)")
    ap.add_argument("--methods", default="",
                    help="comma list of one-shot methods (darts, darts2, gdas, snas, "
                         "less-local): time each method's own step instead of the "
                         "--orders/--populations grid; every line has 'method' and 'flops'")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--fused", default="1",
                    help="comma list of 0/1: NB201 supernets with the fused cell "
                         "(jnas.cells_fast, the default) or the per-edge vmap cell")
    ap.add_argument("--gdas-samples", type=int, default=4,
                    help="GDAS: sampled cells whose fixed-op steps give flops_sampled")
    ap.add_argument("--flops-only", action="store_true",
                    help="only lower each jnas step and print its HLO cost analysis (fast; "
                         "no compile, no timing, no reference)")
    ap.add_argument("--no-interleave", action="store_true",
                    help="time the reference once per space/batch instead of alternating "
                         "its steps with each comparable jnas line's")
    ap.add_argument("--cpus", default=None,
                    help="pin the process (jnas and the reference alike) to these CPUs, "
                         "e.g. 0,1 (os.sched_setaffinity)")
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--N", type=int, default=5)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="torch CPU threads (default: all cores, as XLA-CPU uses)")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    ap.add_argument("--xla-options", choices=("fast", "fastest", "default"), default="fast",
                    help="fast: jnas.cells.compiler_options() (fast XLA-CPU compile options on "
                         "CPU, XLA defaults on GPU); fastest: the quickest CPU compile (slow "
                         "steps: dry runs); default: XLA defaults everywhere")
    ap.add_argument("--malloc", choices=("auto", "retain", "default"), default="auto",
                    help="retain: run with jnas.xla.CPU_MALLOC_TUNABLES (the script restarts "
                         "itself with them; no per-step page faults); default: glibc's "
                         "settings; auto: retain for NB201-only runs without a GPU/TPU (the "
                         "DARTS-space compile needs more memory with them)")
    ap.add_argument("--out", default=None, help="JSON-lines file (appended per line)")
    ap.add_argument("--append", action="store_true", help="keep the lines already in --out")
    ap.add_argument("--plot", default=None, help="PNG bar chart of step ms")
    ap.add_argument("--plot-from", default=None,
                    help="only plot the records of this JSON-lines file to --plot")
    args = ap.parse_args(argv)
    if args.plot_from:
        if not args.plot:
            ap.error("--plot-from needs --plot PNG")
        with open(args.plot_from) as f:
            recs = [json.loads(ln) for ln in f if ln.strip()]
        plot(recs, args.plot)
        return recs
    spaces = args.spaces.split(",")
    for sp in spaces:
        if sp not in ("nb201", "darts"):
            ap.error(f"unknown space {sp!r} in --spaces; choose from darts, nb201")
    batches = [int(b) for b in args.batches.split(",")]
    dtypes = args.dtypes.split(",")
    for d in dtypes:
        if d not in DTYPES:
            ap.error(f"unknown dtype {d!r} in --dtypes; choose from {sorted(DTYPES)}")
    impls = args.conv_impls.split(",")
    for i in impls:
        if i not in layers.CONV_IMPLS:
            ap.error(f"unknown conv implementation {i!r} in --conv-impls; choose from "
                     f"{', '.join(layers.CONV_IMPLS)}")
    for c in args.conv_chunks.split(","):
        if c != "auto" and not (c.isdigit() and int(c) >= 1):
            ap.error(f"bad --conv-chunks entry {c!r}; use auto or a positive integer")
    orders = [int(o) for o in args.orders.split(",") if o]
    pops = [int(p) for p in args.populations.split(",") if p]
    pop_orders = [int(o) for o in args.pop_orders.split(",") if o and int(o) in orders]
    lines: list[dict] = []
    if args.out and not args.append:
        open(args.out, "w").close()

    def emit(rec: dict) -> None:
        rec = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
               "cpu_count": os.cpu_count(),
               "malloc": "retained" if xla.malloc_retained() else "glibc-default", **rec}
        lines.append(rec)
        s = json.dumps(rec)
        print(s, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(s + "\n")

    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r} in --methods; choose from {', '.join(METHODS)}")
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    ok, why = ((False, "--no-torch") if args.no_torch else
               (False, "--flops-only") if args.flops_only else torch_available())
    if not ok:
        emit({"impl": "torch-xautodl", "status": "skipped", "reason": why})
    for space in spaces:
        for batch in batches:
            _bench_space_batch(space, batch, args, ok, impls, dtypes, orders, pops, pop_orders,
                               methods, emit)
    if methods:
        check_gdas_flops(lines, emit)
    if args.plot:
        plot(lines, args.plot)
    return lines


if __name__ == "__main__":
    reexec_with_malloc(sys.argv[1:], __file__)
    main()
