"""CPU compile time and step time of the jnas search supernets (issue 8, CPU side).

Times one first-order DARTS search step (gradients w.r.t. weights and architecture logits
on one batch + an SGD update of the weights and an Adam update of alpha, fwd + bwd) for

* NB201 supernet at test size (C=4, N=1, batch 8) and at C=16, N=5, batch 64;
* DARTS-space supernet at test size (C=4, 5 layers, batch 8) and at C=16, 8 layers, batch 64.

Prints one JSON line per config and option set: ``compile_s`` (lower + XLA compile of the
step, init excluded: weights are filled from ``jax.eval_shape`` shapes so the init graph is
never compiled), ``compile_cpu_s`` (process CPU seconds of the same: robust to the load of a
shared machine), ``step_ms`` (median of ``--steps`` timed steps after one warm-up), the
machine load average while it ran. ``--options``: XLA option sets ``default``, ``fast``
(:data:`jnas.cells.CPU_FAST_COMPILE`) and ``fastest`` (backend optimisation level 0);
``--flat 1`` wraps the weight optimiser in ``optax.flatten`` (one vector: fewer kernels,
same numerics); ``--dtype bfloat16`` sets the supernets' compute dtype.

Command (2-core shared CPU, 1 device; one process per option set, so that every figure
includes the first-compile costs a user pays)::

    for o in default fast fastest; do nice -n 10 /work/venv/bin/python \
        experiments/compile_cpu.py --only nb201_test_C4_N1 --options $o; done
    nice -n 10 /work/venv/bin/python experiments/compile_cpu.py --only nb201_test_C4_N1 \
        --options fast --flat 1

Result (2026-11-23, shared 2-core AMD EPYC CPU, load average 5-8 from other jobs, two
alternating repetitions; BENCHMARKS.md): NB201 test size (C=4, N=1, batch 8) compile
19.1 / 20.0 CPU-s before this change (HEAD ``bff9370``), now 16.6 (default), 9.3-9.7
(``fast``), 8.1-8.4 (``fast`` + flat optimiser), 3.9-4.1 (``fastest``, but ~10x slower
steps); step 60-110 ms except ``fastest`` (570-970 ms). DARTS test size (C=4, 5 layers):
see BENCHMARKS.md. Earlier (before the custom BN / fast options): NB201 111 s wall / 19.3 s
CPU at load 21; DARTS 378 s wall / 73.8 s CPU, step 14.5 s.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from jnas import cells, cells_fast, layers, train  # noqa: E402

__all__ = ["fill_shapes", "bench", "OPTIONS", "main"]


def fill_shapes(shapes: Any) -> Any:
    """Concrete arrays for a tree of ``jax.ShapeDtypeStruct`` (BN var/scale ones, others
    normal with std 1/sqrt(fan-in)): weights without compiling the init graph."""
    rng = np.random.default_rng(0)

    def f(path, s):
        name = jax.tree_util.keystr(path)
        if name.endswith("['var']") or name.endswith("['scale']"):
            return jnp.ones(s.shape, s.dtype)
        fan_in = int(np.prod(s.shape[-4:-1])) if len(s.shape) > 1 else 1
        return jnp.asarray(rng.normal(0, 1 / np.sqrt(max(fan_in, 1)), s.shape), s.dtype)
    return jax.tree_util.tree_map_with_path(f, shapes)


OPTIONS = {"default": None, "fast": cells.CPU_FAST_COMPILE,
           "fastest": {"xla_cpu_use_fusion_emitters": False,
                       "xla_backend_optimization_level": 0}}


def bench(name: str, model: Any, alpha_shapes: dict, batch: int, steps: int,
          options: str = "default", flat: bool = False, conv_impl: str = "xla",
          fused: bool = True) -> dict:
    """Compile and time one first-order step of ``model`` (see the module docstring);
    ``conv_impl``: :func:`jnas.layers.set_conv_impl` and ``fused``:
    :func:`jnas.cells_fast.set_fused` (NB201 cells) while the step is traced."""
    with layers.conv_impl(conv_impl), cells_fast.fused(fused):
        return _bench(name, model, alpha_shapes, batch, steps, options, flat) | {
            "conv_impl": conv_impl, "fused_cells": fused}


def _bench(name, model, alpha_shapes, batch, steps, options, flat):
    x = jnp.asarray(np.random.default_rng(1).normal(size=(batch, 32, 32, 3)), jnp.float32)
    y = jnp.asarray(np.arange(batch) % 10, jnp.int32)
    alpha = {k: 1e-3 * jnp.asarray(np.random.default_rng(2).normal(size=s), jnp.float32)
             for k, s in alpha_shapes.items()}

    def weights(a):
        return [jax.nn.softmax(a[k], -1) for k in alpha_shapes]

    v = fill_shapes(jax.eval_shape(lambda: model.init(jax.random.key(0), x, *weights(alpha),
                                                train=True)))
    w_opt = train.sgd_cosine(steps=1000)
    if flat:  # one flat vector for the optimiser: fewer, larger XLA kernels (same numerics)
        w_opt = optax.flatten(w_opt)
    a_opt = optax.adamw(3e-4, b1=0.5, b2=0.999, weight_decay=1e-3)
    state = (v["params"], v.get("batch_stats", {}), alpha, w_opt.init(v["params"]),
             a_opt.init(alpha))

    def step(state, x, y):
        params, bs, alpha, ws, as_ = state

        def loss(p, a):
            var = {"params": p, **({"batch_stats": bs} if bs else {})}
            logits, upd = model.apply(var, x, *weights(a), train=True, mutable=["batch_stats"])
            return train.cross_entropy(logits, y), upd.get("batch_stats", bs)

        (l, bs2), (gw, ga) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params,
                                                                                 alpha)
        uw, ws = w_opt.update(gw, ws, params)
        ua, as_ = a_opt.update(ga, as_, alpha)
        return (optax.apply_updates(params, uw), bs2, optax.apply_updates(alpha, ua), ws,
                as_), l

    t, c = time.perf_counter(), time.process_time()
    compiled = jax.jit(step, donate_argnums=0).lower(state, x, y).compile(
        compiler_options=OPTIONS[options])
    compile_s = time.perf_counter() - t
    compile_cpu_s = time.process_time() - c  # CPU seconds: robust to a loaded machine
    state, l = compiled(state, x, y)
    jax.block_until_ready(l)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, l = compiled(state, x, y)
        jax.block_until_ready(l)
        times.append(time.perf_counter() - t)
    return {"config": name, "batch": batch, "xla_options": options, "flat_optimizer": flat,
            "compile_s": round(compile_s, 2),
            "compile_cpu_s": round(compile_cpu_s, 2),
            "step_ms": round(1e3 * float(np.median(times)), 1), "loss": float(l),
            "loadavg_1m": os.getloadavg()[0], "devices": jax.device_count(),
            "backend": jax.default_backend()}


def main() -> None:
    """Command line: one JSON line per config x option set x conv implementation."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", default=None, help="also append the JSON lines to this file")
    ap.add_argument("--only", default=None, help="comma list of config names to run")
    ap.add_argument("--options", default="default",
                    help="comma list of XLA option sets: default, fast (cells.CPU_FAST_COMPILE),"
                         " fastest (backend optimisation level 0)")
    ap.add_argument("--flat", default="0",
                    help="comma list of 0/1: wrap the weight optimiser in optax.flatten")
    ap.add_argument("--dtype", default=None, help="supernet compute dtype (e.g. bfloat16)")
    ap.add_argument("--conv-impls", default="xla",
                    help="comma list of convolution implementations: xla, matmul "
                         "(jnas.layers.set_conv_impl)")
    ap.add_argument("--fused", default="1",
                    help="comma list of 0/1: the fused NB201 supernet cell (jnas.cells_fast)")
    args = ap.parse_args()
    for o in args.options.split(","):
        if o not in OPTIONS:
            ap.error(f"unknown --options {o!r}; choose from {sorted(OPTIONS)}")
    dt = {"dtype": args.dtype} if args.dtype else {}
    configs = [
        ("nb201_test_C4_N1", cells.NB201Supernet(C=4, N=1, **dt), {"cell": (6, 5)}, 8),
        ("darts_test_C4_L5", cells.DARTSSupernet(C=4, layers=5, **dt),
         {"normal": (14, 8), "reduce": (14, 8)}, 8),
        ("nb201_C16_N5", cells.NB201Supernet(C=16, N=5, **dt), {"cell": (6, 5)}, 64),
        ("darts_C16_L8", cells.DARTSSupernet(C=16, layers=8, **dt),
         {"normal": (14, 8), "reduce": (14, 8)}, 64),
    ]
    for name, model, shapes, batch in configs:
        if args.only and name not in args.only.split(","):
            continue
        for opts in args.options.split(","):
            for flat in args.flat.split(","):
                for impl in args.conv_impls.split(","):
                    for fz in args.fused.split(","):
                        rec = bench(name, model, shapes, batch, args.steps, opts,
                                    flat == "1", impl, fz == "1")
                        rec["dtype"] = args.dtype or "float32"
                        line = json.dumps(rec)
                        print(line, flush=True)
                        if args.out:
                            with open(args.out, "a") as f:
                                f.write(line + "\n")


if __name__ == "__main__":
    main()
