"""Cell builders (flax.linen, NHWC): NAS-Bench-201 ops, cells, discrete network and supernet.

* NAS-Bench-201 (Dong & Yang, ICLR 2020, arXiv 2001.00326): ops ``none, skip_connect,
  nor_conv_1x1, nor_conv_3x3, avg_pool_3x3`` (``nor_conv`` = ReLU -> Conv -> BN), 4-node cells,
  macro network stem -> N cells (C) -> ResNet block /2 -> N cells (2C) -> ResNet block /2 ->
  N cells (4C) -> BN-ReLU-GAP-linear.
* The DARTS space (Liu et al., ICLR 2019) lives in :mod:`jnas.cells_darts`, NAS-Bench-101
  (Ying et al., ICML 2019) in :mod:`jnas.cells_nb101`, parameter / FLOP counting in
  :mod:`jnas.cost`, the basic layers (BatchNorm, conv, pools, ReLU-Conv-BN, the ResNet
  block) and compile/dtype options in :mod:`jnas.layers`; all are re-exported here.

Speed design (issue 8): the cells of one stage are identical, so they run under ``nn.scan``
(params stacked on a leading axis, one compiled cell body per stage); inside a supernet cell
the edges leaving one node are evaluated with ``nn.vmap`` over edge parameters, which XLA turns
into one wider convolution per op instead of one convolution per edge; parameter-free ops
(pooling, skip) of one source node are computed once for all its edges; ``none`` is never
computed (it contributes exactly 0). Ops whose weight is statically zero on every edge of a
source node can be skipped with ``op_mask``. BatchNorm has a closed-form backward
(:func:`batch_norm_train`: about half the XLA kernels of its autodiff graph), and
:func:`compiler_options` gives XLA-CPU options that halve compile time; both were chosen by
profiling the CPU compile (BENCHMARKS.md). ``dtype="bfloat16"`` is a mixed-precision compute
dtype (params, BN statistics and op weights float32).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jnas import cells_fast, xla
from jnas.cells_gdas import NB201SampledSupernet
from jnas.cells_darts import DARTS_OPS, DARTSMixedOp, DARTSNetwork, DARTSSupernet, check_nhwc
from jnas.cells_nb101 import NB101Network
from jnas.cost import arch_cost, cell_costs, count_flops, count_params, op_costs
from jnas.layers import (CPU_FAST_COMPILE, CPU_FASTEST_COMPILE, BatchNorm, ReLUConvBN,
                         ResNetBasicBlock, avg_pool, batch_norm_train, compiler_options,
                         compute_dtype, conv, nb201_macro, weighted)
from jnas.spaces import NB201, NB201_EDGES, NB201_OPS

__all__ = [
    "BatchNorm", "ReLUConvBN", "ResNetBasicBlock", "avg_pool", "NB201MixedOp", "NB201Supernet",
    "NB201Network", "nb201_subnet_params", "nb201_arch", "batch_norm_train", "compute_dtype",
    "compiler_options", "CPU_FAST_COMPILE", "CPU_FASTEST_COMPILE", "weighted", "NB201_OPS",
    "NB201_EDGES", "check_nhwc", "init_fast", "Supernet", "make_supernet", "as_alpha_dict",
    # re-exported from cells_darts, cells_nb101, cost
    "DARTSSupernet", "DARTSNetwork", "DARTSMixedOp", "NB101Network", "NB201SampledSupernet",
    "count_params", "count_flops", "arch_cost", "op_costs", "cell_costs",
]



# ----------------------------------------------------------------------------- NB201 supernet
class NB201MixedOp(nn.Module):
    """The learnable part of one NB201 mixed edge: ``w_1x1 * conv1x1(x) + w_3x3 * conv3x3(x)``.

    Parameter-free ops (skip, avg-pool) are added by the cell once per source node.
    """

    features: int
    affine: bool = False
    track_running_stats: bool = False
    use_1x1: bool = True
    use_3x3: bool = True
    train: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        h = nn.relu(x)
        out = None
        c, a, t, dt = self.features, self.affine, self.track_running_stats, self.dtype
        for k, use, tag in ((2, self.use_1x1, "1x1"), (3, self.use_3x3, "3x3")):
            if use:
                y = conv(c, int(tag[0]), name=f"conv_{tag}", dtype=dt)(h)
                y = weighted(w[k], BatchNorm(c, a, t, name=f"bn_{tag}")(y, self.train))
                out = y if out is None else out + y
        if out is None:
            out = jnp.zeros(x.shape[:-1] + (self.features,), x.dtype)
        return out


class _NB201SuperCell(nn.Module):
    C: int
    affine: bool
    track_running_stats: bool
    train: bool
    op_mask: Any = None  # static tuple[6][5] of 0/1 or None
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> tuple[jax.Array, None]:
        mask = cells_fast.op_mask_array(self.op_mask)
        nodes = [x]
        acc = {1: 0.0, 2: 0.0, 3: 0.0}
        for src in range(3):
            h = nodes[src]
            edges = cells_fast.edges_from(src)
            m = mask[edges]
            # [n_edges, 5]; statically masked (edge, op) pairs get weight exactly 0
            we = w[np.asarray(edges)] * m
            learn = None
            if m[:, 2].any() or m[:, 3].any():
                vm = nn.vmap(NB201MixedOp, in_axes=(None, 0), out_axes=0,
                             variable_axes={"params": 0, "batch_stats": 0},
                             split_rngs={"params": True})
                learn = vm(self.C, self.affine, self.track_running_stats, bool(m[:, 2].any()),
                           bool(m[:, 3].any()), self.train, self.dtype,
                           name=f"edges_from_{src}")(h, we)
            pooled = avg_pool(h) if m[:, 4].any() else None
            for k, e in enumerate(edges):
                to = NB201_EDGES[e][0]
                y = cells_fast.param_free_sum(we[k], m[k], h, pooled)
                if learn is not None:
                    y = y + learn[k]
                acc[to] = acc[to] + y
            nodes.append(acc[src + 1] if not isinstance(acc[src + 1], float)
                         else jnp.zeros_like(x))
        out = acc[3]
        if isinstance(out, float):
            out = jnp.zeros_like(x)
        return out, None


def _stage_weights(edge_weights: jax.Array, num_cells: int, n_ops: int,
                   n_edges: int) -> jax.Array:
    w = jnp.asarray(edge_weights)
    if w.shape == (n_edges, n_ops):
        w = jnp.broadcast_to(w, (num_cells, n_edges, n_ops))
    if w.shape != (num_cells, n_edges, n_ops):
        raise ValueError(f"edge weights must have shape ({n_edges}, {n_ops}) (shared by all cells)"
                         f" or ({num_cells}, {n_edges}, {n_ops}) (one row per cell); "
                         f"got {tuple(w.shape)}")
    return w


class NB201Supernet(nn.Module):
    """NAS-Bench-201 search supernet (xautodl ``TinyNetworkDarts``) with external edge weights.

    ``__call__(x, edge_weights, train)``: ``x`` f32[B, H, W, 3]; ``edge_weights`` f32[6, 5]
    (or ``{"cell": f32[6, 5]}``)
    (shared by all cells; rows in ``NB201_EDGES`` order, columns in ``NB201_OPS`` order) or
    f32[3N, 6, 5] (one row block per cell). Each edge computes ``sum_k w[e, k] * op_k(x)``; a
    zero weight removes the op's contribution exactly, so softmax (DARTS), Gumbel (SNAS),
    hard one-hot (GDAS) weights and masks all drive this module. Cell-op BN follows the
    reference search setting (``affine=False, track_running_stats=False``); stem, ResNet
    blocks and the final BN are standard BN layers (``batch_stats`` collection).
    ``op_mask`` (static 6x5 0/1 tuple) skips computing ops that are statically masked (and
    zeroes their weights). ``dtype``: compute dtype (``None``/``"float32"``, or
    ``"bfloat16"``): activations and convolutions run in it, while params, BN statistics,
    the pooled features, the classifier and the logits stay float32 (mixed precision).
    """

    C: int = 16
    N: int = 5
    num_classes: int = 10
    affine: bool = False
    track_running_stats: bool = False
    op_mask: Any = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, edge_weights: jax.Array, train: bool = True) -> jax.Array:
        check_nhwc(x)
        dt = compute_dtype(self.dtype)
        w = _stage_weights(as_alpha_dict(edge_weights)["cell"], 3 * self.N, 5, 6)

        fused = cells_fast.get_fused() and not (self.affine or self.track_running_stats)

        def stage(c: int, i: int, x: jax.Array) -> jax.Array:
            cell = cells_fast.NB201FusedSuperCell if fused else _NB201SuperCell
            scan = nn.scan(cell, variable_axes={"params": 0, "batch_stats": 0},
                           split_rngs={"params": True}, in_axes=0, length=self.N)
            args = (c, train) if fused else (c, self.affine, self.track_running_stats, train)
            return scan(*args, self.op_mask, dt,
                        name=f"stage_{i}")(x, w[i * self.N:(i + 1) * self.N])[0]
        return nb201_macro(x, self.C, self.N, self.num_classes, train, dt, stage)


# ----------------------------------------------------------------------------- NB201 network
def nb201_arch(arch: Any) -> tuple[str, ...]:
    """The 6 op names (``NB201_EDGES`` order) of an ``NB201Arch``, a standard string or a
    sequence of names; raises ``ValueError`` naming the problem."""
    if isinstance(arch, str):
        arch = NB201.parse(arch)
    ops = tuple(getattr(arch, "ops", arch))
    if len(ops) != 6 or any(o not in NB201_OPS for o in ops):
        raise ValueError(f"an NB201 cell needs 6 ops from {NB201_OPS}, got {ops!r}")
    return ops


class _NB201Cell(nn.Module):
    ops: tuple[str, ...]
    C: int
    train: bool
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, _: Any = None) -> tuple[jax.Array, None]:
        nodes = [x]
        for i in (1, 2, 3):
            s = None
            for e, (to, src) in enumerate(NB201_EDGES):
                if to != i or self.ops[e] == "none":
                    continue
                h = nodes[src]
                op = self.ops[e]
                if op == "skip_connect":
                    y = h
                elif op == "avg_pool_3x3":
                    y = avg_pool(h)
                else:
                    k = 1 if op == "nor_conv_1x1" else 3
                    y = ReLUConvBN(self.C, k, dtype=self.dtype, name=f"edge_{e}")(h,
                                                                                 self.train)
                s = y if s is None else s + y
            nodes.append(jnp.zeros_like(x) if s is None else s)
        return nodes[3], None


class NB201Network(nn.Module):
    """The discrete NAS-Bench-201 network of one cell (xautodl ``TinyNetwork``/``InferCell``).

    ``arch``: an ``NB201Arch``, a standard string or 6 op names. ``__call__(x, *, train)``:
    ``x`` an NHWC batch ``(batch, H, W, 3)``; ``train`` (required) selects batch statistics
    (and updates the running averages: ``mutable=["batch_stats"]``) or the running averages.
    ``dtype``: compute dtype as in :class:`NB201Supernet` (params stay float32). Initialise
    fast with :func:`init_fast`.
    """

    arch: Any
    C: int = 16
    N: int = 5
    num_classes: int = 10
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_nhwc(x)
        ops = nb201_arch(self.arch)
        dt = compute_dtype(self.dtype)

        def stage(c: int, i: int, x: jax.Array) -> jax.Array:
            scan = nn.scan(_NB201Cell, variable_axes={"params": 0, "batch_stats": 0},
                           split_rngs={"params": True}, length=self.N)
            return scan(ops, c, train, dt, name=f"stage_{i}")(x, None)[0]
        return nb201_macro(x, self.C, self.N, self.num_classes, train, dt, stage)


def nb201_subnet_params(supernet_params: Any, arch: Any) -> Any:
    """Inherit weights: the ``NB201Network(arch)`` params taken from ``NB201Supernet`` params.

    Shared layers (stem, ResNet blocks, head) are copied; each conv edge takes the kernel of
    its op from the supernet edge (the weight-sharing evaluation of a sub-network; BN of
    the discrete net gets scale 1 / bias 0, i.e. the supernet's non-affine BN). Use
    :func:`jnas.train.recalibrate_bn` afterwards for running statistics.
    """
    ops = nb201_arch(arch)
    out = {k: v for k, v in supernet_params.items() if not k.startswith("stage_")}
    for stage in range(3):
        sp = supernet_params[f"stage_{stage}"]
        cell = {}
        for e, op in enumerate(ops):
            if op not in ("nor_conv_1x1", "nor_conv_3x3"):
                continue
            src = NB201_EDGES[e][1]
            k = cells_fast.edges_from(src).index(e)
            tag = "1x1" if op == "nor_conv_1x1" else "3x3"
            kern = sp[f"edges_from_{src}"][f"conv_{tag}"]["kernel"][:, k]  # [N, kh, kw, C, C]
            c = kern.shape[-1]
            n = kern.shape[0]
            cell[f"edge_{e}"] = {"Conv_0": {"kernel": kern},
                                 "BatchNorm_0": {"scale": jnp.ones((n, c)),
                                                 "bias": jnp.zeros((n, c))}}
        out[f"stage_{stage}"] = cell
    return out


# ----------------------------------------------------------------------------- init + adapter
def init_fast(module: nn.Module, key: jax.Array, x: jax.Array, *args: Any,
              **kwargs: Any) -> Any:
    """``module.init(key, x, *args, **kwargs)`` compiled once with the fastest CPU options
    (:func:`jnas.xla.run_once`): the variables of a network in seconds instead of the eager
    ``init``'s tens of seconds. E.g. ``init_fast(NB201Network(arch), key, x, train=False)``.
    ``key`` may be a dict of rngs (``{"params": k, "dropout": k}``)."""
    check_nhwc(x)
    return xla.run_once(lambda k, xx, *a: module.init(k, xx, *a, **kwargs), key, x, *args)


def as_alpha_dict(alpha: Any, names: tuple[str, ...] = ("cell",)) -> dict[str, Any]:
    """α in the named form: a dict as given, a bare array as ``{names[0]: α}`` (one cell type)."""
    if isinstance(alpha, Mapping):
        return dict(alpha)
    if len(names) != 1:
        raise ValueError(f"this space has {len(names)} cell types {names}: pass α as a dict "
                         f"with those keys, not a bare array")
    return {names[0]: alpha}


@dataclasses.dataclass(frozen=True)
class Supernet:
    """A flax supernet with per-edge op weights from outside, behind one calling convention.

    ``alpha_shapes`` names the weight tensors in the order the module takes them
    (NB201: ``{"cell": (6, 5)}``; DARTS space: ``{"normal": (14, 8), "reduce": (14, 8)}``);
    ``weights`` may be that dict or, with one cell type, a bare array.
    """
    space: str
    module: nn.Module
    alpha_shapes: dict[str, tuple[int, int]]
    ops: tuple[str, ...]

    def weight_args(self, weights: Any) -> list[jax.Array]:
        """The module's positional weight arguments from ``weights`` (dict or bare array)."""
        w = as_alpha_dict(weights, tuple(self.alpha_shapes))
        return [w[k] for k in self.alpha_shapes]

    def init_variables(self, key: jax.Array, x: jax.Array) -> tuple[Any, Any]:
        """Initial ``(params, batch_stats)`` for an input batch like ``x`` (pure, traceable)."""
        w = {k: jnp.full(s, 1.0 / s[-1]) for k, s in self.alpha_shapes.items()}
        variables = self.module.init(key, x, *self.weight_args(w), train=True)
        return variables["params"], variables.get("batch_stats", {})

    def init(self, key: jax.Array, x: jax.Array) -> tuple[Any, Any]:
        """:meth:`init_variables`, compiled once (:func:`jnas.xla.run_once`)."""
        return xla.run_once(self.init_variables, key, x)

    def apply(self, params: Any, batch_stats: Any, x: jax.Array, weights: Any,
              train: bool) -> tuple[jax.Array, Any]:
        """Logits and the updated BN statistics (unchanged when ``train`` is False)."""
        variables = {"params": params}
        if batch_stats:
            variables["batch_stats"] = batch_stats
        args = self.weight_args(weights)
        if train:
            logits, upd = self.module.apply(variables, x, *args, train=True,
                                            mutable=["batch_stats"])
            return logits, upd.get("batch_stats", batch_stats)
        return self.module.apply(variables, x, *args, train=False), batch_stats


def make_supernet(space: str, config: Any, num_classes: int = 10) -> Supernet:
    """The search supernet of ``space`` ('nb201' or 'darts') for a one-shot ``config``
    (its ``C``, ``N``, ``layers``, ``compute_dtype``; ``sampled_forward``: GDAS's sampled-op
    NB201 supernet, :class:`jnas.cells_gdas.NB201SampledSupernet`)."""
    compute_dtype(config.compute_dtype)  # ValueError naming the bad dtype
    if space == "nb201" and getattr(config, "sampled_forward", False):
        mod = NB201SampledSupernet(C=config.C, N=config.N, num_classes=num_classes,
                                   dtype=config.compute_dtype)
        return Supernet("nb201", mod, {"cell": (6, 5)}, tuple(NB201_OPS))
    if space == "nb201":
        mod = NB201Supernet(C=config.C, N=config.N, num_classes=num_classes,
                            dtype=config.compute_dtype)
        return Supernet("nb201", mod, {"cell": (6, 5)}, tuple(NB201_OPS))
    if space == "darts":
        mod = DARTSSupernet(C=config.C, layers=config.layers, num_classes=num_classes,
                            dtype=config.compute_dtype)
        return Supernet("darts", mod, {"normal": (14, 8), "reduce": (14, 8)}, DARTS_OPS)
    raise ValueError(f"one-shot search supports spaces 'nb201' and 'darts', not {space!r}")
