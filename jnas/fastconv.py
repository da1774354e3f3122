"""2-D convolutions with matmul gradients (a CPU speed option), and the switch that selects them.

XLA-CPU lowers the kernel-gradient convolution of the supernets' edge convs to a slow form
(BENCHMARKS.md: ~80 % of a C=16 NB201 step; 4-12x slower than the forward convolution),
while its forward and input-gradient convolutions are fast. :func:`conv2d` with
``impl="matmul"`` is the same function as :func:`jax.lax.conv_general_dilated` (NHWC input,
HWIO kernel, symmetric padding, stride, kernel dilation, feature groups) with a
``jax.custom_vjp``: for an ungrouped kernel the forward and the input gradient are XLA's
convolutions (at stride 1 the input gradient convolves with an explicitly flipped HWIO
kernel, :func:`_input_grad_conv`), and the kernel gradient is the im2col patches (the
``k*k`` shifted, strided slices of the padded input) contracted with the output cotangent
in float32, summed over batch chunks (``lax.scan``) whose patch buffer stays in cache.
Grouped and depthwise kernels use im2col for all three (an ``einsum`` with the kernel, a
multiply-add per tap for depthwise; the input gradient added back at the patch places,
col2im). A 1x1, stride-1 ungrouped kernel is one matmul whose kernel gradient contracts the
input with the cotangent directly (:func:`pointwise_conv`; its autodiff transposed the
cotangent first, ~2x the time). The backward rules are made of differentiable ops, so
``grad`` of ``grad`` works (second-order DARTS); forward-mode (``jvp``) is not defined.

XLA-CPU runs each XNNPACK (YNN) convolution on one thread (a C=16 NB201 edge convolution:
CPU/wall 1.0 with a second core idle). Under ``"matmul"`` the ungrouped stride-1 forward and
input-gradient convolutions are therefore split into :func:`get_batch_chunks` equal batch
chunks, independent convolutions that XLA's thunk executor runs on different threads
(BENCHMARKS.md, twelfth session). Each image's convolution is unchanged, so the values are
the unsplit ones.

The implementation is chosen when a model is traced: :func:`set_conv_impl` (or the
environment variable ``JNAS_CONV_IMPL``, read at import) sets ``"xla"`` (plain
``flax.linen.Conv``), ``"matmul"`` or ``"auto"`` (the default: :func:`default_conv_impl`,
``xla`` on every platform for now; BENCHMARKS.md, seventh session). A function that was
already jitted keeps the implementation it was traced with.
"""
from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["CONV_IMPLS", "DEFAULT_CONV_IMPL", "set_conv_impl", "get_conv_impl",
           "default_conv_impl", "conv_impl", "set_batch_chunks", "get_batch_chunks",
           "batch_chunks", "default_batch_chunks", "conv2d", "pointwise_conv", "Conv"]

CONV_IMPLS: tuple[str, ...] = ("xla", "matmul")
_ENV = "JNAS_CONV_IMPL"
_CHUNKS_ENV = "JNAS_CONV_BATCH_CHUNKS"


def _check_impl(impl: str, where: str) -> str:
    if impl not in CONV_IMPLS:
        raise ValueError(f"unknown convolution implementation {impl!r} ({where}); "
                         f"use one of {', '.join(CONV_IMPLS)}")
    return impl


#: the default per backend, by the rule of BENCHMARKS.md (seventh session, written before
#: the runs): ``matmul`` on CPU once it is faster than ``xla`` at the test size and at the
#: paper's in one run *and* the test-size compile is within 10 CPU-s; ``xla`` on GPU/TPU.
#: CPU stays ``xla``: the step-time part held, the compile part could not be verified on
#: the loaded machine (every variant, the old default too, measured ~2x its quiet figure).
DEFAULT_CONV_IMPL: dict[str, str] = {"cpu": "xla", "gpu": "xla", "tpu": "xla"}


def default_conv_impl(backend: str | None = None) -> str:
    """The default convolution implementation of ``backend`` (``jax.default_backend()``
    if None): :data:`DEFAULT_CONV_IMPL`, ``"xla"`` for an unlisted backend."""
    return DEFAULT_CONV_IMPL.get(backend or jax.default_backend(), "xla")


def _from_env() -> str | None:
    v = os.environ.get(_ENV, "").strip().lower()
    return None if v in ("", "auto") else _check_impl(v, f"environment variable {_ENV}")


_impl: str | None = _from_env()  # None: default_conv_impl(), resolved when first traced


def set_conv_impl(impl: str | None) -> None:
    """Select the convolution of :func:`jnas.layers.conv` for models traced from now on:
    ``"xla"`` (``flax.linen.Conv``), ``"matmul"`` (:func:`conv2d`: XLA's forward and
    input-gradient convolutions, matmul kernel gradients; faster on CPU) or ``None`` /
    ``"auto"`` (:func:`default_conv_impl`, the default). Raises ``ValueError`` for
    another name."""
    global _impl
    _impl = None if impl in (None, "auto") else _check_impl(impl, "set_conv_impl")


def get_conv_impl() -> str:
    """The convolution implementation models traced now use (``"xla"`` or ``"matmul"``):
    the one set, else :func:`default_conv_impl` of the default backend."""
    return default_conv_impl() if _impl is None else _impl


@contextlib.contextmanager
def conv_impl(impl: str) -> Iterator[None]:
    """Context manager: :func:`set_conv_impl` inside the block, the previous choice after."""
    prev = _impl  # None (auto) stays None
    set_conv_impl(impl)
    try:
        yield
    finally:
        set_conv_impl(prev)


def default_batch_chunks() -> int:
    """The default number of batch chunks of a ``"matmul"`` convolution: the CPU count,
    at most 4 (2 and 4 chunks tied on the 2-core machine; BENCHMARKS.md, twelfth session)."""
    return max(1, min(4, os.cpu_count() or 1))


def _chunks_from_env() -> int | None:
    v = os.environ.get(_CHUNKS_ENV, "").strip().lower()
    if v in ("", "auto"):
        return None
    if not v.isdigit() or int(v) < 1:
        raise ValueError(f"environment variable {_CHUNKS_ENV}={v!r}: use a positive integer "
                         "or 'auto'")
    return int(v)


_chunks: int | None = _chunks_from_env()  # None: default_batch_chunks()


def set_batch_chunks(n: int | None) -> None:
    """Split the forward and input-gradient convolutions of ``"matmul"`` into ``n`` batch
    chunks in models traced from now on (``1``: unsplit; ``None``: :func:`default_batch_chunks`;
    also ``JNAS_CONV_BATCH_CHUNKS``). Chunks have at least 16 images, and a batch that
    the count does not divide uses its largest divisor below it (a batch of 64 and ``n=4``:
    4 chunks; a batch of 8: unsplit). Raises ``ValueError`` for ``n < 1``."""
    global _chunks
    if n is not None and (int(n) != n or n < 1):
        raise ValueError(f"set_batch_chunks: n must be a positive integer or None, got {n!r}")
    _chunks = None if n is None else int(n)


def get_batch_chunks() -> int:
    """The number of batch chunks ``"matmul"`` convolutions traced now use."""
    return default_batch_chunks() if _chunks is None else _chunks


@contextlib.contextmanager
def batch_chunks(n: int | None) -> Iterator[None]:
    """Context manager: :func:`set_batch_chunks` inside the block, the previous choice after."""
    prev = _chunks
    set_batch_chunks(n)
    try:
        yield
    finally:
        set_batch_chunks(prev)


# ----------------------------------------------------------------------------- the function
_MIN_CHUNK_IMAGES = 16  # smaller chunks: the test-size step (batch 8) got slower (BENCHMARKS.md)


def _chunked_conv(x, k, stride, padding, dilation):
    """XLA's ungrouped convolution as :func:`get_batch_chunks` independent batch chunks
    (concatenated; each at least ``_MIN_CHUNK_IMAGES`` images), so that XLA-CPU can run
    them on different threads."""
    b = x.shape[0]
    most = min(get_batch_chunks(), max(1, b // _MIN_CHUNK_IMAGES))
    n = max(d for d in range(1, most + 1) if b % d == 0)
    if n == 1:
        return _xla_conv(x, k, stride, padding, dilation, 1)
    return jnp.concatenate([_xla_conv(a, k, stride, padding, dilation, 1)
                            for a in jnp.split(x, n, 0)], 0)


def _xla_conv(x, k, stride, padding, dilation, groups):
    return jax.lax.conv_general_dilated(
        x, k, (stride, stride), ((padding, padding), (padding, padding)),
        rhs_dilation=(dilation, dilation), dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups)


def _taps(x, kh, kw, stride, padding, dilation, ho, wo):
    """The ``kh*kw`` tap views ``[B, Ho, Wo, C]`` (row-major tap order): the input pixel
    under each kernel tap of each output pixel."""
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    taps = []
    for i in range(kh):
        for j in range(kw):
            r, c = i * dilation, j * dilation
            taps.append(jax.lax.slice(xp, (0, r, c, 0),
                                      (xp.shape[0], r + (ho - 1) * stride + 1,
                                       c + (wo - 1) * stride + 1, xp.shape[3]),
                                      (1, stride, stride, 1)))
    return taps


def _patches(x, kh, kw, stride, padding, dilation, ho, wo):
    """[B, Ho, Wo, kh*kw, C]: the input pixel under each kernel tap of each output pixel."""
    return jnp.stack(_taps(x, kh, kw, stride, padding, dilation, ho, wo), axis=3)


def _depthwise_taps() -> bool:
    """Whether depthwise convolutions run tap by tap, without a ``kh*kw`` patch buffer
    (``JNAS_DEPTHWISE_TAPS=1``; a prototype for the DARTS-space memory)."""
    return os.environ.get("JNAS_DEPTHWISE_TAPS") == "1"


def _out_size(n: int, k: int, stride: int, padding: int, dilation: int) -> int:
    return (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def _forward(x, k, stride, padding, dilation, groups):
    """The convolution as an im2col matmul."""
    kh, kw, cg, cout = k.shape
    b, h, w, _ = x.shape
    ho, wo = (_out_size(h, kh, stride, padding, dilation),
              _out_size(w, kw, stride, padding, dilation))
    if cg == 1 and cout == groups and _depthwise_taps():
        kt = k.reshape(kh * kw, cout)
        ts = _taps(x, kh, kw, stride, padding, dilation, ho, wo)
        return sum(t * kt[i] for i, t in enumerate(ts))
    p = _patches(x, kh, kw, stride, padding, dilation, ho, wo)
    n, t, og = b * ho * wo, kh * kw, cout // groups
    if groups == 1:
        y = jnp.einsum("ntc,tco->no", p.reshape(n, t, cg), k.reshape(t, cg, cout))
    elif cg == 1 and og == 1:  # depthwise: a multiply-add per tap
        y = (p.reshape(n, t, groups) * k.reshape(t, groups)[None]).sum(1)
    else:
        y = jnp.einsum("ntgc,tcgo->ngo", p.reshape(n, t, groups, cg),
                       k.reshape(t, cg, groups, og))
    return y.reshape(b, ho, wo, cout)


def _input_grad(g, k, xshape, stride, padding, dilation, groups):
    """d loss / d input: the cotangent of each patch (a matmul with the kernel), then the
    patches added back at their places (col2im: one zero-padded, strided copy per tap)."""
    kh, kw, cg, cout = k.shape
    b, ho, wo, _ = g.shape
    n, t, og = b * ho * wo, kh * kw, cout // groups
    taps = cg == 1 and og == 1 and _depthwise_taps()
    if taps:  # each tap's cotangent is g * k[tap], formed inside the pad below
        dp = None
    elif groups == 1:
        dp = jnp.einsum("no,tco->ntc", g.reshape(n, cout), k.reshape(t, cg, cout))
    elif cg == 1 and og == 1:
        dp = g.reshape(n, 1, groups) * k.reshape(t, groups)[None]
    else:
        dp = jnp.einsum("ngo,tcgo->ntgc", g.reshape(n, groups, og),
                        k.reshape(t, cg, groups, og))
    if dp is not None:
        dp = dp.reshape(b, ho, wo, t, cg * groups)
    _, h, w, _ = xshape
    hp, wp = h + 2 * padding, w + 2 * padding
    zero = jnp.zeros((), g.dtype)
    out = None
    for i in range(kh):
        for j in range(kw):
            r, c = i * dilation, j * dilation
            cfg = ((0, 0, 0), (r, hp - r - (ho - 1) * stride - 1, stride - 1),
                   (c, wp - c - (wo - 1) * stride - 1, stride - 1), (0, 0, 0))
            ct = (g * k.reshape(t, groups)[i * kw + j].astype(g.dtype) if taps
                  else dp[:, :, :, i * kw + j, :])
            z = jax.lax.pad(ct, zero, cfg)
            out = z if out is None else out + z
    return out[:, padding:padding + h, padding:padding + w, :]


_CHUNK_BYTES = 4 << 20  # patch buffer per batch chunk of the kernel gradient (BENCHMARKS.md)


def _batch_chunks(b: int, bytes_per_image: int) -> int:
    """The number of equal batch chunks (a divisor of ``b``) whose patch buffers are about
    :data:`_CHUNK_BYTES` each (1 when a single image's is larger, and when the whole
    buffer is under 4x that: small graphs compile faster without the loop)."""
    if b * bytes_per_image <= 4 * _CHUNK_BYTES:
        return 1
    want = max(1, _CHUNK_BYTES // max(1, bytes_per_image))
    per = max(d for d in range(1, b + 1) if b % d == 0 and d <= want)
    return b // per


def _kernel_grad(x, g, kshape, stride, padding, dilation, groups):
    """d loss / d kernel (HWIO): the patches contracted with the output cotangent; for an
    ungrouped kernel summed over batch chunks (``lax.scan``) whose patch buffer stays in
    cache, which is ~2x faster on CPU than one patch buffer for the whole batch."""
    kh, kw, cg, cout = kshape
    b, ho, wo, _ = g.shape
    if groups == 1 and b > 1:
        nb = _batch_chunks(b, ho * wo * kh * kw * cg * x.dtype.itemsize)
        if nb > 1:
            xs = x.reshape((nb, b // nb) + x.shape[1:])
            gs = g.reshape((nb, b // nb) + g.shape[1:])

            def body(acc, xg):
                return acc + _kernel_grad(xg[0], xg[1], kshape, stride, padding, dilation,
                                          1).astype(jnp.float32), None
            acc, _ = jax.lax.scan(body, jnp.zeros(kshape, jnp.float32), (xs, gs))
            return acc.astype(x.dtype)
    n, t, og = b * ho * wo, kh * kw, cout // groups
    if cg == 1 and og == 1 and _depthwise_taps():  # one multiply-reduce per tap view
        gf = g.astype(jnp.float32)
        dk = jnp.stack([(v.astype(jnp.float32) * gf).sum((0, 1, 2))
                        for v in _taps(x, kh, kw, stride, padding, dilation, ho, wo)])
        return dk.reshape(kh, kw, 1, cout).astype(x.dtype)
    p = _patches(x, kh, kw, stride, padding, dilation, ho, wo)  # [B, Ho, Wo, T, Cin]
    if groups == 1:  # [Cout, T*Cin] = g^T patches: the patches stay in their layout
        dk = jax.lax.dot_general(g.reshape(n, cout), p.reshape(n, t * cg),
                                 (((0,), (0,)), ((), ())),
                                 preferred_element_type=jnp.float32).T.reshape(t, cg, cout)
    elif cg == 1 and og == 1:  # depthwise: a multiply-reduce per tap
        dk = (p.reshape(n, t, groups).astype(jnp.float32)
              * g.reshape(n, 1, groups).astype(jnp.float32)).sum(0)[:, None, :]
    else:
        dk = jnp.einsum("ntgc,ngo->tcgo", p.reshape(n, t, groups, cg),
                        g.reshape(n, groups, og), preferred_element_type=jnp.float32)
    return dk.reshape(kh, kw, cg, cout).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _matmul_conv(x, k, stride, padding, dilation, groups):
    if groups == 1:  # XLA-CPU's forward convolution is fast (~10x the im2col einsum)
        return _chunked_conv(x, k, stride, padding, dilation)
    return _forward(x, k, stride, padding, dilation, groups)


@jax.custom_vjp
def pointwise_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A 1x1, stride-1, unpadded, ungrouped convolution (NHWC input, ``[1, 1, Cin, Cout]``
    kernel) as one matmul, with a backward of two matmuls: the input gradient
    ``g @ k^T`` and the kernel gradient ``x^T g`` contracted over the batch and pixel axes
    directly, in float32 (XLA-CPU transposed the cotangent for einsum's autodiff)."""
    return jnp.einsum("bhwc,co->bhwo", x, kernel[0, 0])


def _pointwise_fwd(x, k):
    return pointwise_conv(x, k), (x, k)


def _pointwise_bwd(res, g):
    x, k = res
    dx = jnp.einsum("bhwo,co->bhwc", g, k[0, 0].astype(g.dtype))
    n = x.shape[0] * x.shape[1] * x.shape[2]
    dk = jax.lax.dot_general(x.reshape(n, x.shape[3]), g.reshape(n, g.shape[3]),
                             (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
    return dx.astype(x.dtype), dk.reshape(k.shape).astype(k.dtype)


pointwise_conv.defvjp(_pointwise_fwd, _pointwise_bwd)


def _matmul_conv_fwd(x, k, stride, padding, dilation, groups):
    return _matmul_conv(x, k, stride, padding, dilation, groups), (x, k)


def _input_grad_conv(g, k, padding, dilation):
    """d loss / d input of a stride-1 ungrouped convolution: a forward convolution of the
    cotangent with the flipped kernel whose in/out axes are swapped, materialised in HWIO
    first (``optimization_barrier``). Left to itself XLA folds the flip and swap into an
    ``01oi`` kernel layout, for which XLA-CPU runs a slow convolution (6-8x the forward
    time in a C=16 NB201 step; BENCHMARKS.md, eighth session); HWIO runs as fast as the
    forward."""
    kh = k.shape[0]
    kt = jax.lax.optimization_barrier(jnp.flip(k, (0, 1)).transpose(0, 1, 3, 2))
    return _chunked_conv(g, kt, 1, dilation * (kh - 1) - padding, dilation)


def _matmul_conv_bwd(stride, padding, dilation, groups, res, g):
    x, k = res
    if groups == 1 and stride == 1:
        dx = _input_grad_conv(g, k, padding, dilation)
    elif groups == 1:  # strided: XLA's own input gradient (an lhs-dilated convolution)
        dx = jax.vjp(lambda x_: _xla_conv(x_, k, stride, padding, dilation, 1), x)[1](g)[0]
    else:
        dx = _input_grad(g, k, x.shape, stride, padding, dilation, groups)
    return dx, _kernel_grad(x, g, k.shape, stride, padding, dilation, groups)


_matmul_conv.defvjp(_matmul_conv_fwd, _matmul_conv_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, *, stride: int = 1, padding: int = 0,
           dilation: int = 1, groups: int = 1, impl: str | None = None) -> jax.Array:
    """2-D convolution of an NHWC batch with an HWIO kernel (``[kh, kw, Cin/groups, Cout]``),
    ``padding`` zeros on each side, ``stride``, kernel ``dilation`` and ``groups`` feature
    groups: ``lax.conv_general_dilated``'s function. ``impl``: ``"xla"`` (XLA's convolution
    and its autodiff), ``"matmul"`` (im2col matmuls and a matmul backward; see the module
    docstring) or ``None`` (:func:`get_conv_impl`)."""
    impl = _check_impl(get_conv_impl() if impl is None else impl, "conv2d")
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f"conv2d expects NHWC input and HWIO kernel, got shapes {x.shape}, "
                         f"{kernel.shape}")
    if x.shape[-1] != kernel.shape[2] * groups or kernel.shape[3] % groups:
        raise ValueError(f"conv2d: input channels {x.shape[-1]} and kernel {kernel.shape} do "
                         f"not fit groups={groups}")
    args = (int(stride), int(padding), int(dilation), int(groups))
    if impl == "xla":
        return _xla_conv(x, kernel, *args)
    if kernel.shape[:2] == (1, 1) and args[:2] == (1, 0) and args[3] == 1:
        return pointwise_conv(x, kernel)
    return _matmul_conv(x, kernel, *args)


class Conv(nn.Module):
    """``flax.linen.Conv`` with square kernels and symmetric padding, computed by
    :func:`conv2d` (``impl="matmul"``): the same parameter (``kernel``, HWIO, float32 by
    ``param_dtype``; optional ``bias``), initialiser, dtype promotion and automatic name
    (``Conv_<i>``: hence the class name), so parameter trees and initial values equal
    ``nn.Conv``'s."""

    features: int
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    use_bias: bool = False
    kernel_init: Any = nn.initializers.lecun_normal()
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cin = x.shape[-1]
        k = self.param("kernel", self.kernel_init,
                       (self.kernel, self.kernel, cin // self.groups, self.features),
                       self.param_dtype)
        b = (self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
             if self.use_bias else None)
        x, k, b = nn.dtypes.promote_dtype(x, k, b, dtype=self.dtype)
        y = conv2d(x, k, stride=self.stride, padding=self.padding, dilation=self.dilation,
                   groups=self.groups, impl="matmul")
        return y if b is None else y + b
