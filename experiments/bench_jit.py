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
  while the step is traced: XLA's convolution, the default, or ``jnas.fastconv``'s im2col
  matmuls with a matmul backward); field ``conv_impl`` of each jnas line;
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
``block_until_ready`` (torch on CUDA: ``torch.cuda.synchronize``). ``images_per_s`` = 2·batch
(train + val batch) · P / step time. ``peak_mem_gb``: jax
``device.memory_stats()['peak_bytes_in_use']`` (process-wide peak, monotone over the run, so
an upper bound for later configs; null on CPU), ``exec_mem_gb`` the compiled step's own
``memory_analysis()`` (arguments + outputs + temps − aliased), torch
``torch.cuda.max_memory_allocated`` (reset per config). ``speedup_vs_ref`` = reference
first-order fp32 step ms / this step ms at the same space and batch, timed in the same
process just before (jnas first-order lines of one member; ``ref_step_ms`` too).
``ratio_vs_fp32_o1`` = this step / the jnas fp32 first-order single step of the same space,
batch and conv implementation (second order ≤ 3x, population of 8 ≤ 3x, bf16 < 1
are issue-8 targets). Each line is appended to ``--out`` as soon as it is measured, so a run
killed by a time limit keeps what it finished.

CPU command at the paper's size (BENCHMARKS.md; on the shared 2-core machine 10-20 minutes,
most of it the XLA-convolution step, ~250 s each: split by ``--conv-impls`` under a
10-minute limit; the DARTS-space reference at batch 64 needs > 11 GB)::

    . /work/benchvenv/bin/activate
    nice -n 10 python experiments/bench_jit.py --spaces nb201 --batches 64 --dtypes fp32 \
        --orders 1 --populations "" --steps 3 --out /tmp/bench_cpu_nb201.jsonl

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

import jax
import jax.numpy as jnp
import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, ".."))
sys.path.insert(0, _HERE)
_prev_platforms = os.environ.get("JAX_PLATFORMS")
from compile_cpu import fill_shapes  # noqa: E402  (sets JAX_PLATFORMS=cpu: undone below)
if _prev_platforms is None:
    os.environ.pop("JAX_PLATFORMS", None)

from jnas import cells, layers  # noqa: E402
from jnas.darts import DARTSConfig, make_bilevel_step  # noqa: E402
from jnas.less_local import make_population_step  # noqa: E402
from jnas.oneshot import (SearchState, alpha_optimizer, init_alpha, make_supernet,  # noqa: E402
                          weight_optimizer)

__all__ = ["bench_jnas", "bench_torch", "torch_available", "plot", "main", "DTYPES"]

TOTAL_STEPS = 10_000  # cosine schedule length (only sets the lr value; no effect on speed)
DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


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


def _peak_gb() -> float | None:
    try:
        ms = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001
        return None
    if not ms or "peak_bytes_in_use" not in ms:
        return None
    return round(ms["peak_bytes_in_use"] / 2**30, 3)


def _exec_gb(compiled) -> float | None:
    try:
        m = compiled.memory_analysis()
        b = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
             - m.alias_size_in_bytes)
        return round(b / 2**30, 3)
    except Exception:  # noqa: BLE001
        return None


def bench_jnas(space: str, order: int, batch: int, P: int, args: argparse.Namespace,
               dtype: str = "fp32", conv_impl: str = "xla") -> dict:
    """Compile and time one jnas search step. P = 0: the plain DARTS step; P >= 1: the
    less-local population step of P members; ``conv_impl`` while the step is traced."""
    with layers.conv_impl(conv_impl):
        return _bench_jnas(space, order, batch, P, args, dtype) | {"conv_impl": conv_impl}


def _bench_jnas(space, order, batch, P, args, dtype):
    config = DARTSConfig(C=args.C, N=args.N, layers=args.layers, batch_size=batch, order=order)
    net = _supernet(space, config, dtype)
    w_opt, a_opt = weight_optimizer(config, TOTAL_STEPS), alpha_optimizer(config)
    single = make_bilevel_step(net, config, w_opt, a_opt, TOTAL_STEPS, order=order)
    step = single if P == 0 else make_population_step(single)
    state = _state(net, config, w_opt, a_opt, batch, P)
    data = _batch(batch)
    jax.block_until_ready((state, data))
    t, c = time.perf_counter(), time.process_time()
    opts = cells.compiler_options(None if args.xla_options == "default" else args.xla_options)
    compiled = jax.jit(step, donate_argnums=0).lower(state, data).compile(compiler_options=opts)
    compile_s, compile_cpu_s = time.perf_counter() - t, time.process_time() - c
    state, m = compiled(state, data)  # warm-up (first call), excluded
    jax.block_until_ready((state, m))
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        state, m = compiled(state, data)
        jax.block_until_ready((state, m))
        times.append(time.perf_counter() - t)
    ms = 1e3 * float(np.median(times))
    loss = float(np.mean(np.asarray(m["train_loss"])))
    return {"impl": "jnas", "space": space, "order": order, "batch": batch, "dtype": dtype,
            "population": P if P else None, "xla_options": args.xla_options,
            "compile_s": round(compile_s, 2), "compile_cpu_s": round(compile_cpu_s, 2),
            "loadavg_1m": round(os.getloadavg()[0], 2), "step_ms": round(ms, 3),
            "step_ms_all": [round(1e3 * x, 1) for x in times],
            "images_per_s": round(2 * batch * max(P, 1) / ms * 1e3, 1),
            "peak_mem_gb": _peak_gb(), "exec_mem_gb": _exec_gb(compiled),
            "train_loss": loss, "finite": bool(np.isfinite(loss))}


# ----------------------------------------------------------------------------- torch
def torch_available() -> tuple[bool, str]:
    """Whether the PyTorch reference can run here: torch and xautodl's model classes import,
    and CUDA is available when JAX runs on a GPU (the reference runs on JAX's device kind)."""
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        return False, f"torch not importable: {e}"
    try:
        from xautodl.models import get_search_spaces  # noqa: F401
        from xautodl.models.cell_searchs import NASNetworkDARTS, TinyNetworkDarts  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return False, (f"xautodl not importable (pip install --no-deps xautodl==1.0.0): "
                       f"{type(e).__name__}: {e}")
    if jax.default_backend() == "gpu" and not torch.cuda.is_available():
        return False, "JAX runs on a GPU but torch.cuda.is_available() is False"
    return True, ""


def _torch_model(space: str, args: argparse.Namespace):
    """The xautodl search model of ``space`` and its cell count (see the module docstring)."""
    from xautodl.models import get_search_spaces
    from xautodl.models.cell_searchs import NASNetworkDARTS, TinyNetworkDarts
    if space == "nb201":
        ops = get_search_spaces("cell", "nas-bench-201")
        return TinyNetworkDarts(args.C, args.N, 4, 10, ops, False, False), 3 * args.N
    n = max(1, -(-args.layers // 3))  # 3N cells: the smallest N with 3N >= --layers
    ops = get_search_spaces("cell", "darts")
    return NASNetworkDARTS(args.C, n, 4, 4, 3, 10, ops, False, False), 3 * n


def bench_torch(space: str, batch: int, args: argparse.Namespace) -> dict:
    """Time the xautodl first-order DARTS step (weight step + α step) on JAX's device kind."""
    import torch
    cuda = jax.default_backend() == "gpu"
    dev = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, ref_cells = _torch_model(space, args)
    model = model.to(dev).train()
    w_params, a_params = list(model.get_weights()), list(model.get_alphas())
    w_opt = torch.optim.SGD(w_params, 0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(a_params, 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    crit = torch.nn.CrossEntropyLoss()
    g = torch.Generator(device=dev).manual_seed(0)
    xt = torch.randn(batch, 3, 32, 32, device=dev, generator=g)
    xv = torch.randn(batch, 3, 32, 32, device=dev, generator=g)
    yt = torch.randint(0, 10, (batch,), device=dev, generator=g)
    yv = torch.randint(0, 10, (batch,), device=dev, generator=g)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def step():
        w_opt.zero_grad(set_to_none=True)
        _, logits = model(xt)
        loss = crit(logits, yt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(w_params, 5.0)
        w_opt.step()
        a_opt.zero_grad(set_to_none=True)
        _, logits = model(xv)
        crit(logits, yv).backward()
        a_opt.step()
        return loss

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sync()
    t, c = time.perf_counter(), time.process_time()
    loss = step()  # warm-up (cudnn autotune), excluded; reported as compile_s
    sync()
    first_s, first_cpu_s = time.perf_counter() - t, time.process_time() - c
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t)
    ms = 1e3 * float(np.median(times))
    return {"impl": "torch-xautodl", "space": space, "order": 1, "batch": batch,
            "dtype": "fp32", "population": None, "compile_s": round(first_s, 2),
            "compile_cpu_s": round(first_cpu_s, 2),
            "compile_note": "eager: first (warm-up) call time", "step_ms": round(ms, 3),
            "step_ms_all": [round(1e3 * x, 1) for x in times],
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "images_per_s": round(2 * batch / ms * 1e3, 1),
            "peak_mem_gb": (round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda
                            else None),
            "torch_device": str(dev), "torch_threads": torch.get_num_threads(),
            "ref_cells": ref_cells, "train_loss": loss.item(), "torch": torch.__version__}


# ----------------------------------------------------------------------------- main
def plot(lines: list[dict], path: str) -> None:
    """A log-scale bar chart of ``step_ms`` of the records that have one, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in lines if r.get("step_ms") is not None]
    if not rows:
        return
    labels = [f"{r['impl']} {r.get('conv_impl', '')}\n{r['space']} o{r['order']} "
              f"b{r['batch']}\n{r['dtype']}"
              + (f" P{r['population']}" if r.get("population") else "") for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows)), 4.5))
    colors = ["tab:orange" if r["impl"] != "jnas" else "tab:blue" for r in rows]
    ax.bar(range(len(rows)), [r["step_ms"] for r in rows], color=colors)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=6, rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(bottom=min(r["step_ms"] for r in rows) / 3)
    ax.set_ylabel("step ms (median, log)")
    ax.set_title(f"search step time on {rows[0].get('device', jax.devices()[0].device_kind)}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
    ap.add_argument("--steps", type=int, default=20)
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
    orders = [int(o) for o in args.orders.split(",") if o]
    pops = [int(p) for p in args.populations.split(",") if p]
    pop_orders = [int(o) for o in args.pop_orders.split(",") if o and int(o) in orders]
    lines: list[dict] = []
    if args.out and not args.append:
        open(args.out, "w").close()

    def emit(rec: dict) -> None:
        rec = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
               "cpu_count": os.cpu_count(), **rec}
        lines.append(rec)
        s = json.dumps(rec)
        print(s, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(s + "\n")

    ref: dict[tuple[str, int], float] = {}
    ok, why = (False, "--no-torch") if args.no_torch else torch_available()
    if not ok:
        emit({"impl": "torch-xautodl", "status": "skipped", "reason": why})
    for space in spaces:
        for batch in batches:
            if ok:
                try:
                    r = bench_torch(space, batch, args)
                    ref[(space, batch)] = r["step_ms"]
                    emit(r)
                except Exception as e:  # noqa: BLE001
                    emit({"impl": "torch-xautodl", "space": space, "batch": batch,
                          "status": "failed", "reason": f"{type(e).__name__}: {e}"})
            for impl in impls:
                base = None  # the jnas fp32 first-order single step of this space, batch, impl
                for dtype in dtypes:
                    runs = [(o, 0) for o in orders] + [(o, p) for o in pop_orders for p in pops]
                    for order, P in runs:
                        try:
                            r = bench_jnas(space, order, batch, P, args, dtype, impl)
                        except Exception as e:  # noqa: BLE001
                            emit({"impl": "jnas", "space": space, "order": order,
                                  "batch": batch, "dtype": dtype, "population": P or None,
                                  "conv_impl": impl, "status": "failed",
                                  "reason": f"{type(e).__name__}: {e}"})
                            continue
                        if order == 1 and P == 0 and dtype == "fp32":
                            base = r["step_ms"]
                        if base is not None:
                            r["ratio_vs_fp32_o1"] = round(r["step_ms"] / base, 3)
                        if order == 1 and P <= 1 and (space, batch) in ref:
                            r["ref_step_ms"] = ref[(space, batch)]
                            r["speedup_vs_ref"] = round(ref[(space, batch)] / r["step_ms"], 2)
                        emit(r)
    if args.plot:
        plot(lines, args.plot)
    return lines


if __name__ == "__main__":
    main()
