"""Parameter and FLOP counting for the jnas networks (analytic, no tracing).

Convention (``count_flops``, in multiply-adds, reported in millions): convolutions and linear
layers count their multiply-adds (+ one add per output for a bias); pooling ``k*k`` per
output element; BN 2 per element; ReLU 1 per element; global average pooling 1 per input
element. This reproduces the FLOPs of the NAS-Bench-201 cost table shipped with
NAS-Bench-Suite-Zero (``zc_nasbench201.json``; all-``nor_conv_3x3`` CIFAR-10: 222.86 M)
to within 0.001 % (checked in tests), and params exactly (1.5315 M). Params count every
trainable weight incl. BN scale/bias, excluding a DARTS auxiliary head (as DARTS does).

* ``arch_cost(space, arch, ...)`` -> ``{"params_M", "flops_M"}`` of the discrete network.
* ``op_costs(space, C, ...)`` -> per-edge, per-op tables summed over the cells of the search
  network (the total-cost forms of the SNAS penalty: ``E_Z[cost(Z)] = sum(Z * table)``).
* ``snas_op_costs(space, C, ...)`` -> per cell, per edge, per op (size, FLOPs, memory access)
  in the SNAS code's counting (the SNAS resource penalty of :mod:`jnas.snas`).
* ``cell_costs(space, arch, ...)`` -> per cell position, per node (NB101) / per edge (NB201)
  params and FLOPs (the ReNAS feature tensors).
* ``nb201_reference_cost(op_counts, dataset)`` -> the FLOPs/params the NAS-Bench-201 tables
  report (the NB201 counter's convention, which differs from ``arch_cost`` by ~1e-4).

``space`` is a name (``'nb201'``, ``'darts'``, ``'nb101'``) or a space object everywhere.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jnas.spaces import DARTS_OPS, NB201_EDGES, NB201_OPS, get_space

__all__ = ["count_params", "count_flops", "arch_cost", "op_costs", "cell_costs",
           "snas_op_costs", "nb201_reference_cost", "conv_edge_cost_nb201",
           "conv_node_costs_nb101"]


def _space_name(space: Any) -> str:
    return get_space(space).name


def _nb201_ops(arch: Any) -> tuple[str, ...]:
    """The 6 op names of an ``NB201Arch``, its string or a sequence of op names."""
    if isinstance(arch, str):
        arch = get_space("nb201").parse(arch)
    ops = tuple(getattr(arch, "ops", arch))
    if len(ops) != len(NB201_EDGES) or any(o not in NB201_OPS for o in ops):
        raise ValueError(f"an NB201 cell needs 6 ops from {NB201_OPS}, got {ops!r}")
    return ops


def _nb101_spec(arch: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    from jnas.cells_nb101 import nb101_spec
    return nb101_spec(arch)


def count_params(tree: Any) -> int:
    """Number of scalars in a params pytree (e.g. ``variables['params']``)."""
    import jax
    return int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(tree)))


def _conv(cin: int, cout: int, k: int, hw: int, groups: int = 1) -> tuple[int, int]:
    p = cin // groups * cout * k * k
    return p, p * hw


def _relu_conv_bn(cin: int, cout: int, k: int, hw_in: int, hw_out: int,
                  affine: bool = True) -> tuple[int, int]:
    p, f = _conv(cin, cout, k, hw_out)
    return p + (2 * cout if affine else 0), f + cin * hw_in + 2 * cout * hw_out


# ----------------------------------------------------------------------------- NB201
def _nb201_edge(op: str, c: int, hw: int, affine: bool = True) -> tuple[int, int]:
    if op == "nor_conv_3x3":
        return _relu_conv_bn(c, c, 3, hw, hw, affine)
    if op == "nor_conv_1x1":
        return _relu_conv_bn(c, c, 1, hw, hw, affine)
    if op == "avg_pool_3x3":
        return 0, 9 * c * hw
    if op in ("none", "skip_connect"):
        return 0, 0
    raise ValueError(f"unknown NB201 op {op!r}; valid ops: {NB201_OPS}")


def _nb201_positions(C: int, N: int, hw: int) -> list[tuple[int, int]]:
    return [(C * 2 ** s, hw // 4 ** s) for s in range(3) for _ in range(N)]


def _nb201_base(C: int, N: int, hw: int, in_ch: int, num_classes: int) -> tuple[int, int]:
    p, f = _conv(in_ch, C, 3, hw)
    p, f = p + 2 * C, f + 2 * C * hw
    for s in (1, 2):
        cin, cout, hin = C * 2 ** (s - 1), C * 2 ** s, hw // 4 ** (s - 1)
        hout = hin // 4
        pa, fa = _relu_conv_bn(cin, cout, 3, hin, hout)
        pb, fb = _relu_conv_bn(cout, cout, 3, hout, hout)
        pd, fd = _conv(cin, cout, 1, hout)
        p += pa + pb + pd
        f += fa + fb + fd + 4 * cin * hout
    c, h = 4 * C, hw // 16
    p += 2 * c + c * num_classes + num_classes
    f += 2 * c * h + c * h + c * h + c * num_classes + num_classes
    return p, f


# ----------------------------------------------------------------------------- NB101
def _nb101_cell(matrix: np.ndarray, ops: tuple[str, ...], cin: int, cout: int,
                hw: int) -> list[tuple[int, int]]:
    """Per node (params, flops) of one NB101 cell; projections counted at the fed node."""
    from jnas.cells_nb101 import nb101_vertex_channels
    n = matrix.shape[0]
    ch = nb101_vertex_channels(cin, cout, matrix)

    def cbr(a: int, b: int, k: int) -> tuple[int, int]:
        p, f = _conv(a, b, k, hw)
        return p + 2 * b, f + 3 * b * hw  # BN 2 + ReLU 1 per output element

    out = [(0, 0)] * n
    for v in range(1, n - 1):
        p = f = 0
        if matrix[0, v]:
            a, b = cbr(cin, ch[v], 1)
            p, f = p + a, f + b
        op = ops[v]
        if op == "maxpool3x3":
            f += 9 * ch[v] * hw
        elif op.startswith("conv"):
            a, b = cbr(ch[v], ch[v], 3 if op.startswith("conv3x3") else 1)
            p, f = p + a, f + b
        else:
            raise ValueError(f"unknown NB101 op {op!r} at node {v}")
        out[v] = (p, f)
    fed = any(matrix[v, n - 1] for v in range(1, n - 1))
    if matrix[0, n - 1] or not fed:
        out[n - 1] = cbr(cin, cout, 1)
    return out


def _nb101_layout(C: int, hw: int, stacks: int = 3, cells: int = 3):
    lay, c = [], C
    for s in range(stacks):
        cin = c
        if s > 0:
            c, hw = 2 * c, hw // 4
        for k in range(cells):
            lay.append((cin if k == 0 else c, c, hw))
    return lay


# ----------------------------------------------------------------------------- DARTS
def _darts_op(op: str, cin: int, c: int, stride: int, hw_in: int, affine: bool,
              search: bool) -> tuple[int, int]:
    hw = hw_in // (stride * stride)
    bnp = 2 * c if affine else 0
    if op == "none":
        return 0, 0
    if op in ("max_pool_3x3", "avg_pool_3x3"):
        return 0, 9 * c * hw + (2 * c * hw if search else 0)
    if op == "skip_connect":
        return (0, 0) if stride == 1 else _fr(cin, c, hw_in, affine)
    dil = op.startswith("dil")
    k = int(op[-1])
    if dil:
        pdw, fdw = _conv(c, c, k, hw, groups=c)
        ppw, fpw = _conv(c, c, 1, hw)
        return pdw + ppw + bnp, fdw + fpw + c * hw_in + 2 * c * hw
    p1, f1 = _darts_op(f"dil_conv_{k}x{k}", cin, c, stride, hw_in, affine, search)
    p2, f2 = _darts_op(f"dil_conv_{k}x{k}", c, c, 1, hw, affine, search)
    return p1 + p2, f1 + f2


def _fr(cin: int, c: int, hw_in: int, affine: bool) -> tuple[int, int]:
    """FactorizedReduce: ReLU, two stride-2 1x1 convs to c/2 each, BN."""
    hw = hw_in // 4
    params = 2 * cin * (c // 2) + (2 * c if affine else 0)
    return params, cin * hw_in + 2 * cin * (c // 2) * hw + 2 * c * hw


def _darts_pre(reduction_prev: bool, cin: int, c: int, hw: int, affine: bool):
    if reduction_prev:
        return _fr(cin, c, hw * 4, affine)
    return _relu_conv_bn(cin, c, 1, hw, hw, affine)


def _darts_network(genotype: Any, C: int, layers: int, hw: int, in_ch: int,
                   num_classes: int, stem_mult: int = 3) -> tuple[int, int]:
    from jnas.cells_darts import darts_cell_plan
    p, f = _conv(in_ch, stem_mult * C, 3, hw)
    p, f = p + 2 * stem_mult * C, f + 2 * stem_mult * C * hw
    plan = darts_cell_plan(C, layers, stem_mult, len(genotype.normal_concat))
    h_prev = hw
    for cell in plan:
        c, red = cell["C"], cell["reduction"]
        h_in = h_prev
        a, b = _darts_pre(cell["reduction_prev"], cell["C_pp"], c, h_in, True)
        p, f = p + a, f + b
        a, b = _relu_conv_bn(cell["C_p"], c, 1, h_in, h_in)
        p, f = p + a, f + b
        pairs = genotype.reduce if red else genotype.normal
        for op, j in pairs:
            stride = 2 if red and j < 2 else 1
            a, b = _darts_op(op, c, c, stride, h_in, True, False)
            p, f = p + a, f + b
        h_prev = h_in // 4 if red else h_in
    cf = plan[-1]["C"] * len(genotype.normal_concat)
    p += cf * num_classes + num_classes
    f += cf * h_prev + cf * num_classes + num_classes
    return p, f


# ----------------------------------------------------------------------------- public
def nb201_reference_cost(op_counts: Sequence[int], dataset: str = "cifar10"
                         ) -> dict[str, float]:
    """FLOPs (M) and params (M) of the NB201 network (C=16, N=5) from a cell's op counts, in
    the convention of the NAS-Bench-201 tables (Dong & Yang, ICLR 2020).

    The per-edge terms follow the NB201 counter: an edge ``nor_conv_kxk`` in each of the 15
    cells costs ``k²·H·W·C²`` multiply-adds plus ``3·H·W·C`` (ReLU, BN), an ``avg_pool_3x3``
    ``9·H·W·C``; ``none``/``skip_connect`` cost nothing. The constant part (stem, the two
    residual reduction blocks, classifier) is that of the NB201 counter. Checked against every
    cell of ``zc_nasbench201.json`` in the tests.

    Args:
      op_counts: how many edges use each op, in ``NB201_OPS`` order.
      dataset: ``'cifar10'``, ``'cifar100'`` or ``'ImageNet16-120'`` (input size 16×16 and
        120 classes for the last).
    """
    base_flops = {"cifar10": 7.943872e6, "cifar100": 7.949632e6, "ImageNet16-120": 1.993792e6}
    base_params = {"cifar10": 0.073306e6, "cifar100": 0.079156e6, "ImageNet16-120": 0.080456e6}
    if dataset not in base_flops:
        raise ValueError(f"unknown NB201 dataset {dataset!r}; valid datasets: "
                         f"{', '.join(base_flops)}")
    scale = 0.25 if dataset == "ImageNet16-120" else 1.0
    s2 = 3 * 32 * 32 * 16 * 16  # sum over stages of H*W*C^2 (same per stage)
    s1 = 32 * 32 * 16 + 16 * 16 * 32 + 8 * 8 * 64  # sum over stages of H*W*C
    per_edge_flops = {2: 5 * (s2 + 3 * s1), 3: 5 * (9 * s2 + 3 * s1), 4: 5 * 9 * s1}
    per_edge_params = {2: 5 * (16 * 16 + 32 * 32 + 64 * 64) + 2 * 5 * (16 + 32 + 64),
                       3: 5 * 9 * (16 * 16 + 32 * 32 + 64 * 64) + 2 * 5 * (16 + 32 + 64)}
    flops = base_flops[dataset] + scale * sum(per_edge_flops.get(o, 0) * n
                                              for o, n in enumerate(op_counts))
    params = base_params[dataset] + sum(per_edge_params.get(o, 0) * n
                                        for o, n in enumerate(op_counts))
    return {"flops_M": flops / 1e6, "params_M": params / 1e6}


def arch_cost(space: Any, arch: Any, input_shape: tuple[int, int, int] = (32, 32, 3),
              num_classes: int = 10, C: int | None = None, N: int | None = None,
              layers: int | None = None) -> dict[str, float]:
    """Params (M) and FLOPs (M multiply-adds, convention above) of the discrete network.

    Args:
      space: 'nb201' (C=16, N=5 default), 'darts' (eval net C=36, layers=20, aux excluded)
        or 'nb101' (C=128, 3x3 cells).
      arch: the space's arch value or its string.
      input_shape: (H, W, channels) of one image.
    Raises:
      ValueError: unknown space or invalid arch.
    """
    h, w, cin = input_shape
    hw = h * w
    space = _space_name(space)
    if space == "nb201":
        ops = _nb201_ops(arch)
        C, N = C or 16, N or 5
        p, f = _nb201_base(C, N, hw, cin, num_classes)
        for c, hh in _nb201_positions(C, N, hw):
            for op in ops:
                a, b = _nb201_edge(op, c, hh)
                p, f = p + a, f + b
    elif space == "nb101":
        m, ops = _nb101_spec(arch)
        C = C or 128
        p, f = _conv(cin, C, 3, hw)
        p, f = p + 2 * C, f + 3 * C * hw
        for a_, b_, hh in _nb101_layout(C, hw):
            for q, r in _nb101_cell(m, ops, a_, b_, hh):
                p, f = p + q, f + r
        f += 4 * C * _nb101_layout(C, hw)[-1][2] * 4  # maxpools between stacks (2x2)
        cf = 4 * C
        p += cf * num_classes + num_classes
        f += cf * (hw // 16) + cf * num_classes + num_classes
    elif space == "darts":
        arch = get_space("darts").parse(arch)
        p, f = _darts_network(arch, C or 36, layers or 20, hw, cin, num_classes)
    return {"params_M": p / 1e6, "flops_M": f / 1e6}


def op_costs(space: Any, C: int = 16, N: int = 5, layers: int = 8,
             input_shape: tuple[int, int, int] = (32, 32, 3)) -> dict[str, np.ndarray]:
    """Per-edge, per-op params and FLOPs (millions) summed over the search network's cells.

    NB201: ``{"params", "flops"}`` f32[6, 5] (edge order ``NB201_EDGES``, ops ``NB201_OPS``;
    params of the discrete net's BN included) over the 3N cells. DARTS:
    ``{"params_normal", "flops_normal", "params_reduce", "flops_reduce"}`` f32[14, 8] over
    the normal / reduction cells of the ``layers``-cell search net (search BN: no affine).
    """
    hw = input_shape[0] * input_shape[1]
    space = _space_name(space)
    if space == "nb201":
        P, F = np.zeros((6, 5)), np.zeros((6, 5))
        for c, hh in _nb201_positions(C, N, hw):
            for k, op in enumerate(NB201_OPS):
                a, b = _nb201_edge(op, c, hh)
                P[:, k] += a
                F[:, k] += b
        return {"params": (P / 1e6).astype(np.float32), "flops": (F / 1e6).astype(np.float32)}
    if space == "darts":
        from jnas.cells_darts import darts_cell_plan
        out = {k: np.zeros((14, 8)) for k in ("params_normal", "flops_normal",
                                               "params_reduce", "flops_reduce")}
        h_in = hw
        for cell in darts_cell_plan(C, layers):
            red, c = cell["reduction"], cell["C"]
            tag = "reduce" if red else "normal"
            e = 0
            for i in range(4):
                for j in range(i + 2):
                    stride = 2 if red and j < 2 else 1
                    hh = h_in if j < 2 else (h_in // 4 if red else h_in)
                    for k, op in enumerate(DARTS_OPS):
                        a, b = _darts_op(op, c, c, stride, hh, False, True)
                        out[f"params_{tag}"][e, k] += a
                        out[f"flops_{tag}"][e, k] += b
                    e += 1
            h_in = h_in // 4 if red else h_in
        return {k: (v / 1e6).astype(np.float32) for k, v in out.items()}
    raise ValueError(f"op_costs supports 'nb201' and 'darts', got {space!r}")


# ----------------------------------------------------------------------------- SNAS code
# The per-op counts of the SNAS code (SNAS-Series ``operations.py``; Xie et al., ICLR 2019):
# size = conv weights, FLOPs = size * (output pixels), memory access (MAC) = feature maps read
# and written + weights; pools and identity have no size; 'none' costs nothing. ``y`` is the
# output side, ``h // stride``.
def _snas_op(op: str, c: int, h: int, stride: int) -> tuple[int, int, int]:
    y = h // stride
    area = y * y
    if op == "none":
        return 0, 0, 0
    if op in ("max_pool_3x3", "avg_pool_3x3"):
        return 0, 9 * area * c, (2 if stride == 1 else 5) * area * c
    if op == "skip_connect" and stride == 1:
        return 0, 0, 2 * c * area
    if op == "skip_connect":  # FactorizedReduce(c, c)
        size = 2 * c * (c // 2)
        return size, size * area, 2 * area * (4 * c + c // 2) + size
    if op in ("nor_conv_1x1", "nor_conv_3x3"):  # NB201 ReLU-Conv-BN, stride 1
        size = c * c * int(op[-1]) ** 2
        return size, size * area, area * 2 * c + size
    k = int(op[-1])
    if op.startswith("sep_conv"):
        size = 2 * c * k * k + 2 * c * c
        return size, size * area, area * (8 if stride == 1 else 11) * c + size
    if op.startswith("dil_conv"):
        size = c * k * k + c * c
        return size, size * area, area * (4 if stride == 1 else 7) * c + size
    raise ValueError(f"unknown op {op!r}")


def snas_op_costs(space: Any, C: int = 16, N: int = 5, layers: int = 8,
                  image_hw: int = 32) -> dict[str, np.ndarray]:
    """Per cell, per edge, per op ``(size, FLOPs, MAC)`` of the search network in the counting
    of the SNAS code (Xie et al., ICLR 2019; raw counts, not millions): the SNAS resource
    penalty's tables.

    NB201: ``{"cell": f64[3N, 6, 5, 3]}`` (3 stages of N cells, C, 2C, 4C channels at
    ``image_hw``, /2, /4 pixels; ``nor_conv`` as the SNAS code's ReLU-Conv-BN, ``avg_pool`` as
    its stride-1 pool). DARTS space: ``{"normal": f64[n_normal, 14, 8, 3], "reduce":
    f64[n_reduce, 14, 8, 3]}`` over the ``layers``-cell search net (reductions at 1/3 and 2/3;
    the edges from the two cell inputs of a reduction cell have stride 2).
    """
    space = _space_name(space)
    if space == "nb201":
        out = np.zeros((3 * N, len(NB201_EDGES), len(NB201_OPS), 3))
        for i in range(3 * N):
            c, h = C * 2 ** (i // N), image_hw // 2 ** (i // N)
            out[i] = [_snas_op(op, c, h, 1) for op in NB201_OPS]
        return {"cell": out}
    if space == "darts":
        from jnas.cells_darts import darts_cell_plan
        tabs: dict[str, list[np.ndarray]] = {"normal": [], "reduce": []}
        h = image_hw
        for cell in darts_cell_plan(C, layers):
            red, c = cell["reduction"], cell["C"]
            t = np.zeros((14, len(DARTS_OPS), 3))
            e = 0
            for i in range(4):
                for j in range(i + 2):
                    stride = 2 if red and j < 2 else 1
                    hh = h if j < 2 else (h // 2 if red else h)
                    t[e] = [_snas_op(op, c, hh, stride) for op in DARTS_OPS]
                    e += 1
            tabs["reduce" if red else "normal"].append(t)
            h = h // 2 if red else h
        return {k: np.stack(v) for k, v in tabs.items()}
    raise ValueError(f"snas_op_costs supports 'nb201' and 'darts', got {space!r}")


def cell_costs(space: Any, arch: Any, C: int | None = None, N: int = 5,
               input_shape: tuple[int, int, int] = (32, 32, 3)) -> dict[str, np.ndarray]:
    """Per cell position params / FLOPs (millions) of each node (NB101: f32[9, n_nodes], the
    node's op plus the input projection it receives; the output node holds the output
    projection) or each edge (NB201: f32[3N, 6]) — the ReNAS feature matrices."""
    hw = input_shape[0] * input_shape[1]
    space = _space_name(space)
    if space == "nb201":
        ops = _nb201_ops(arch)
        pos = _nb201_positions(C or 16, N, hw)
        P = np.array([[_nb201_edge(op, c, hh)[0] for op in ops] for c, hh in pos])
        F = np.array([[_nb201_edge(op, c, hh)[1] for op in ops] for c, hh in pos])
    elif space == "nb101":
        m, ops = _nb101_spec(arch)
        cells = [_nb101_cell(m, ops, a, b, hh) for a, b, hh in _nb101_layout(C or 128, hw)]
        P = np.array([[q for q, _ in c] for c in cells])
        F = np.array([[r for _, r in c] for c in cells])
    else:
        raise ValueError(f"cell_costs supports 'nb201' and 'nb101', got {space!r}")
    return {"params": (P / 1e6).astype(np.float32), "flops": (F / 1e6).astype(np.float32)}


def count_flops(space: Any, arch: Any, **kw: Any) -> float:
    """FLOPs (M multiply-adds) of the discrete network; see :func:`arch_cost`."""
    return arch_cost(space, arch, **kw)["flops_M"]


# ----------------------------------------------------------------------------- conv-only
# The ReNAS feature-tensor convention (Xu et al., CVPR 2021): FLOPs are the multiply-adds of
# the convolutions only, params the conv + BN weights; pooling, skip and 'none' cost 0.
def conv_edge_cost_nb201(op: str, c: int, hw: int) -> tuple[float, float]:
    """(FLOPs, params) of one NB201 edge op at ``c`` channels on ``hw x hw`` pixels, conv-only
    convention (ReLU-Conv-BN; pools, skip and 'none' free)."""
    k = {"nor_conv_3x3": 3, "nor_conv_1x1": 1}.get(op, 0)
    if not k:
        return 0.0, 0.0
    return float(c * c * k * k * hw * hw), float(c * c * k * k + 2 * c)


def conv_node_costs_nb101(matrix: np.ndarray, ops: Any, in_ch: int, out_ch: int,
                          hw: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex (FLOPs, params) of one NB101 cell, conv-only convention: the 1x1
    projection of the cell input a vertex receives plus the vertex's own conv (channels by
    the rule of the official ``nasbench`` code)."""
    from jnas.cells_nb101 import nb101_vertex_channels
    n = matrix.shape[0]
    ch = nb101_vertex_channels(in_ch, out_ch, matrix)
    flops, params = np.zeros(n), np.zeros(n)
    area = hw * hw
    for v in range(1, n):
        c = ch[v]
        if matrix[0, v]:  # 1x1 conv-bn-relu projection of the cell input
            flops[v] += in_ch * c * area
            params[v] += in_ch * c + 2 * c
        k = {"conv3x3-bn-relu": 3, "conv1x1-bn-relu": 1}.get(ops[v], 0)
        if k:
            flops[v] += c * c * k * k * area
            params[v] += c * c * k * k + 2 * c
    return flops, params
