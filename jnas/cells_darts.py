"""DARTS-space cells (Liu et al., ICLR 2019, arXiv 1806.09055): ops, mixed op, search
supernet (``DARTSSupernet``) and the discrete evaluation network (``DARTSNetwork``).

Layout NHWC. Edge order of a cell: for node i = 0..3, inputs j = 0..i+1 (14 edges); inputs 0
and 1 are the outputs of the two previous cells. Op order: ``DARTS_OPS``.

Compile-time design: the edges leaving one node share their input, so they run as one
``nn.vmap`` over edge parameters (XLA batches their convolutions into wider ones; on CPU the
input is first broadcast to the edges, see :data:`BROADCAST_EDGE_INPUTS`) and the
parameter-free ops (pools, identity) are computed once per source node. Op weights multiply
op outputs in float32 (:func:`jnas.cells.weighted`) under any compute ``dtype``. A run of
consecutive normal cells with one signature whose two inputs have the same shape is scanned with
``nn.scan`` (the 20-cell evaluation network scans cells 2-5, 8-12 and 15-19). In the 8-cell
search network no run of two exists (each stage's first normal cell takes input 0 through a
FactorizedReduce or from the 3C stem, and is followed by a reduction or a single plain
cell), so its 8 cells are traced one by one; the edge vmap keeps each cell body small.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jnas.layers import (BatchNorm, ReLUConvBN, avg_pool, compute_dtype, conv, max_pool,
                         weighted)
from jnas.spaces import DARTS, DARTS_OPS
from jnas.spaces_darts import node_slices

__all__ = ["DARTS_OPS", "check_nhwc", "FactorizedReduce", "SepConv", "DilConv", "DARTSMixedOp",
           "DARTSSupernet", "DARTSNetwork", "darts_cell_plan", "darts_edges_from"]

_OFFSETS = (0, 2, 5, 9)  # first edge index of node i


def check_nhwc(x: Any) -> None:
    """``ValueError`` unless ``x`` is an NHWC image batch ``(batch, H, W, channels)``; an
    NCHW-looking batch (``(batch, 3, H, W)``) gets the transpose to apply."""
    shape = tuple(np.shape(x))
    if len(shape) != 4:
        raise ValueError(f"expected an NHWC image batch (batch, H, W, channels), got shape "
                         f"{shape}; add a batch axis with x[None] for one image")
    if shape[1] in (1, 3) and shape[3] not in (1, 3):
        raise ValueError(f"expected an NHWC image batch (batch, H, W, channels), got shape "
                         f"{shape}, which looks like NCHW; transpose it with "
                         f"x.transpose(0, 2, 3, 1)")


BROADCAST_EDGE_INPUTS: bool | None = None
"""Whether the input shared by the edges leaving one node is broadcast to an edge axis before
the edge ``vmap`` (``None``: on the CPU backend only). XLA-CPU runs a depthwise convolution
whose *kernel* alone is batched (the vmap of a shared input: a grouped convolution with
channel multiplier E) 10-20x slower than the same convolution with input and kernel batched
(a plain depthwise one over E*C channels): the test-size DARTS step drops from ~18 s to ~6 s
on the 2-core CPU. On GPU the shared input is kept (no E copies). Same function either way."""


def broadcast_edge_inputs() -> bool:
    """The effective :data:`BROADCAST_EDGE_INPUTS` setting at trace time."""
    b = BROADCAST_EDGE_INPUTS
    return jax.default_backend() == "cpu" if b is None else bool(b)


def darts_edges_from(src: int, steps: int = 4) -> list[int]:
    """Edge indices (14-edge order) whose input is state ``src`` (0, 1 = cell inputs)."""
    out, off = [], 0
    for i in range(steps):
        if src <= i + 1:
            out.append(off + src)
        off += i + 2
    return out


class FactorizedReduce(nn.Module):
    """ReLU -> two stride-2 1x1 convs (one shifted by a pixel) concatenated -> BN."""

    features: int
    affine: bool = True
    track_running_stats: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.features % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {self.features}")
        h = nn.relu(x)
        half = self.features // 2
        kw = dict(use_bias=False, dtype=self.dtype, param_dtype=jnp.float32)
        a = nn.Conv(half, (1, 1), (2, 2), "VALID", name="conv_1", **kw)(h)
        b = nn.Conv(half, (1, 1), (2, 2), "VALID", name="conv_2", **kw)(h[:, 1:, 1:])
        y = jnp.concatenate([a, b], axis=-1)
        return BatchNorm(self.features, self.affine, self.track_running_stats)(y, train)


class DilConv(nn.Module):
    """ReLU -> depthwise k x k (dilation d, stride s) -> pointwise 1x1 -> BN."""

    features: int
    kernel: int
    stride: int
    dilation: int
    affine: bool = True
    track_running_stats: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c = x.shape[-1]
        h = conv(c, self.kernel, self.stride, self.dilation, groups=c,
                 dtype=self.dtype)(nn.relu(x))
        h = conv(self.features, 1, dtype=self.dtype)(h)
        return BatchNorm(self.features, self.affine, self.track_running_stats)(h, train)


class SepConv(nn.Module):
    """Two DilConv(dilation 1) blocks, the first with the stride: DARTS ``sep_conv_kxk``."""

    features: int
    kernel: int
    stride: int
    affine: bool = True
    track_running_stats: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        a, t, d = self.affine, self.track_running_stats, self.dtype
        h = DilConv(x.shape[-1], self.kernel, self.stride, 1, a, t, d)(x, train)
        return DilConv(self.features, self.kernel, 1, 1, a, t, d)(h, train)


def _param_op(name: str, C: int, stride: int, affine: bool, track: bool, mname: str,
              dtype: Any = None):
    if name == "sep_conv_3x3":
        return SepConv(C, 3, stride, affine, track, dtype, name=mname)
    if name == "sep_conv_5x5":
        return SepConv(C, 5, stride, affine, track, dtype, name=mname)
    if name == "dil_conv_3x3":
        return DilConv(C, 3, stride, 2, affine, track, dtype, name=mname)
    if name == "dil_conv_5x5":
        return DilConv(C, 5, stride, 2, affine, track, dtype, name=mname)
    if name == "skip_connect":  # only parametrised when reducing
        return FactorizedReduce(C, affine, track, dtype, name=mname)
    raise ValueError(f"unknown DARTS op {name!r}; valid ops: {DARTS_OPS}")


def _pool(name: str, x: jax.Array, stride: int) -> jax.Array:
    return (max_pool if name == "max_pool_3x3" else avg_pool)(x, 3, stride, 1)


class DARTSMixedOp(nn.Module):
    """The parametrised ops of a DARTS mixed edge, weighted: ``sum_k w[k] * op_k(x)`` over
    sep/dil convs (and FactorizedReduce skip when ``stride == 2``). Pools and identity are
    parameter-free and added by the cell once per source node. ``use`` masks ops statically.
    """

    C: int
    stride: int
    use: tuple[bool, ...] = (True,) * 8
    affine: bool = False
    track_running_stats: bool = False
    train: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        out = 0.0
        for k, name in enumerate(DARTS_OPS):
            if not self.use[k] or name in ("none", "max_pool_3x3", "avg_pool_3x3"):
                continue
            if name == "skip_connect" and self.stride == 1:
                continue
            y = _param_op(name, self.C, self.stride, self.affine, self.track_running_stats,
                          name, self.dtype)(x, self.train)
            out = out + weighted(w[k], y)
        if isinstance(out, float):
            n = x.shape[1] // self.stride
            out = jnp.zeros((x.shape[0], n, n, self.C), x.dtype)
        return out


class _SearchCell(nn.Module):
    C: int
    reduction: bool
    reduction_prev: bool
    train: bool
    steps: int = 4
    multiplier: int = 4
    affine: bool = False
    track_running_stats: bool = False
    op_mask: Any = None
    dtype: Any = None

    @nn.compact
    def __call__(self, s0: jax.Array, s1: jax.Array, w: jax.Array,
                 drop_prob: Any = None) -> jax.Array:
        a, t, C, d = self.affine, self.track_running_stats, self.C, self.dtype
        if self.reduction_prev:
            s0 = FactorizedReduce(C, a, t, d, name="pre0")(s0, self.train)
        else:
            s0 = ReLUConvBN(C, 1, 1, 1, a, t, d, name="pre0")(s0, self.train)
        s1 = ReLUConvBN(C, 1, 1, 1, a, t, d, name="pre1")(s1, self.train)
        ne = w.shape[0]
        mask = (np.ones((ne, 8), bool) if self.op_mask is None
                else np.asarray(self.op_mask, bool))
        states = [s0, s1]
        acc: dict[int, Any] = {}
        for src in range(self.steps + 1):
            h = states[src]
            edges = darts_edges_from(src, self.steps)
            stride = 2 if self.reduction and src < 2 else 1
            m = mask[edges]
            use = tuple(bool(u) for u in m.any(axis=0))
            we = w[np.asarray(edges)]
            learn = None
            if any(use[k] for k in (4, 5, 6, 7)) or (stride == 2 and use[3]):
                per_edge = broadcast_edge_inputs()
                vm = nn.vmap(DARTSMixedOp, in_axes=(0 if per_edge else None, 0), out_axes=0,
                             variable_axes={"params": 0, "batch_stats": 0},
                             split_rngs={"params": True})
                hin = jnp.broadcast_to(h, (len(edges),) + h.shape) if per_edge else h
                learn = vm(C, stride, use, a, t, self.train, d, name=f"edges_from_{src}")(hin,
                                                                                       we)
            free = {}
            for k, name in ((1, "max_pool_3x3"), (2, "avg_pool_3x3")):
                if use[k]:
                    free[k] = BatchNorm(C, False, False)(_pool(name, h, stride), self.train)
            if use[3] and stride == 1:
                free[3] = h
            for q, e in enumerate(edges):
                node = next(i for i in range(self.steps)
                            if _OFFSETS[i] <= e < _OFFSETS[i] + i + 2)
                y = 0.0 if learn is None else learn[q]
                for k, v in free.items():
                    if m[q, k]:
                        y = y + weighted(we[q, k], v)
                if not isinstance(y, float):  # drop-path on the edge's mixed output (SNAS)
                    y = _drop_path(self, y, drop_prob, self.train)
                acc[node] = acc.get(node, 0.0) + y
            if src < self.steps:
                v = acc.get(src, 0.0)
                if isinstance(v, float):  # every incoming op masked: the node is zero
                    r = 2 if self.reduction else 1
                    v = jnp.zeros((s1.shape[0], s1.shape[1] // r, s1.shape[2] // r, C), s1.dtype)
                states.append(v)
        return jnp.concatenate(states[-self.multiplier:], axis=-1)


def darts_cell_plan(C: int, layers: int, stem_multiplier: int = 3,
                    multiplier: int = 4) -> list[dict[str, Any]]:
    """Per cell: ``reduction``, ``reduction_prev``, channels ``C_pp, C_p, C`` (DARTS layout:
    reductions at ``layers // 3`` and ``2 * layers // 3``, channels doubled there)."""
    if layers < 3:
        raise ValueError(f"a DARTS network needs layers >= 3 (got {layers})")
    c_pp, c_p, c_cur = stem_multiplier * C, stem_multiplier * C, C
    plan, red_prev = [], False
    for i in range(layers):
        red = i in (layers // 3, 2 * layers // 3)
        if red:
            c_cur *= 2
        plan.append(dict(reduction=red, reduction_prev=red_prev, C_pp=c_pp, C_p=c_p, C=c_cur))
        red_prev = red
        c_pp, c_p = c_p, multiplier * c_cur
    return plan


def _runs(plan: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of cells with one signature and equal input shapes."""
    runs, i = [], 0
    while i < len(plan):
        j = i + 1
        sig = plan[i]
        scannable = not sig["reduction"] and not sig["reduction_prev"] and sig["C_pp"] == sig["C_p"]
        while scannable and j < len(plan) and plan[j] == sig:
            j += 1
        runs.append((i, j))
        i = j
    return runs


class _ScanSearchCell(nn.Module):
    C: int
    train: bool
    affine: bool
    track_running_stats: bool
    op_mask: Any
    dtype: Any = None

    @nn.compact
    def __call__(self, carry, w):
        s0, s1, p = carry
        out = _SearchCell(self.C, False, False, self.train, affine=self.affine,
                          track_running_stats=self.track_running_stats,
                          op_mask=self.op_mask, dtype=self.dtype, name="cell")(s0, s1, w, p)
        return (s1, out, p), None


class DARTSSupernet(nn.Module):
    """DARTS search network (``Network`` of the DARTS code) with external op weights.

    ``__call__(x, w_normal f32[14, 8], w_reduce f32[14, 8], train)`` (or
    ``__call__(x, {"normal": w_normal, "reduce": w_reduce}, train=...)``); every edge computes
    ``sum_k w[e, k] * op_k(x)`` (zero weight -> no contribution). Cell BN: ``affine=False``;
    search-time BN uses batch statistics (``track_running_stats=False`` by default, as in
    NB201's search setting; the DARTS code tracks them but only uses them in eval mode).
    ``drop_path_prob`` (keyword, training only; needs a ``'dropout'`` rng): drop-path on every
    edge's mixed output, as the SNAS search (Xie et al., ICLR 2019; 0.3 in its code).
    ``op_masks``: optional static ``(mask_normal, mask_reduce)`` 14x8 0/1 tuples of ops to
    compute at all. ``dtype``: compute dtype (``None``/``"float32"`` or ``"bfloat16"``);
    params, BN statistics, the classifier and the logits stay float32.
    """

    C: int = 16
    layers: int = 8
    steps: int = 4
    multiplier: int = 4
    stem_multiplier: int = 3
    num_classes: int = 10
    affine: bool = False
    track_running_stats: bool = False
    op_masks: Any = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, w_normal: Any, w_reduce: jax.Array | None = None,
                 train: bool = True, drop_path_prob: Any = None) -> jax.Array:
        check_nhwc(x)
        p_drop = None if (isinstance(drop_path_prob, (int, float))
                          and drop_path_prob == 0) else drop_path_prob
        if isinstance(w_normal, dict):  # the dict α form {"normal": ..., "reduce": ...}
            w_normal, w_reduce = w_normal["normal"], w_normal["reduce"]
        if w_reduce is None:
            raise ValueError("DARTSSupernet needs w_reduce (or one dict {'normal', 'reduce'})")
        ne = sum(i + 2 for i in range(self.steps))
        for nm, w in (("w_normal", w_normal), ("w_reduce", w_reduce)):
            if tuple(w.shape) != (ne, len(DARTS_OPS)):
                raise ValueError(f"{nm} must have shape ({ne}, {len(DARTS_OPS)}), got {w.shape}")
        mn, mr = (None, None) if self.op_masks is None else self.op_masks
        d = compute_dtype(self.dtype)
        h = conv(self.stem_multiplier * self.C, 3, name="stem_conv", dtype=d)(x)
        h = BatchNorm(h.shape[-1], name="stem_bn")(h, train)
        s0 = s1 = h
        plan = darts_cell_plan(self.C, self.layers, self.stem_multiplier, self.multiplier)
        kw = dict(affine=self.affine, track_running_stats=self.track_running_stats)
        for (i, j) in _runs(plan):
            p = plan[i]
            if j - i >= 2:
                scan = nn.scan(_ScanSearchCell, variable_axes={"params": 0, "batch_stats": 0},
                               split_rngs={"params": True, "dropout": True}, in_axes=0,
                               length=j - i)
                ws = jnp.broadcast_to(w_normal, (j - i,) + w_normal.shape)
                (s0, s1, _), _ = scan(p["C"], train, self.affine, self.track_running_stats, mn,
                                      d, name=f"cells_{i}_{j - 1}")((s0, s1, p_drop), ws)
                continue
            w = w_reduce if p["reduction"] else w_normal
            out = _SearchCell(p["C"], p["reduction"], p["reduction_prev"], train, self.steps,
                              self.multiplier, op_mask=mr if p["reduction"] else mn, dtype=d,
                              name=f"cell_{i}", **kw)(s0, s1, w, p_drop)
            s0, s1 = s1, out
        pooled = s1.astype(jnp.float32).mean(axis=(1, 2))
        return nn.Dense(self.num_classes, name="classifier")(pooled)


# ----------------------------------------------------------------------------- eval network
def _drop_path(mdl: nn.Module, x: jax.Array, prob: Any, train: bool) -> jax.Array:
    if not train or prob is None:
        return x
    keep = 1.0 - jnp.asarray(prob, jnp.float32)
    u = jax.random.uniform(mdl.make_rng("dropout"), (x.shape[0], 1, 1, 1))
    return jnp.where(u < keep, x / keep.astype(x.dtype), jnp.zeros_like(x))


class _EvalCell(nn.Module):
    pairs: tuple[tuple[str, int], ...]
    concat: tuple[int, ...]
    C: int
    reduction: bool
    reduction_prev: bool
    train: bool
    dtype: Any = None

    @nn.compact
    def __call__(self, s0, s1, drop_prob=None):
        C, d = self.C, self.dtype
        if self.reduction_prev:
            s0 = FactorizedReduce(C, dtype=d, name="pre0")(s0, self.train)
        else:
            s0 = ReLUConvBN(C, 1, dtype=d, name="pre0")(s0, self.train)
        s1 = ReLUConvBN(C, 1, dtype=d, name="pre1")(s1, self.train)
        states = [s0, s1]
        for a, b in node_slices(len(self.pairs)):  # 2 inputs per node, or every edge (SNAS)
            node = 0.0
            for q in range(a, b):
                name, j = self.pairs[q]
                h = states[j]
                stride = 2 if self.reduction and j < 2 else 1
                if name == "none":
                    continue
                if name in ("max_pool_3x3", "avg_pool_3x3"):
                    y = _pool(name, h, stride)
                elif name == "skip_connect" and stride == 1:
                    y = h
                else:
                    y = _param_op(name, C, stride, True, True, f"op_{q}", d)(h, self.train)
                if not (name == "skip_connect" and stride == 1):
                    y = _drop_path(self, y, drop_prob, self.train)
                node = node + y
            if isinstance(node, float):
                node = jnp.zeros_like(states[1][:, ::(2 if self.reduction else 1),
                                                ::(2 if self.reduction else 1)])
            states.append(node)
        return jnp.concatenate([states[k] for k in self.concat], axis=-1)


class _ScanEvalCell(nn.Module):
    pairs: tuple
    concat: tuple
    C: int
    train: bool
    dtype: Any = None

    @nn.compact
    def __call__(self, carry, _):
        s0, s1, p = carry
        out = _EvalCell(self.pairs, self.concat, self.C, False, False, self.train, self.dtype,
                        name="cell")(s0, s1, p)
        return (s1, out, p), None


class _AuxHead(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train):
        x = nn.avg_pool(nn.relu(x), (5, 5), (3, 3), "VALID")
        x = nn.relu(BatchNorm(128)(conv(128, 1)(x), train))
        x = nn.Conv(768, (2, 2), padding="VALID", use_bias=False)(x)
        x = nn.relu(BatchNorm(768)(x, train))
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


class DARTSNetwork(nn.Module):
    """DARTS evaluation network (``NetworkCIFAR``) of one genotype (8-pair cells, or the
    14-pair edge-all cells of SNAS: every non-``none`` edge computed).

    ``__call__(x, *, train, drop_path_prob=None)``: ``x`` an NHWC batch, ``train`` required
    (batch statistics + drop path, or the running averages); ``drop_path_prob`` defaults to
    ``self.drop_path``; needs a ``'dropout'`` rng when > 0 and training). Returns the logits,
    or ``(logits, aux_logits)`` when ``auxiliary`` and training (aux head after the second
    reduction cell, loss weight 0.4 in DARTS). ``dtype``: compute dtype of the cells
    (params, BN statistics, the heads and the logits stay float32).
    """

    genotype: Any
    C: int = 36
    layers: int = 20
    auxiliary: bool = False
    drop_path: float = 0.0
    num_classes: int = 10
    stem_multiplier: int = 3
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool, drop_path_prob: Any = None):
        check_nhwc(x)
        g = self.genotype
        if isinstance(g, str):
            g = DARTS.parse(g)
        normal, reduce_ = tuple(map(tuple, g.normal)), tuple(map(tuple, g.reduce))
        nc = tuple(getattr(g, "normal_concat", (2, 3, 4, 5)))
        rc = tuple(getattr(g, "reduce_concat", (2, 3, 4, 5)))
        p = self.drop_path if drop_path_prob is None else drop_path_prob
        p = None if (isinstance(p, (int, float)) and p == 0) else p
        d = compute_dtype(self.dtype)
        h = conv(self.stem_multiplier * self.C, 3, name="stem_conv", dtype=d)(x)
        h = BatchNorm(h.shape[-1], name="stem_bn")(h, train)
        s0 = s1 = h
        plan = darts_cell_plan(self.C, self.layers, self.stem_multiplier, len(nc))
        aux = None
        for (i, j) in _runs(plan):
            c = plan[i]
            if j - i >= 2:
                scan = nn.scan(_ScanEvalCell, variable_axes={"params": 0, "batch_stats": 0},
                               split_rngs={"params": True, "dropout": True}, length=j - i)
                (s0, s1, _), _ = scan(normal, nc, c["C"], train, d,
                                      name=f"cells_{i}_{j - 1}")((s0, s1, p), None)
            else:
                red = c["reduction"]
                out = _EvalCell(reduce_ if red else normal, rc if red else nc, c["C"], red,
                                c["reduction_prev"], train, d, name=f"cell_{i}")(s0, s1, p)
                s0, s1 = s1, out
            if self.auxiliary and train and i <= 2 * self.layers // 3 < j:
                aux = _AuxHead(self.num_classes, name="aux_head")(s1.astype(jnp.float32), train)
        logits = nn.Dense(self.num_classes, name="classifier")(
            s1.astype(jnp.float32).mean(axis=(1, 2)))
        return (logits, aux) if aux is not None else logits
