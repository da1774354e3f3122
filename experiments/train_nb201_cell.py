"""End-to-end proof on CPU: train the NAS-Bench-201 CIFAR-10 optimum cell on real CIFAR-10.

Cell ``|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|``
(NB201 index 6111, 94.37 % after the benchmark's 200 epochs at C=16, N=5), here as a tiny
``NB201Network(C=8, N=1)`` trained for a few hundred SGD steps on the JPEG images of the shared
zip (``$JNAS_DATA_DIR/cifar10/cifar10-jpg.zip``) with the standard pipeline of
:mod:`jnas.data` (pad-4 crop + flip, CIFAR normalisation, deterministic batches), then
evaluated on the CIFAR-10 test images. Chance is 10 %; the goal is > 35 %.

Command (2-core CPU shared with other jobs):
    JNAS_DATA_DIR=/work/shared/data nice timeout 3000 /work/venv/bin/python \
        experiments/train_nb201_cell.py --steps 300 --batch 64 --test-per-class 300

Result (2-core CPU, load average ~10-15 from other jobs, 2026-11-23, seed 0): test accuracy
41.5 % on 3,000 test images (first 300 per class; chance 10 %), loss 2.21 (steps 1-25) ->
1.62 (steps 276-300), train-batch accuracy 40 % at the end; 69,026 params; compile 73.7 s,
training 1,691 s (~5.6 s/step under that load), data 38.4 s (decode of 50k JPEGs, first run).
The train/eval steps here are a small local optax loop (SGD+Nesterov, cosine lr, wd 5e-4,
clip 5) written before ``jnas.train`` existed; ``tests/test_e2e_train.py`` runs the same data
pipeline through ``jnas.train.make_classifier_steps`` / ``sgd_cosine``.
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
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jnas import cells, data  # noqa: E402

OPTIMUM = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
           "+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")


def build(model, lr: float, steps: int, wd: float):
    """Train/eval steps for a discrete network: SGD + momentum, cosine lr, weight decay."""
    tx = optax.chain(optax.clip_by_global_norm(5.0), optax.add_decayed_weights(wd),
                     optax.sgd(optax.cosine_decay_schedule(lr, steps, alpha=0.0), momentum=0.9,
                               nesterov=True))

    def loss_fn(params, batch_stats, x, y):
        logits, upd = model.apply({"params": params, "batch_stats": batch_stats}, x,
                                  train=True, mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, (upd["batch_stats"], (logits.argmax(-1) == y).mean())

    @jax.jit
    def train_step(state, key, x, y):
        params, batch_stats, opt = state
        x = data.normalize(data.augment(key, x))
        (loss, (bs, acc)), g = jax.value_and_grad(loss_fn, has_aux=True)(params, batch_stats, x, y)
        upd, opt = tx.update(g, opt, params)
        return (optax.apply_updates(params, upd), bs, opt), loss, acc

    @jax.jit
    def eval_step(state, x, y):
        params, batch_stats, _ = state
        logits = model.apply({"params": params, "batch_stats": batch_stats}, data.normalize(x),
                             train=False)
        return (logits.argmax(-1) == y).sum()

    return tx, train_step, eval_step


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-per-class", type=int, default=None, help="default: all 5,000")
    p.add_argument("--test-per-class", type=int, default=None, help="default: all 1,000")
    p.add_argument("--log-every", type=int, default=25)
    a = p.parse_args(argv)

    t0 = time.time()
    xtr, ytr = data.load_cifar10("auto", "train", max_per_class=a.train_per_class)
    xte, yte = data.load_cifar10("auto", "test", max_per_class=a.test_per_class)
    t_data = time.time() - t0
    print(json.dumps({"event": "data", "train": int(len(ytr)), "test": int(len(yte)),
                      "load_s": round(t_data, 1)}), flush=True)

    key = jax.random.key(a.seed)
    k_init, k_data, k_aug = jax.random.split(key, 3)
    model = cells.NB201Network(OPTIMUM, C=a.C, N=a.N, num_classes=10)
    variables = model.init(k_init, jnp.zeros((2, 32, 32, 3)), train=False)
    tx, train_step, eval_step = build(model, a.lr, a.steps, a.wd)
    state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
    n_params = sum(x.size for x in jax.tree.leaves(variables["params"]))

    batches = data.prefetch_to_device(data.batch_iterator(xtr, ytr, a.batch, k_data))
    losses, accs = [], []
    t1 = time.time()
    compile_s = None
    for step, (x, y) in zip(range(a.steps), batches):
        state, loss, acc = train_step(state, jax.random.fold_in(k_aug, step), x, y)
        if compile_s is None:
            jax.block_until_ready(loss)
            compile_s = time.time() - t1
        losses.append(loss)
        accs.append(acc)
        if (step + 1) % a.log_every == 0 or step + 1 == a.steps:
            w = slice(-a.log_every, None)
            print(json.dumps({"event": "train", "step": step + 1,
                              "loss": round(float(np.mean(jax.device_get(losses[w]))), 4),
                              "train_acc": round(float(np.mean(jax.device_get(accs[w]))), 4),
                              "elapsed_s": round(time.time() - t1, 1)}), flush=True)
    train_s = time.time() - t1

    t2 = time.time()
    correct = 0
    eb = 500
    for lo in range(0, len(yte), eb):
        correct += int(eval_step(state, jnp.asarray(xte[lo:lo + eb]), jnp.asarray(yte[lo:lo + eb])))
    result = {"event": "result", "arch": OPTIMUM, "C": a.C, "N": a.N, "params": int(n_params),
              "steps": a.steps, "batch": a.batch, "lr": a.lr, "seed": a.seed,
              "train_images": int(len(ytr)), "test_images": int(len(yte)),
              "test_acc": round(correct / len(yte), 4),
              "first_loss": round(float(np.mean(jax.device_get(losses[:a.log_every]))), 4),
              "last_loss": round(float(np.mean(jax.device_get(losses[-a.log_every:]))), 4),
              "compile_s": round(compile_s, 1), "train_s": round(train_s, 1),
              "eval_s": round(time.time() - t2, 1), "data_s": round(t_data, 1)}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
