"""The PyTorch reference of ``experiments/bench_jit.py`` (xautodl 1.0.0 on torch) and its plot.

Split out of bench_jit.py (module size), with its ``--malloc`` restart; the models,
optimisers and timing are described in bench_jit.py's docstring: ``TinyNetworkDarts``
(NB201) / ``NASNetworkDARTS`` (DARTS space), first-order DARTS step = weight SGD step on a
train batch + α Adam step on a val batch, as xautodl's DARTS-V1 search script, eager, fp32,
on JAX's device kind.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax
import numpy as np

from jnas import xla

__all__ = ["torch_available", "bench_torch", "prepare_torch", "torch_peak_gb", "plot",
           "flops_of", "jax_peak_gb", "exec_gb", "check_gdas_flops", "reexec_with_malloc"]


def _timing(times: list[float], batch: int) -> dict:
    ms = 1e3 * float(np.median(times))
    return {"step_ms": round(ms, 3), "step_ms_all": [round(1e3 * x, 1) for x in times],
            "images_per_s": round(2 * batch / ms * 1e3, 1),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


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
    """Time the xautodl first-order DARTS step (weight step + α step) on JAX's device kind
    alone (``--steps`` calls after one warm-up)."""
    run, rec = prepare_torch(space, batch, args)
    times = [run() for _ in range(args.steps)]
    return rec | _timing(times, batch) | {"peak_mem_gb": torch_peak_gb()}


def torch_peak_gb() -> float | None:
    """``torch.cuda.max_memory_allocated`` in GiB when the reference runs on CUDA, else None."""
    import torch
    if not torch.cuda.is_available() or jax.default_backend() != "gpu":
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def prepare_torch(space: str, batch: int, args: argparse.Namespace) -> tuple[object, dict]:
    """Build the xautodl model and optimisers, run the warm-up step (``compile_s``: eager, its
    wall time); returns ``(run, record)``, ``run()`` timing one more step in seconds."""
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

    def run() -> float:
        t0 = time.perf_counter()
        step()
        sync()
        return time.perf_counter() - t0

    return run, {"impl": "torch-xautodl", "method": "darts", "space": space, "order": 1,
                 "batch": batch, "dtype": "fp32", "population": None,
                 "compile_s": round(first_s, 2), "compile_cpu_s": round(first_cpu_s, 2),
                 "compile_note": "eager: first (warm-up) call time",
                 "torch_device": str(dev), "torch_threads": torch.get_num_threads(),
                 "ref_cells": ref_cells, "train_loss": loss.item(), "torch": torch.__version__,
                 "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


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


def jax_peak_gb() -> float | None:
    """jax's process-wide ``peak_bytes_in_use`` of device 0 in GiB (None on CPU)."""
    try:
        ms = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001
        return None
    if not ms or "peak_bytes_in_use" not in ms:
        return None
    return round(ms["peak_bytes_in_use"] / 2**30, 3)


def exec_gb(compiled) -> float | None:
    """A compiled step's own memory (arguments + outputs + temps - aliased) in GiB."""
    try:
        m = compiled.memory_analysis()
        b = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
             - m.alias_size_in_bytes)
        return round(b / 2**30, 3)
    except Exception:  # noqa: BLE001
        return None


def flops_of(cost) -> float | None:
    """The ``flops`` entry of an XLA cost analysis (a dict, or a list of them in older jax)."""
    try:
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost["flops"])
    except Exception:  # noqa: BLE001
        return None


def check_gdas_flops(lines: list[dict], emit) -> None:
    """One line per space/batch/dtype/impl with both: GDAS's executed FLOPs (sampled ops
    fixed) over the DARTS step's (issue 17: at most half)."""
    by = {}
    for r in lines:
        if r.get("impl") == "jnas" and r.get("method") in ("darts", "gdas") and "flops" in r:
            by.setdefault((r["space"], r["batch"], r["dtype"], r["conv_impl"]), {})[
                r["method"]] = r
    for (space, batch, dtype, impl), d in by.items():
        if "darts" not in d or "gdas" not in d:
            continue
        g, dd = d["gdas"], d["darts"]
        fs = g.get("flops_sampled")
        ratio = None if fs is None or not dd.get("flops_lowered") else fs / dd["flops_lowered"]
        emit({"check": "gdas_flops_le_half_darts", "space": space, "batch": batch,
              "dtype": dtype, "conv_impl": impl, "darts_flops": dd.get("flops"),
              "darts_flops_lowered": dd.get("flops_lowered"), "gdas_flops": g.get("flops"),
              "gdas_flops_sampled": fs,
              "ratio_sampled": None if ratio is None else round(ratio, 3),
              "ratio_compiled": (round(g["flops"] / dd["flops"], 3)
                                 if g.get("flops") and dd.get("flops") else None),
              "ok": ratio is not None and ratio <= 0.5})


def _accelerator_present() -> bool:
    return any(os.path.exists(p) for p in ("/dev/nvidia0", "/dev/accel0"))


def reexec_with_malloc(argv: list[str], script: str) -> None:
    """``--malloc retain`` (``auto``: when no GPU/TPU device file exists and ``--spaces`` is
    NB201 only): restart ``script`` with ``jnas.xla.malloc_env()`` unless the process already
    runs with it (glibc only; glibc reads its tunables at start). Both implementations then
    share the allocator settings, as they share the process. Not for the DARTS space by
    default: the tunables keep the peak heap, and compiling its paper-size step then passed
    23 GB of RSS where glibc's defaults stayed near 10 GB (BENCHMARKS.md, eleventh session)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--malloc", default="auto")
    pre.add_argument("--spaces", default="nb201,darts")
    known = pre.parse_known_args(argv)[0]
    mode, spaces = known.malloc, known.spaces.split(",")
    want = mode == "retain" or (mode == "auto" and not _accelerator_present()
                                and "darts" not in spaces)
    if (want and not xla.malloc_retained() and platform.libc_ver()[0] == "glibc"
            and not os.environ.get("JNAS_BENCH_RESTARTED")):  # at most one restart
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, os.path.abspath(script), *argv],
                  {**xla.malloc_env(), "JNAS_BENCH_RESTARTED": "1"})
