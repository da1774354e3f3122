"""NAS-Bench-101 network (Ying et al., ICML 2019, arXiv 1902.09635), flax.linen, NHWC.

Stem conv3x3(128)-BN-ReLU; 3 stacks x 3 cells; 2x2 max-pool and doubled channels between
stacks; global average pool; linear. Inside a cell, the channel-splitting rule of the
official code (``compute_vertex_channels``): the output is the concatenation of the interior
nodes that feed it (channels split as evenly as possible), plus a 1x1 projection of the
input when the input feeds the output; interior nodes fed by the input get a 1x1
projection of it, other inputs are truncated to the node's channel count. Identical cells
of a stack are scanned.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jnas.cells_darts import check_nhwc
from jnas.layers import BatchNorm, conv, max_pool
from jnas.spaces import NB101

__all__ = ["NB101Network", "nb101_vertex_channels", "nb101_spec"]


def nb101_spec(arch: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    """(pruned adjacency int[n, n], ops) of an ``NB101Arch`` or its string."""
    if isinstance(arch, str):
        arch = NB101.parse(arch)
    if hasattr(arch, "pruned"):
        arch = arch.pruned()
    m = np.asarray(arch.matrix, int)
    ops = tuple(arch.ops)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or len(ops) != m.shape[0] or m.shape[0] < 2:
        raise ValueError(f"NB101 arch needs a square adjacency and one op per node, got "
                         f"matrix {m.shape} and {len(ops)} ops")
    return m, ops


def nb101_vertex_channels(c_in: int, c_out: int, matrix: np.ndarray) -> list[int]:
    """Channels of every node (official ``compute_vertex_channels``)."""
    n = matrix.shape[0]
    ch = [0] * n
    ch[0], ch[-1] = c_in, c_out
    if n == 2:
        return ch
    in_deg = matrix[1:].sum(axis=0)
    interior, corr = divmod(c_out, int(in_deg[n - 1]))
    for v in range(1, n - 1):
        if matrix[v, n - 1]:
            ch[v] = interior + (1 if corr else 0)
            corr -= 1 if corr else 0
    for v in range(n - 3, 0, -1):
        if not matrix[v, n - 1]:
            for dst in range(v + 1, n - 1):
                if matrix[v, dst]:
                    ch[v] = max(ch[v], ch[dst])
    return ch


class _ConvBNReLU(nn.Module):
    features: int
    kernel: int

    @nn.compact
    def __call__(self, x, train):
        x = conv(self.features, self.kernel)(x)
        return nn.relu(BatchNorm(self.features, momentum=0.003)(x, train))


class _NB101Cell(nn.Module):
    matrix: tuple
    ops: tuple
    c_out: int
    train: bool

    @nn.compact
    def __call__(self, x, _=None):
        m = np.asarray(self.matrix)
        n = m.shape[0]
        ch = nb101_vertex_channels(x.shape[-1], self.c_out, m)
        t = [x]
        final = []
        for v in range(1, n - 1):
            ins = [t[s][..., :ch[v]] for s in range(1, v) if m[s, v]]
            if m[0, v]:
                ins.append(_ConvBNReLU(ch[v], 1, name=f"proj_{v}")(x, self.train))
            h = sum(ins[1:], ins[0])
            op = self.ops[v]
            if op == "maxpool3x3":
                h = max_pool(h, 3, 1, 1)
            else:
                k = 3 if op.startswith("conv3x3") else 1
                h = _ConvBNReLU(ch[v], k, name=f"node_{v}")(h, self.train)
            t.append(h)
            if m[v, n - 1]:
                final.append(h)
        if not final:
            return _ConvBNReLU(self.c_out, 1, name="proj_out")(x, self.train), None
        out = jnp.concatenate(final, axis=-1) if len(final) > 1 else final[0]
        if m[0, n - 1]:
            out = out + _ConvBNReLU(self.c_out, 1, name="proj_out")(x, self.train)
        return out, None


class NB101Network(nn.Module):
    """The NAS-Bench-101 network of one cell (``arch``: ``NB101Arch`` or its string).

    ``__call__(x, *, train)``: ``x`` an NHWC batch, ``train`` required (batch statistics or
    the running averages)."""

    arch: Any
    C: int = 128
    num_stacks: int = 3
    cells_per_stack: int = 3
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_nhwc(x)
        m, ops = nb101_spec(self.arch)
        mt = tuple(map(tuple, m.tolist()))
        x = _ConvBNReLU(self.C, 3, name="stem")(x, train)
        c = self.C
        for s in range(self.num_stacks):
            k = 0
            if s > 0:
                x = nn.max_pool(x, (2, 2), (2, 2), "SAME")
                c *= 2
                x, _ = _NB101Cell(mt, ops, c, train, name=f"stack_{s}_first")(x)
                k = 1
            rest = self.cells_per_stack - k
            if rest > 0:
                scan = nn.scan(_NB101Cell, variable_axes={"params": 0, "batch_stats": 0},
                               split_rngs={"params": True}, length=rest)
                x, _ = scan(mt, ops, c, train, name=f"stack_{s}")(x, None)
        return nn.Dense(self.num_classes, name="classifier")(x.mean(axis=(1, 2)))
