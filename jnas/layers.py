"""Basic layers shared by every cell builder (flax.linen, NHWC), and compile/dtype options.

BatchNorm with a closed-form backward (:func:`batch_norm_train`: about half the XLA kernels
of its autodiff graph), PyTorch-initialised convolutions, the pools, ReLU-Conv-BN, the
NAS-Bench-201 ResNet reduction block (Dong & Yang, ICLR 2020), the float32 weighting of op
outputs under a mixed-precision compute dtype, and :func:`compiler_options` (XLA-CPU
options that halve supernet compile time; chosen by profiling, BENCHMARKS.md). Re-exported
by :mod:`jnas.cells`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jnas import fastconv
from jnas.fastconv import CONV_IMPLS, conv_impl, get_conv_impl, set_conv_impl

__all__ = ["nb201_macro", "conv_init", "batch_norm_train", "BatchNorm", "conv", "avg_pool",
           "max_pool", "weighted", "ReLUConvBN", "ResNetBasicBlock", "CPU_FAST_COMPILE",
           "CPU_FASTEST_COMPILE", "compiler_options", "compute_dtype", "set_conv_impl",
           "get_conv_impl", "conv_impl", "CONV_IMPLS"]

# PyTorch-style initialisers so that function (not only shape) matches the references.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


# ----------------------------------------------------------------------------- basic layers
@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array,
                     eps: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Training-mode batch norm over all axes but the last (Ioffe & Szegedy, ICML 2015).

    Returns ``(y, mean, var)``: ``y = (x - mean) / sqrt(var + eps) * scale + bias`` in
    ``x.dtype`` and the float32 batch mean / biased variance (statistics always in float32).
    The backward pass is the closed form ``dx = scale * rstd * (g - mean(g) - x̂ mean(g x̂))``
    (two reductions and one elementwise pass) instead of the autodiff graph of the forward
    (about twice as many XLA kernels: issue 8, CPU compile time); it is itself differentiable,
    so second-order DARTS can differentiate through it.
    """
    return _bn_fwd(x, scale, bias, eps)[0]


def _acc(dtype: Any) -> Any:
    # float32, or float64 for float64 inputs (exact tests under jax.enable_x64)
    return jnp.promote_types(dtype, jnp.float32)


def _bn_stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    xf = x.astype(_acc(x.dtype))
    axes = tuple(range(x.ndim - 1))
    mean = xf.mean(axis=axes)
    var = jnp.maximum((xf * xf).mean(axis=axes) - mean * mean, 0.0)
    return mean, var


def _bn_fwd(x, scale, bias, eps):
    mean, var = _bn_stats(x)
    rstd = jax.lax.rsqrt(var + eps)
    y = ((x.astype(_acc(x.dtype)) - mean) * (rstd * scale) + bias).astype(x.dtype)
    return (y, mean, var), (x, mean, rstd, scale)


def _bn_bwd(eps, res, cts):
    x, mean, rstd, scale = res
    g, g_mean, g_var = cts
    axes = tuple(range(x.ndim - 1))
    n = x.size // x.shape[-1]
    xc = x.astype(_acc(x.dtype)) - mean
    xhat = xc * rstd
    gf = g.astype(_acc(x.dtype))
    s_g = gf.sum(axis=axes)
    s_gx = (gf * xhat).sum(axis=axes)
    dx = (scale * rstd) * (gf - s_g / n - xhat * (s_gx / n))
    # cotangents of the returned statistics (zero unless a caller differentiates them)
    dx = dx + g_mean / n + xc * (2.0 * g_var / n)
    return dx.astype(x.dtype), s_gx, s_g


batch_norm_train.defvjp(_bn_fwd, _bn_bwd)


class BatchNorm(nn.Module):
    """Batch normalisation over N, H, W with PyTorch semantics (momentum 0.1, eps 1e-5).

    ``affine=False`` drops scale/bias; ``track_running_stats=False`` always normalises with
    the batch statistics and keeps no state (the NB201/DARTS search-supernet setting). Under
    ``jax.jit`` with a batch-sharded input the statistics are over the *global* batch.
    """

    features: int
    affine: bool = True
    track_running_stats: bool = True
    momentum: float = 0.1
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        f = self.features
        if x.shape[-1] != f:
            raise ValueError(f"BatchNorm expects {f} channels, got input shape {x.shape}")
        if self.track_running_stats:
            ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((f,), jnp.float32))
            ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((f,), jnp.float32))
        if self.affine:
            scale = self.param("scale", nn.initializers.ones, (f,), jnp.float32)
            bias = self.param("bias", nn.initializers.zeros, (f,), jnp.float32)
        else:
            scale, bias = jnp.ones((f,), jnp.float32), jnp.zeros((f,), jnp.float32)
        # statistics and normalisation in float32 whatever the compute dtype; the output is
        # cast back to the input dtype (bf16 mixed precision)
        if train or not self.track_running_stats:
            y, mean, var = batch_norm_train(x, scale, bias, self.eps)
            if self.track_running_stats and train and not self.is_initializing():
                n = x.size // f
                m = self.momentum
                ra_mean.value = (1 - m) * ra_mean.value + m * mean
                ra_var.value = (1 - m) * ra_var.value + m * var * (n / max(n - 1, 1))
            return y
        rstd = jax.lax.rsqrt(ra_var.value + self.eps)
        return ((x.astype(_acc(x.dtype)) - ra_mean.value) * (rstd * scale) + bias).astype(x.dtype)


def conv(features: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1,
         bias: bool = False, name: str | None = None, dtype: Any = None) -> nn.Module:
    """A PyTorch-padded (``(k-1)//2 * dilation`` each side) convolution, no bias by default.

    ``dtype``: compute dtype (``None``: the input's); the kernel is stored in float32. The
    module is ``flax.linen.Conv`` (:func:`get_conv_impl` ``"xla"``, the default), or
    :class:`jnas.fastconv.Conv` (same parameters, matmul kernel gradients: faster on CPU)
    after ``set_conv_impl("matmul")`` / ``JNAS_CONV_IMPL=matmul``."""
    p = (kernel - 1) // 2 * dilation
    if get_conv_impl() == "matmul":
        return fastconv.Conv(features, kernel, stride, p, dilation, groups, bias, conv_init,
                          dtype=dtype, name=name)
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=((p, p), (p, p)),
                   kernel_dilation=(dilation, dilation), feature_group_count=groups,
                   use_bias=bias, kernel_init=conv_init, name=name, dtype=dtype,
                   param_dtype=jnp.float32)


def avg_pool(x: jax.Array, window: int = 3, stride: int = 1, pad: int = 1) -> jax.Array:
    """Average pooling that ignores padding (PyTorch ``count_include_pad=False``).

    The divisor is a NumPy constant computed from the static shape; (``flax``'s
    ``count_include_pad=False`` pools a ones tensor of the full batch shape, which XLA
    constant-folds for seconds at every compile.)"""
    s = nn.pool(x, 0.0, jax.lax.add, (window, window), (stride, stride),
                ((pad, pad), (pad, pad)))
    ones = np.pad(np.ones(x.shape[1:3], np.float32), pad)
    win = np.lib.stride_tricks.sliding_window_view(ones, (window, window))
    cnt = win[::stride, ::stride].sum(axis=(-1, -2))
    return s / jnp.asarray(cnt[None, :, :, None], x.dtype)


def max_pool(x: jax.Array, window: int = 3, stride: int = 1, pad: int = 1) -> jax.Array:
    """Max pooling with -inf padding (PyTorch semantics)."""
    return nn.max_pool(x, (window, window), (stride, stride), ((pad, pad), (pad, pad)))


def weighted(w: jax.Array, y: jax.Array) -> jax.Array:
    """``w * y`` for an op weight ``w`` (scalar) and an op output ``y``, computed in float32 and
    returned in ``y.dtype``: under a bf16 compute dtype the weight's gradient
    ``sum(g * y)`` (a reduction over the whole activation) is then accumulated in float32
    (in bf16 it is off by tens of percent). A no-op change for float32."""
    a = _acc(y.dtype)
    return (jnp.asarray(w, a) * y.astype(a)).astype(y.dtype)


class ReLUConvBN(nn.Module):
    """ReLU -> Conv(k, stride, dilation, no bias) -> BN: NB201 ``nor_conv_kxk``."""

    features: int
    kernel: int
    stride: int = 1
    dilation: int = 1
    affine: bool = True
    track_running_stats: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = conv(self.features, self.kernel, self.stride, self.dilation,
                 dtype=self.dtype)(nn.relu(x))
        return BatchNorm(self.features, self.affine, self.track_running_stats)(x, train)


class ResNetBasicBlock(nn.Module):
    """NB201 reduction block: ReLUConvBN(3, /2) -> ReLUConvBN(3) + (AvgPool2 -> Conv1x1)."""

    features: int
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        a = ReLUConvBN(self.features, 3, 2, dtype=self.dtype)(x, train)
        b = ReLUConvBN(self.features, 3, 1, dtype=self.dtype)(a, train)
        r = nn.avg_pool(x, (2, 2), (2, 2), "VALID")
        r = conv(self.features, 1, dtype=self.dtype)(r)
        return r + b


from jnas.xla import CPU_FAST_COMPILE, CPU_FASTEST_COMPILE, compiler_options  # noqa: E402,F401


def compute_dtype(dtype: Any) -> Any:
    """Validate a compute dtype: ``None`` (float32), ``float32``, ``bfloat16`` or ``float16``
    (a name or a dtype; ``float64`` too under ``jax.enable_x64``, for exact gradient checks on
    CPU); returns the jnp dtype, raises ``ValueError`` otherwise."""
    if dtype is None:
        return jnp.float32
    try:
        d = jnp.dtype(dtype)
    except TypeError as e:
        raise ValueError(f"unknown compute dtype {dtype!r}; use 'float32' or 'bfloat16'") from e
    if d == jnp.dtype("float64") and jax.config.jax_enable_x64:
        return d
    if d not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        raise ValueError(f"compute dtype must be float32, bfloat16 or float16, got {d}")
    return d


def nb201_macro(x: jax.Array, C: int, N: int, num_classes: int, train: bool, dtype: Any,
                stage: Callable[[int, int, jax.Array], jax.Array]) -> jax.Array:
    """The NB201 macro skeleton inside a compact ``__call__`` (Dong & Yang, ICLR 2020, Fig. 1):
    stem (3x3 conv + BN), 3 stages with a ResNet reduction block before stages 1 and 2,
    ``stage(c, i, x)`` running stage ``i``'s ``N`` cells at width ``c``, then BN -> ReLU ->
    global average pool -> linear (pooling and classifier in at least float32)."""
    x = conv(C, 3, name="stem_conv", dtype=dtype)(x)
    x = BatchNorm(C, name="stem_bn")(x, train)
    for i in range(3):
        c = C * 2 ** i
        if i > 0:
            x = ResNetBasicBlock(c, dtype, name=f"reduce_{i}")(x, train)
        x = stage(c, i, x)
    x = nn.relu(BatchNorm(x.shape[-1], name="lastact_bn")(x, train))
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32)).mean(axis=(1, 2))
    return nn.Dense(num_classes, name="classifier")(x)

