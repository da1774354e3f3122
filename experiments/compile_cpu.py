"""CPU compile time and step time of the jnas search supernets (issue 8, CPU side).

Times one first-order DARTS search step (gradients w.r.t. weights and architecture logits
on one batch + an SGD update of the weights and an Adam update of alpha, fwd + bwd) for

* NB201 supernet at test size (C=4, N=1, batch 8) and at C=16, N=5, batch 64;
* DARTS-space supernet at test size (C=4, 5 layers, batch 8) and at C=16, 8 layers, batch 64.

Prints one JSON line per config: ``compile_s`` (lower + XLA compile of the step, init
excluded: weights are filled from ``jax.eval_shape`` shapes so the init graph is never
compiled), ``compile_cpu_s`` (process CPU seconds of the same: XLA compiles mostly on one
thread, so this approximates the wall time on an idle machine), ``step_ms`` (median of ``--steps`` timed steps after one warm-up), the machine
load average while it ran.

Command (2-core shared CPU, 1 device)::

    nice timeout 3000 /work/venv/bin/python experiments/compile_cpu.py --out /tmp/compile_cpu.jsonl

Runtime: 25+ minutes on the shared 2-core CPU under load (dominated by the DARTS step and
the C=16 configs). Result (2026-11-23, shared 2-core CPU, load average 19-21 from other
jobs): NB201 test size compile 111 s wall / 19.3 s CPU, step 330 ms; DARTS test size
compile 378 s wall / 73.8 s CPU, step 14.5 s; the C=16 configs did not finish within the
1500 s timeout. Full table: ``RESULTS.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from jnas import cells, train  # noqa: E402


def _fill(shapes):
    rng = np.random.default_rng(0)

    def f(path, s):
        name = jax.tree_util.keystr(path)
        if name.endswith("['var']") or name.endswith("['scale']"):
            return jnp.ones(s.shape, s.dtype)
        fan_in = int(np.prod(s.shape[-4:-1])) if len(s.shape) > 1 else 1
        return jnp.asarray(rng.normal(0, 1 / np.sqrt(max(fan_in, 1)), s.shape), s.dtype)
    return jax.tree_util.tree_map_with_path(f, shapes)


def bench(name: str, model, alpha_shapes: dict, batch: int, steps: int) -> dict:
    x = jnp.asarray(np.random.default_rng(1).normal(size=(batch, 32, 32, 3)), jnp.float32)
    y = jnp.asarray(np.arange(batch) % 10, jnp.int32)
    alpha = {k: 1e-3 * jnp.asarray(np.random.default_rng(2).normal(size=s), jnp.float32)
             for k, s in alpha_shapes.items()}

    def weights(a):
        return [jax.nn.softmax(a[k], -1) for k in alpha_shapes]

    v = _fill(jax.eval_shape(lambda: model.init(jax.random.key(0), x, *weights(alpha),
                                                train=True)))
    w_opt = train.sgd_cosine(steps=1000)
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
    compiled = jax.jit(step, donate_argnums=0).lower(state, x, y).compile()
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
    return {"config": name, "batch": batch, "compile_s": round(compile_s, 2),
            "compile_cpu_s": round(compile_cpu_s, 2),
            "step_ms": round(1e3 * float(np.median(times)), 1), "loss": float(l),
            "loadavg_1m": os.getloadavg()[0], "devices": jax.device_count(),
            "backend": jax.default_backend()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", default=None, help="also append the JSON lines to this file")
    ap.add_argument("--only", default=None, help="comma list of config names to run")
    args = ap.parse_args()
    configs = [
        ("nb201_test_C4_N1", cells.NB201Supernet(C=4, N=1), {"cell": (6, 5)}, 8),
        ("darts_test_C4_L5", cells.DARTSSupernet(C=4, layers=5),
         {"normal": (14, 8), "reduce": (14, 8)}, 8),
        ("nb201_C16_N5", cells.NB201Supernet(C=16, N=5), {"cell": (6, 5)}, 64),
        ("darts_C16_L8", cells.DARTSSupernet(C=16, layers=8),
         {"normal": (14, 8), "reduce": (14, 8)}, 64),
    ]
    for name, model, shapes, batch in configs:
        if args.only and name not in args.only.split(","):
            continue
        rec = bench(name, model, shapes, batch, args.steps)
        line = json.dumps(rec)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
