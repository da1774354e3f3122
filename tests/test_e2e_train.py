"""End-to-end on real CIFAR-10 images (shared zip): jnas.data -> NB201Network -> jnas.train.

The full proof (C=8, N=1, a few hundred steps, test accuracy > 35 %) takes minutes on 2 CPU
cores, so it lives in ``experiments/train_nb201_cell.py`` (output in RESULTS.md);
this test keeps the same pipeline short and asserts that the loss drops clearly.
"""
from __future__ import annotations

import jax
import numpy as np

from jnas import cells, data, train

OPTIMUM = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
           "+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")


def test_nb201_optimum_cell_loss_drops_on_real_cifar10(data_dir, cache_dir):
    x, y = data.load_cifar10("auto", "train", data_dir=data_dir, max_per_class=32)
    assert x.shape == (320, 32, 32, 3) and np.bincount(y).tolist() == [32] * 10
    steps, batch = 40, 32
    model = cells.NB201Network(OPTIMUM, C=4, N=1, num_classes=10)
    opt = train.sgd_cosine(lr=0.1, lr_min=0.01, wd=0.0, steps=steps)
    key = jax.random.key(0)
    k_init, k_data, k_aug = jax.random.split(key, 3)
    state = train.create_train_state(model, opt, k_init, data.normalize(x[:2]))
    train_step, eval_step = train.make_classifier_steps(model, opt, xla="fast")
    prep = jax.jit(lambda k, b: data.normalize(data.augment(k, b, pad=2)))

    losses = []
    it = data.prefetch_to_device(data.batch_iterator(x, y, batch, k_data))
    for step, (bx, by) in zip(range(steps), it):
        state, m = train_step(state, prep(jax.random.fold_in(k_aug, step), bx), by)
        losses.append(float(m["loss"]))
    assert np.all(np.isfinite(losses))
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert first > 2.0                                  # starts near chance (ln 10 = 2.30)
    assert last < first - 0.3, f"loss did not drop clearly: {first:.3f} -> {last:.3f}"
    # The trained network fits its training images better than chance (eval mode, BN stats).
    acc = float(eval_step(state, data.normalize(x), y)["accuracy"])
    assert acc > 0.2, acc
