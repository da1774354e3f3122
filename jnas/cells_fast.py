"""The NAS-Bench-201 supernet cell with one convolution per source node and op (a speed form).

In an NB201 search cell (Dong & Yang, ICLR 2020; xautodl ``NAS201SearchCell``) every edge
leaving node ``i`` applies ``ReLU -> Conv -> BN`` to the same input ``x_i``. The edges' kernels
``[E, k, k, C, C]`` concatenated along the output channels give one convolution with ``E*C``
outputs: the input (and, for the matmul convolution, the im2col patch buffer) is read once
instead of ``E`` times, no edge axis has to be moved through the layout, and one kernel
gradient covers every edge. The supernet's cell BN is ``affine=False,
track_running_stats=False`` (the reference search setting), i.e. per-channel training-mode
normalisation with no parameters, so BN over the concatenated channels is the per-edge BN
exactly. Node 0 therefore runs one 3x3 and one 1x1 convolution for its three edges, node 1
one of each for two, node 2 one of each for one.

:class:`NB201FusedSuperCell` has the parameters of :class:`jnas.cells._NB201SuperCell`
(``edges_from_<i>/conv_<k>x<k>/kernel`` stacked on the edge axis by ``nn.vmap``, created in
the same order under the same names, hence the same initial values), the same op-mask
semantics and the same summation order; only the convolution/BN evaluation differs (same
function, float rounding aside: tests/test_fastconv.py). ``jnas.cells.NB201Supernet`` uses
it whenever its cell BN is the non-affine, untracked one and :func:`get_fused` is True. By
default that follows the convolution implementation (:func:`jnas.fastconv.get_conv_impl`):
fused with ``"matmul"`` (where it was ~1.4x faster than the per-edge form at C=16), the
earlier form, an ``nn.vmap`` of per-edge convolutions, with ``"xla"`` (bit-identical to
earlier releases; XLA's kernel-gradient convolution is slow either way on CPU).
:func:`set_fused` / the context manager :func:`fused` / the environment variable
``JNAS_FUSED_CELLS=1|0`` override it. Like the convolution implementation, the choice is
read when a model is traced.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jnas.fastconv import conv2d, get_conv_impl
from jnas.layers import avg_pool, batch_norm_train, conv_init, weighted
from jnas.spaces import NB201_EDGES

__all__ = ["NB201FusedSuperCell", "fused_relu_conv_bn", "set_fused", "get_fused", "fused",
           "edges_from", "op_mask_array", "param_free_sum"]

def _env() -> bool | None:
    v = os.environ.get("JNAS_FUSED_CELLS", "").strip().lower()
    return None if v in ("", "auto") else v not in ("0", "false", "no")


_fused: bool | None = _env()  # None: follow the convolution implementation


def set_fused(on: bool | None) -> None:
    """Use :class:`NB201FusedSuperCell` in NB201 supernets traced from now on (``True``),
    the per-edge ``nn.vmap`` form of :mod:`jnas.cells` (``False``), or ``None``: the
    default, fused exactly when :func:`jnas.fastconv.get_conv_impl` is ``"matmul"``."""
    global _fused
    _fused = None if on is None else bool(on)


def get_fused() -> bool:
    """Whether NB201 supernets traced now use the fused cell (:func:`set_fused`)."""
    return get_conv_impl() == "matmul" if _fused is None else _fused


@contextlib.contextmanager
def fused(on: bool | None) -> Iterator[None]:
    """Context manager: :func:`set_fused` inside the block, the previous choice after."""
    prev = _fused
    set_fused(on)
    try:
        yield
    finally:
        set_fused(prev)


class _Kernel(nn.Module):
    """One conv kernel parameter (``kernel``, HWIO, float32), as ``flax.linen.Conv`` makes it."""
    features: int
    k: int

    @nn.compact
    def __call__(self, cin: int) -> jax.Array:
        return self.param("kernel", conv_init, (self.k, self.k, cin, self.features),
                          jnp.float32)


class _EdgeKernels(nn.Module):
    """The kernels of one NB201 mixed edge (``conv_1x1``, ``conv_3x3``), by the names and in
    the order :class:`jnas.cells.NB201MixedOp` creates them."""
    features: int
    cin: int
    use_1x1: bool
    use_3x3: bool

    @nn.compact
    def __call__(self, w: jax.Array) -> tuple[jax.Array | None, jax.Array | None]:
        del w  # mapped only to give the vmap its edge axis
        k1 = _Kernel(self.features, 1, name="conv_1x1")(self.cin) if self.use_1x1 else None
        k3 = _Kernel(self.features, 3, name="conv_3x3")(self.cin) if self.use_3x3 else None
        return k1, k3


def fused_relu_conv_bn(h: jax.Array, kernels: jax.Array, eps: float = 1e-5,
                       impl: str | None = None) -> jax.Array:
    """``BN(conv(h, kernels[e]))`` for every edge ``e`` as ONE convolution: ``h`` NHWC
    (already ReLU-ed), ``kernels`` ``[E, k, k, Cin, C]``; returns ``[B, H, W, E*C]`` (edge
    ``e`` in channels ``e*C .. e*C+C-1``), normalised per channel with batch statistics and
    no affine parameters (NB201 search BN). ``impl``: :func:`jnas.fastconv.conv2d`'s."""
    e, k, _, cin, c = kernels.shape
    kk = jnp.moveaxis(kernels, 0, 3).reshape(k, k, cin, e * c).astype(h.dtype)
    y = conv2d(h, kk, padding=(k - 1) // 2, impl=impl)
    ones, zeros = jnp.ones((e * c,), jnp.float32), jnp.zeros((e * c,), jnp.float32)
    return batch_norm_train(y, ones, zeros, eps)[0]



def edges_from(src: int) -> list[int]:
    """Indices (``NB201_EDGES`` order) of the NB201 cell edges leaving node ``src``."""
    return [e for e, (_, j) in enumerate(NB201_EDGES) if j == src]


def op_mask_array(op_mask: Any) -> np.ndarray:
    """A static NB201 op mask (``None`` = every op, else 6x5 of 0/1) as a bool array; raises
    ``ValueError`` naming the shape otherwise."""
    mask = np.ones((6, 5), bool) if op_mask is None else np.asarray(op_mask, bool)
    if mask.shape != (6, 5):
        raise ValueError(f"op_mask must be 6x5 (edges x ops), got shape {mask.shape}")
    return mask


def param_free_sum(w_edge: jax.Array, mask_edge: np.ndarray, h: jax.Array,
                   pooled: jax.Array | None) -> Any:
    """One edge's weighted skip-connect and avg-pool terms (NB201 op order; ``none`` adds
    nothing), each only where the static mask keeps it; ``0.0`` when neither is kept."""
    y: Any = 0.0
    if mask_edge[1]:
        y = y + weighted(w_edge[1], h)
    if pooled is not None and mask_edge[4]:
        y = y + weighted(w_edge[4], pooled)
    return y

class NB201FusedSuperCell(nn.Module):
    """An NB201 search cell (``(x, w[6, 5]) -> (node 3, None)``, the ``nn.scan`` body of
    :class:`jnas.cells.NB201Supernet`) with one convolution per source node and kernel size
    (module docstring). Only for the non-affine, untracked cell BN."""

    C: int
    train: bool = True
    op_mask: Any = None  # static tuple[6][5] of 0/1 or None
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> tuple[jax.Array, None]:
        mask = op_mask_array(self.op_mask)
        nodes = [x]
        acc: dict[int, Any] = {1: 0.0, 2: 0.0, 3: 0.0}
        for src in range(3):
            h = nodes[src]
            edges = edges_from(src)
            m = mask[edges]
            we = w[np.asarray(edges)] * m  # statically masked (edge, op) pairs weigh 0
            use1, use3 = bool(m[:, 2].any()), bool(m[:, 3].any())
            y1 = y3 = None
            if use1 or use3:
                vm = nn.vmap(_EdgeKernels, in_axes=0, out_axes=0,
                             variable_axes={"params": 0, "batch_stats": 0},
                             split_rngs={"params": True})
                k1, k3 = vm(self.C, h.shape[-1], use1, use3, name=f"edges_from_{src}")(we)
                r = nn.relu(h)
                if self.dtype is not None:
                    r = r.astype(self.dtype)
                # one split (its transpose is one concatenate), not E channel slices (E
                # zero-pads and adds of the full E*C cotangent in the backward)
                y1 = jnp.split(fused_relu_conv_bn(r, k1), len(edges), -1) if use1 else None
                y3 = jnp.split(fused_relu_conv_bn(r, k3), len(edges), -1) if use3 else None
            pooled = avg_pool(h) if m[:, 4].any() else None
            for k, e in enumerate(edges):
                to = NB201_EDGES[e][0]
                y = param_free_sum(we[k], m[k], h, pooled)
                learn = None
                for t, yy in ((2, y1), (3, y3)):
                    if yy is not None:
                        part = weighted(we[k, t], yy[k])
                        learn = part if learn is None else learn + part
                if learn is not None:
                    y = y + learn
                acc[to] = acc[to] + y
            nodes.append(acc[src + 1] if not isinstance(acc[src + 1], float)
                         else jnp.zeros_like(x))
        out = acc[3]
        if isinstance(out, float):
            out = jnp.zeros_like(x)
        return out, None
