"""GDAS's sampled-op NAS-Bench-201 supernet: on each edge only the sampled op is computed.

GDAS (Dong & Yang, "Searching for a Robust Neural Architecture in Four GPU Hours", CVPR 2019,
arXiv 1910.04465; xautodl ``NAS201SearchCell.forward_gdas`` in
``xautodl/models/cell_searchs/search_cells.py``) draws one op per edge per step,
``h = one_hot(argmax) - sg(p) + p`` (straight-through Gumbel-softmax, ``p`` the soft sample), and
evaluates an edge as

    sum_k ( h_k * op_k(x)   if k == argmax   else   h_k )

so only the selected op runs; every unselected op contributes the scalar ``h_k`` (value 0,
gradient ``sum(dL/d node)``), which is how α gets a gradient through ops that were not run.
Here the selected op is chosen with ``jax.lax.switch`` (only that branch executes); the index is
``argmax(h)`` of the weights passed in (their forward value is exactly one-hot), so the module
takes the same ``edge_weights`` as :class:`jnas.cells.NB201Supernet` and has the same parameter
layout (``nb201_subnet_params`` and checkpoints work unchanged). XLA's cost analysis counts a
conditional as its most expensive branch; ``fixed_ops`` (static op indices per edge) resolves
the selection at trace time, so a compiled step's FLOPs are those executed for that sample.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jnas.cells_darts import check_nhwc
from jnas.layers import avg_pool, batch_norm_train, compute_dtype, nb201_macro, weighted
from jnas.spaces import NB201_EDGES

__all__ = ["NB201SampledSupernet", "sampled_edge"]

_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal", batch_axis=(0,))


def _relu_conv_bn(h: jax.Array, kernel: jax.Array) -> jax.Array:
    k = kernel.shape[0]
    p = (k - 1) // 2
    y = jax.lax.conv_general_dilated(jax.nn.relu(h), kernel.astype(h.dtype), (1, 1),
                                     ((p, p), (p, p)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    c = y.shape[-1]
    return batch_norm_train(y, jnp.ones((c,), jnp.float32), jnp.zeros((c,), jnp.float32),
                            1e-5)[0]


def sampled_edge(h: jax.Array, w: jax.Array, k1: jax.Array, k3: jax.Array,
                 fixed: int | None = None) -> jax.Array:
    """One GDAS edge over the NB201 ops (``none, skip, conv1x1, conv3x3, avg_pool``):
    ``h_i * op_i(x) + sum_{k != i} h_k`` with ``i = argmax(w)`` (xautodl ``forward_gdas``);
    ``fixed``: the index ``i`` as a static int (then ``w`` must be one-hot at ``i``)."""
    branches = (lambda x: jnp.zeros_like(x), lambda x: x,
                lambda x: _relu_conv_bn(x, k1).astype(x.dtype),
                lambda x: _relu_conv_bn(x, k3).astype(x.dtype),
                lambda x: avg_pool(x).astype(x.dtype))
    if fixed is None:
        idx = jnp.argmax(w)
        y = jax.lax.switch(idx, branches, h)
    else:
        idx = int(fixed)
        y = branches[idx](h)
    others = jnp.sum(jnp.where(jnp.arange(w.shape[0]) == idx, 0.0, w))
    return weighted(w[idx], y) + others.astype(y.dtype)


class _Kernels(nn.Module):
    n: int
    k: int
    C: int

    @nn.compact
    def __call__(self) -> jax.Array:
        return self.param("kernel", _kernel_init, (self.n, self.k, self.k, self.C, self.C),
                          jnp.float32)


class _EdgeGroup(nn.Module):
    n: int
    C: int

    @nn.compact
    def __call__(self) -> tuple[jax.Array, jax.Array]:
        return (_Kernels(self.n, 1, self.C, name="conv_1x1")(),
                _Kernels(self.n, 3, self.C, name="conv_3x3")())


class _SampledCell(nn.Module):
    C: int
    fixed_ops: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> tuple[jax.Array, None]:
        nodes = [x]
        acc: dict[int, Any] = {1: None, 2: None, 3: None}
        for src in range(3):
            edges = [e for e, (_, j) in enumerate(NB201_EDGES) if j == src]
            k1, k3 = _EdgeGroup(len(edges), self.C, name=f"edges_from_{src}")()
            for k, e in enumerate(edges):
                to = NB201_EDGES[e][0]
                fixed = None if self.fixed_ops is None else self.fixed_ops[e]
                y = sampled_edge(nodes[src], w[e], k1[k], k3[k], fixed)
                acc[to] = y if acc[to] is None else acc[to] + y
            nodes.append(acc[src + 1])
        return acc[3], None


class NB201SampledSupernet(nn.Module):
    """The NB201 search supernet with GDAS's sampled-op edges (:func:`sampled_edge`).

    Same macro network, arguments and parameter tree as :class:`jnas.cells.NB201Supernet`;
    ``edge_weights`` (f32[6, 5] shared by all cells, as xautodl, or f32[3N, 6, 5]) must be
    one-hot in value (straight-through hard samples, :func:`jnas.relax.hard_gumbel`).
    ``fixed_ops``: static op index per edge (6 ints) or None (selection by ``lax.switch``).
    """

    C: int = 16
    N: int = 5
    num_classes: int = 10
    dtype: Any = None
    fixed_ops: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, edge_weights: Any, train: bool = True) -> jax.Array:
        check_nhwc(x)
        dt = compute_dtype(self.dtype)
        w = jnp.asarray(edge_weights["cell"] if isinstance(edge_weights, dict)
                        else edge_weights)
        if w.shape == (6, 5):
            w = jnp.broadcast_to(w, (3 * self.N, 6, 5))
        if w.shape != (3 * self.N, 6, 5):
            raise ValueError(f"edge weights must have shape (6, 5) or ({3 * self.N}, 6, 5); "
                             f"got {tuple(w.shape)}")
        if self.fixed_ops is not None and np.shape(self.fixed_ops) != (6,):
            raise ValueError(f"fixed_ops must be 6 op indices, got {self.fixed_ops!r}")

        def stage(c: int, i: int, x: jax.Array) -> jax.Array:
            scan = nn.scan(_SampledCell, variable_axes={"params": 0, "batch_stats": 0},
                           split_rngs={"params": True}, in_axes=0, length=self.N)
            return scan(c, self.fixed_ops, name=f"stage_{i}")(x, w[i * self.N:(i + 1) * self.N])[0]
        return nb201_macro(x, self.C, self.N, self.num_classes, train, dt, stage)
