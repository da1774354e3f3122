"""The fused NB201 supernet cell (jnas.cells_fast) is the plain cell's function, and the
batch-chunked matmul kernel gradient of jnas.fastconv is the convolution's."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jnas import cells, cells_fast, fastconv, layers

from conftest import randn


def _loss_and_grads(fused: bool, impl: str, mask=None):
    x = randn(0, (4, 8, 8, 3))
    y = jnp.arange(4) % 10
    w = jax.nn.softmax(randn(1, (6, 5)))
    with cells_fast.fused(fused), layers.conv_impl(impl):
        net = cells.NB201Supernet(C=4, N=1, op_mask=mask)
        fastest = layers.compiler_options("fastest")
        v = jax.jit(lambda k: net.init(k, x, w, train=True)).lower(jax.random.key(2)).compile(
            compiler_options=fastest)(jax.random.key(2))

        def loss(p, a):
            logits, _ = net.apply({"params": p, "batch_stats": v["batch_stats"]}, x, a,
                                  train=True, mutable=["batch_stats"])
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), y])
        vg = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(v["params"], w)
        val, g = vg.compile(compiler_options=fastest)(v["params"], w)
    return v["params"], val, g


def test_fused_supernet_same_params_loss_and_gradients():
    # the fused cell with the matmul convolution (the pair used on CPU) against the plain
    # vmap cell with XLA's convolution (the default); fused + xla is the same graph form
    p0, l0, g0 = _loss_and_grads(False, "xla")
    p1, l1, g1 = _loss_and_grads(True, "matmul")
    # the same parameter tree and the same initial values (same names, same rng streams)
    assert jax.tree_util.tree_structure(p0) == jax.tree_util.tree_structure(p1)
    for a, b in zip(jax.tree_util.tree_leaves(p0), jax.tree_util.tree_leaves(p1)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(float(l1), float(l0), rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(g1)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-3, atol=1e-5)
    # the α gradient is not trivially zero (the check would pass vacuously otherwise)
    assert float(jnp.max(jnp.abs(g1[1]))) > 1e-4


def test_fused_supernet_respects_op_mask():
    mask = np.ones((6, 5), int)
    mask[0, 3] = mask[1, 2] = mask[3, 2] = 0  # some conv ops of nodes 0 and 1 masked
    mask[5, 2:4] = 0  # node 2's only edge without convs: no kernel there
    mask = tuple(map(tuple, mask))
    p0, l0, g0 = _loss_and_grads(False, "xla", mask)
    p1, l1, g1 = _loss_and_grads(True, "matmul", mask)
    assert jax.tree_util.tree_structure(p0) == jax.tree_util.tree_structure(p1)
    assert "edges_from_2" not in p1["stage_0"]
    np.testing.assert_allclose(float(l1), float(l0), rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(g1)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-3, atol=1e-5)


def test_fused_switch_and_env():
    # the default follows the convolution implementation; an explicit choice overrides it
    with layers.conv_impl("matmul"):
        assert cells_fast.get_fused() is True
        with cells_fast.fused(False):
            assert cells_fast.get_fused() is False
    with layers.conv_impl("xla"):
        assert cells_fast.get_fused() is False
        with cells_fast.fused(True):
            assert cells_fast.get_fused() is True
        assert cells_fast.get_fused() is False
    code = ("from jnas import cells_fast, layers; layers.set_conv_impl('matmul'); "
            "print(cells_fast.get_fused())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "JNAS_FUSED_CELLS": "0"}, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_chunked_kernel_gradient_matches_lax(monkeypatch):
    """Batch chunks of the kernel gradient (lax.scan) give XLA's kernel gradient."""
    monkeypatch.setattr(fastconv, "_CHUNK_BYTES", 2 * 6 * 6 * 9 * 3 * 4 - 1)  # < 2 images
    assert fastconv._batch_chunks(8, 6 * 6 * 9 * 3 * 4) == 8
    assert fastconv._batch_chunks(3, 6 * 6 * 9 * 3 * 4) == 1  # small: no loop
    x = randn(0, (8, 6, 6, 3))
    k = randn(1, (3, 3, 3, 5))
    ct = randn(2, (8, 6, 6, 5))

    def loss(impl):
        return lambda x_, k_: jnp.sum(fastconv.conv2d(x_, k_, padding=1, impl=impl) * ct)
    gx0, gk0 = jax.grad(loss("xla"), (0, 1))(x, k)
    gx1, gk1 = jax.grad(loss("matmul"), (0, 1))(x, k)
    np.testing.assert_allclose(np.asarray(gk1), np.asarray(gk0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(gx1), np.asarray(gx0), rtol=1e-5, atol=1e-4)
