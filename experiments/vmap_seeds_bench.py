"""Seeds in one program, measured and checked (issue 18; :mod:`jnas.oneshot_seeds`).

Timing: the time per step of S seeds as one vmapped step (``jax.vmap`` of the method's step
over stacked states and per-seed batches) against S sequential single-seed steps, on the real
NB201 supernet (default: the test size C=4, N=1, batch 8; real CIFAR-10 images; XLA 'fast'
options as a search uses them). One JSON line per method.

``--check``: each method's vmapped run (:func:`jnas.oneshot_seeds.run_vmapped_seeds`) against
its sequential runs (``run_darts`` / ``run_gdas`` / ``run_snas`` with ``key=seed``) on the
real NB201 supernet, 2 seeds x 2 epochs of 2 steps: one JSON line per method with the largest
|Δα|, the largest relative difference of a per-epoch metric and whether the genotypes agree;
exit code 1 when any differs beyond tolerance.

Command (2-core CPU shared with other jobs):
    JNAS_DATA_DIR=/work/shared/data nice -n 10 python experiments/vmap_seeds_bench.py \
        --seeds 4 --steps 10 [--check]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jnas import darts, oneshot, oneshot_seeds, snas, xla  # noqa: E402
from jnas.data import load_cifar10  # noqa: E402

CONFIGS = {"darts": darts.DARTSConfig, "gdas": darts.GDASConfig, "snas": snas.SNASConfig}
RUNS = {"darts": darts.run_darts, "gdas": darts.run_gdas, "snas": snas.run_snas}


def real_split(n: int) -> tuple[np.ndarray, ...]:
    """``n`` + ``n`` real CIFAR-10 training images as a search split."""
    x, y = load_cifar10(split="train", max_per_class=(2 * n) // 10 + 1)
    perm = np.random.default_rng(0).permutation(len(x))[:2 * n]
    x, y = x[perm], y[perm].astype(np.int32)
    return x[:n], y[:n], x[n:], y[n:]


def make_step(method: str, net, cfg, setup):
    """The method's un-jitted step (as its sequential entry point builds it)."""
    if method == "snas":
        return snas.make_snas_step(net, cfg, setup.w_opt, setup.a_opt, setup.total_steps)
    relaxation = "hard_gumbel" if method == "gdas" else "softmax"
    return darts.bilevel_maker(1, relaxation)(net, cfg, setup.w_opt, setup.a_opt,
                                              setup.total_steps)


def _timed(fn, reps: int) -> float:
    """Median seconds of ``fn()`` over ``reps`` calls (after one warm-up call)."""
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def bench(method: str, args: argparse.Namespace, data: tuple[np.ndarray, ...]) -> dict:
    """Per-step time of ``args.seeds`` seeds vmapped vs the same seeds one after another."""
    cfg = CONFIGS[method](C=args.C, N=args.N, batch_size=args.batch, epochs=1,
                          train_size=len(data[0]), val_size=len(data[2]), xla=args.xla,
                          plot=False)
    net = oneshot.make_supernet("nb201", cfg)
    seeds = list(range(args.seeds))
    setups = [oneshot.prepare(cfg, space="nb201", dataset="cifar10", key=s, net=net, data=data)
              for s in seeds]
    states = [oneshot.init_state(net, su.keys[1],
                                 oneshot.init_alpha(net, su.keys[2], cfg.alpha_init_std),
                                 su.w_opt, su.a_opt, su.sample_x) for su in setups]
    states = [jax.device_get(s) for s in states]
    step = make_step(method, net, cfg, setups[0])
    batch = {k: v[:args.batch] for k, v in zip(("xt", "yt", "xv", "yv"), data)}
    single = xla.Compiled(step, options=args.xla)  # no donation: states are reused
    vmapped = xla.Compiled(jax.vmap(step), options=args.xla)
    stacked = oneshot_seeds.stack_states(states)
    vbatch = {k: np.stack([v] * len(seeds)) for k, v in batch.items()}

    def run_single():
        jax.block_until_ready([single(s, batch) for s in states])

    def run_vmapped():
        jax.block_until_ready(vmapped(stacked, vbatch))

    seq_s = _timed(run_single, args.steps)
    vm_s = _timed(run_vmapped, args.steps)
    return {"what": "vmap_seeds_step", "method": method, "seeds": len(seeds), "C": args.C,
            "N": args.N, "batch": args.batch, "xla": args.xla, "backend": jax.default_backend(),
            "sequential_ms": round(1e3 * seq_s, 2), "vmapped_ms": round(1e3 * vm_s, 2),
            "speedup": round(seq_s / vm_s, 3), "compile_single_s": round(single.compile_s, 1),
            "compile_vmapped_s": round(vmapped.compile_s, 1), "reps": args.steps,
            "load1": round(os.getloadavg()[0], 1)}


def check(method: str, data: tuple[np.ndarray, ...], tol: float) -> dict:
    """A vmapped run of seeds 0 and 1 against their sequential runs (real supernet)."""
    cfg = CONFIGS[method](C=4, N=1, batch_size=8, epochs=2, train_size=16, val_size=16,
                          xla="fastest", plot=False, a_lr=3e-2)
    t0 = time.time()
    seq = {s: RUNS[method](cfg, key=s, data=data, quiet=True)[0] for s in (0, 1)}
    t1 = time.time()
    vm, _ = oneshot_seeds.run_vmapped_seeds(method, cfg, seeds=[0, 1], data=data, quiet=True)
    t2 = time.time()
    d_alpha, d_metric, same = 0.0, 0.0, True
    for s in (0, 1):
        a, b = seq[s].to_json(), vm[s].to_json()
        same &= a["genotype"] == b["genotype"]
        for k in a["alpha_final"]:
            d_alpha = max(d_alpha, float(np.abs(np.subtract(a["alpha_final"][k],
                                                            b["alpha_final"][k])).max()))
        for ha, hb in zip(a["history"], b["history"]):
            for k, v in ha.items():
                if isinstance(v, float):
                    d_metric = max(d_metric, abs(hb[k] - v) / max(abs(v), 1e-6))
    return {"what": "vmap_seeds_check", "method": method, "seeds": [0, 1], "same_genotype": same,
            "max_abs_dalpha": d_alpha, "max_rel_dmetric": d_metric,
            "ok": bool(same and d_alpha < tol and d_metric < 1e-3),
            "sequential_wall_s": round(t1 - t0, 1), "vmapped_wall_s": round(t2 - t1, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="darts,gdas,snas")
    p.add_argument("--seeds", type=int, default=4, help="seeds of the timed step")
    p.add_argument("--C", type=int, default=4)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="timed repetitions (median)")
    p.add_argument("--xla", default="fast", help="XLA-CPU options: fast, fastest or none")
    p.add_argument("--check", action="store_true", help="also check vmapped == sequential")
    p.add_argument("--no-bench", action="store_true", help="only --check")
    p.add_argument("--tol", type=float, default=1e-4, help="--check: largest |Δα|")
    args = p.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    xla.enable_compilation_cache()  # as `jnas search`: per-seed inits compile once
    data = real_split(max(16, args.batch))
    ok = True
    for m in methods:
        if not args.no_bench:
            print(json.dumps(bench(m, args, data)), flush=True)
        if args.check:
            rec = check(m, real_split(16), args.tol)
            ok &= rec["ok"]
            print(json.dumps(rec), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
