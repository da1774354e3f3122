"""The matmul convolution (jnas.fastconv) against lax.conv_general_dilated, and the switch."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import cells, cells_fast, fastconv, layers

# (kernel, stride, dilation, groups, cin, cout): every form the cells use (NB201 1x1/3x3,
# the stride-2 ResNet conv, DARTS-space depthwise 3x3/5x5 with dilation 2 and stride 2) and
# a general grouped one; ungrouped stride-1 dilated, 5x5 and even kernels (the flipped-kernel
# input gradient).
CASES = [(1, 1, 1, 1, 3, 4), (3, 1, 1, 1, 3, 4), (3, 2, 1, 1, 3, 5), (3, 1, 1, 3, 3, 3),
         (5, 2, 1, 3, 3, 3), (3, 1, 2, 3, 3, 3), (5, 2, 2, 3, 3, 3), (3, 1, 1, 2, 4, 6),
         (2, 2, 1, 1, 3, 4), (3, 1, 2, 1, 3, 4), (5, 1, 1, 1, 3, 4), (2, 1, 1, 1, 3, 4)]
TOL = dict(rtol=1e-5, atol=1e-5)


def _data(k, groups, cin, cout, seed=0):
    r = np.random.default_rng(seed)
    x = jnp.asarray(r.normal(size=(2, 7, 6, cin)), jnp.float32)
    w = jnp.asarray(r.normal(size=(k, k, cin // groups, cout)), jnp.float32)
    return x, w


def _pad(k, d):
    return (k - 1) // 2 * d


@pytest.mark.parametrize("k,s,d,g,cin,cout", CASES)
def test_matmul_conv_matches_lax_outputs_and_gradients(k, s, d, g, cin, cout):
    x, w = _data(k, g, cin, cout)
    kw = dict(stride=s, padding=_pad(k, d), dilation=d, groups=g)
    y_ref = fastconv.conv2d(x, w, impl="xla", **kw)
    ref = jax.lax.conv_general_dilated(x, w, (s, s), [(_pad(k, d),) * 2] * 2,
                                       rhs_dilation=(d, d), feature_group_count=g,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_array_equal(y_ref, ref)
    y = fastconv.conv2d(x, w, impl="matmul", **kw)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    np.testing.assert_allclose(y, ref, **TOL)
    ct = jnp.asarray(np.random.default_rng(1).normal(size=ref.shape), jnp.float32)

    def loss(impl):
        return lambda x_, w_: jnp.sum(fastconv.conv2d(x_, w_, impl=impl, **kw) * ct)
    gx_ref, gw_ref = jax.grad(loss("xla"), argnums=(0, 1))(x, w)
    gx, gw = jax.grad(loss("matmul"), argnums=(0, 1))(x, w)
    np.testing.assert_allclose(gx, gx_ref, **TOL)
    np.testing.assert_allclose(gw, gw_ref, **TOL)


@pytest.mark.parametrize("k,s,d,g,cin,cout", [CASES[0], CASES[1], CASES[2], CASES[5], CASES[7]])
def test_matmul_conv_second_order(k, s, d, g, cin, cout):
    """grad of grad (as in second-order DARTS): a loss of the first gradients."""
    x, w = _data(k, g, cin, cout, seed=2)
    kw = dict(stride=s, padding=_pad(k, d), dilation=d, groups=g)

    def outer(impl):
        def inner(x_, w_):
            return jnp.sum(jnp.tanh(fastconv.conv2d(x_, w_, impl=impl, **kw)) ** 2)

        def f(x_, w_):
            gx, gw = jax.grad(inner, argnums=(0, 1))(x_, w_)
            return jnp.sum(gx ** 2) + jnp.sum(jnp.sin(gw))
        return jax.grad(f, argnums=(0, 1))(x, w)
    for a, b in zip(outer("matmul"), outer("xla")):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_matmul_conv_vmapped_kernel_and_input():
    """The supernet edge form: one input, a batch of kernels (vmap), and both batched."""
    x, w = _data(3, 1, 3, 4)
    ws = jnp.stack([w, 2 * w, -w])
    xs = jnp.stack([x, x + 1, x * 0.5])

    def f(impl, in_axes):
        def one(x_, w_):
            return jnp.sum(jnp.cos(fastconv.conv2d(x_, w_, padding=1, impl=impl)))
        return jax.grad(lambda a, b: jax.vmap(one, in_axes)(a, b).sum(), argnums=(0, 1))
    for xin, ax in ((x, (None, 0)), (xs, (0, 0))):
        for a, b in zip(f("matmul", ax)(xin, ws), f("xla", ax)(xin, ws)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)  # sums of ~50 terms ~10


def test_matmul_conv_bf16_kernel_grad_accumulates_in_f32():
    x, w = _data(3, 1, 3, 4)
    xb, wb = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
    gw = jax.grad(lambda w_: jnp.sum(fastconv.conv2d(xb, w_, padding=1, impl="matmul")
                                     .astype(jnp.float32)))(wb)
    ref = jax.grad(lambda w_: jnp.sum(fastconv.conv2d(x, w_, padding=1)))(w)
    assert gw.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(gw, np.float32), ref, rtol=2e-2, atol=5e-2)


def test_conv_impl_switch_and_validation(monkeypatch):
    # the platform default comes from the table (BENCHMARKS.md's rule); "auto" resolves it
    assert fastconv.default_conv_impl("gpu") == fastconv.default_conv_impl("tpu") == "xla"
    assert fastconv.default_conv_impl("no-such-backend") == "xla"
    default = fastconv.default_conv_impl()
    assert layers.get_conv_impl() == default
    monkeypatch.setitem(fastconv.DEFAULT_CONV_IMPL, jax.default_backend(), "matmul")
    assert layers.get_conv_impl() == "matmul" and cells_fast.get_fused()
    monkeypatch.setitem(fastconv.DEFAULT_CONV_IMPL, jax.default_backend(), "xla")
    assert layers.get_conv_impl() == "xla" and not cells_fast.get_fused()
    default = fastconv.default_conv_impl()
    with layers.conv_impl("matmul"):
        assert layers.get_conv_impl() == "matmul"
        assert isinstance(layers.conv(4, 3), fastconv.Conv)
    assert layers.get_conv_impl() == default
    with layers.conv_impl("xla"):
        assert layers.get_conv_impl() == "xla"
        assert type(layers.conv(4, 3)).__name__ == "Conv" and not isinstance(
            layers.conv(4, 3), fastconv.Conv)
        with layers.conv_impl("auto"):
            assert layers.get_conv_impl() == default
        assert layers.get_conv_impl() == "xla"
    with pytest.raises(ValueError, match="unknown convolution implementation 'cudnn'"):
        layers.set_conv_impl("cudnn")
    with pytest.raises(ValueError, match="groups"):
        fastconv.conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 2, 4)), groups=1)
    assert layers.get_conv_impl() == default


def test_matmul_supernet_same_params_and_function():
    """NB201 supernet under both implementations: the same parameter tree and initial
    values, the same logits and gradients (fp32 tolerance)."""
    net = cells.NB201Supernet(C=4, N=1)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 16, 16, 3)), jnp.float32)
    w = jax.nn.softmax(jnp.asarray(np.random.default_rng(1).normal(size=(6, 5)), jnp.float32))
    out = {}
    for impl in ("xla", "matmul"):
        with layers.conv_impl(impl):
            fastest = layers.compiler_options("fastest")
            v = jax.jit(net.init).lower(jax.random.key(0), x, w).compile(
                compiler_options=fastest)(jax.random.key(0), x, w)

            def loss(p, w_):
                y, _ = net.apply({**v, "params": p}, x, w_, mutable=["batch_stats"])
                return jnp.sum(jax.nn.log_softmax(y)[:, 0])
            grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(v["params"], w)
            grad = grad.compile(compiler_options=fastest)
            out[impl] = (v["params"], grad(v["params"], w))
    pa, pb = out["xla"][0], out["matmul"][0]
    assert jax.tree_util.tree_structure(pa) == jax.tree_util.tree_structure(pb)
    for a, b in zip(jax.tree_util.tree_leaves(pa), jax.tree_util.tree_leaves(pb)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree_util.tree_leaves(out["xla"][1]),
                    jax.tree_util.tree_leaves(out["matmul"][1])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_conv_impl_env_var():
    code = "from jnas import layers; print(layers.get_conv_impl())"
    env = {**os.environ, "JNAS_CONV_IMPL": "matmul", "JAX_PLATFORMS": "cpu"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "matmul", p.stderr
    p = subprocess.run([sys.executable, "-c", code], env={**env, "JNAS_CONV_IMPL": "xla"},
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "xla", p.stderr
    p = subprocess.run([sys.executable, "-c", code], env={**env, "JNAS_CONV_IMPL": "fft"},
                       capture_output=True, text=True)
    assert p.returncode != 0 and "JNAS_CONV_IMPL" in p.stderr and "'fft'" in p.stderr


@pytest.mark.parametrize("n", [1, 2, 4])
def test_matmul_conv_batch_chunks_same_function(n, monkeypatch):
    """Batch chunks (set_batch_chunks) of the forward and input-gradient convolutions give
    the unsplit values and gradients; a batch of 6 with 4 chunks runs 3 (the largest divisor),
    i.e. the lowered forward has that many convolutions (the 16-image minimum chunk is set
    to 1 image here)."""
    monkeypatch.setattr(fastconv, "_MIN_CHUNK_IMAGES", 1)
    r = np.random.default_rng(3)
    x = jnp.asarray(r.normal(size=(6, 5, 5, 3)), jnp.float32)
    w = jnp.asarray(r.normal(size=(3, 3, 3, 4)), jnp.float32)
    ct = jnp.asarray(r.normal(size=(6, 5, 5, 4)), jnp.float32)

    def loss(x_, w_):
        return jnp.sum(fastconv.conv2d(x_, w_, padding=1, impl="matmul") * ct)
    prev = fastconv.get_batch_chunks()
    try:
        fastconv.set_batch_chunks(1)
        y1, g1 = fastconv.conv2d(x, w, padding=1, impl="matmul"), jax.grad(loss, (0, 1))(x, w)
        fastconv.set_batch_chunks(n)
        assert fastconv.get_batch_chunks() == n
        fwd = jax.jit(lambda x_, w_: fastconv.conv2d(x_, w_, padding=1, impl="matmul"))
        assert fwd.lower(x, w).as_text().count("stablehlo.convolution") == {1: 1, 2: 2, 4: 3}[n]
        y, g = fwd(x, w), jax.grad(loss, (0, 1))(x, w)
    finally:
        fastconv.set_batch_chunks(prev)
    np.testing.assert_allclose(y, y1, **TOL)
    for a, b in zip(g, g1):
        np.testing.assert_allclose(a, b, **TOL)


def test_batch_chunks_setting_and_env():
    prev = fastconv.get_batch_chunks()
    fastconv.set_batch_chunks(None)
    assert fastconv.get_batch_chunks() == fastconv.default_batch_chunks()
    assert 1 <= fastconv.default_batch_chunks() <= 4
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="positive integer"):
            fastconv.set_batch_chunks(bad)
    fastconv.set_batch_chunks(4)
    x, w = jnp.zeros((40, 4, 4, 2)), jnp.zeros((3, 3, 2, 2))
    fwd = jax.jit(lambda x_: fastconv.conv2d(x_, w, padding=1, impl="matmul"))
    assert fwd.lower(x).as_text().count("stablehlo.convolution") == 2  # 2 x 20 images
    assert fwd.lower(x[:8]).as_text().count("stablehlo.convolution") == 1  # < 2 x 16
    fastconv.set_batch_chunks(prev)
    code = "from jnas import fastconv; print(fastconv.get_batch_chunks())"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JNAS_CONV_BATCH_CHUNKS": "3"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "3", p.stderr
    p = subprocess.run([sys.executable, "-c", code], env={**env, "JNAS_CONV_BATCH_CHUNKS": "x"},
                       capture_output=True, text=True)
    assert p.returncode != 0 and "JNAS_CONV_BATCH_CHUNKS" in p.stderr
