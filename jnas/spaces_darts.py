"""The DARTS search space (Liu et al., ICLR 2019, arXiv 1806.09055).

A genotype has a normal and a reduction cell, each 4 intermediate nodes with two
``(op, input)`` pairs, ops from 8 candidates (:data:`DARTS_OPS`). A cell may also take the
*edge-all* form of SNAS (Xie et al., ICLR 2019; ``genotype_edge_all`` of its code): 14 pairs,
every edge with its op (``none`` = no edge), node i with its i + 2 inputs. Graph form (DARTS
form only): per cell, 2 input nodes, 8 op nodes (one per ``(op, input)`` pair) and the concat
output node (11 nodes); the two cells are block-diagonal in one 22-node graph with separate
node types for normal and reduction cells. Re-exported by :mod:`jnas.spaces`.
"""
from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np

from jnas.rng import np_rng
from jnas.space_base import ArchParsing, dedup_by

__all__ = ["DARTS_OPS", "DARTS_CELL_NODE_TYPES", "DARTS_NODE_TYPES", "DARTS_STEPS",
           "DARTSGenotype", "DARTSSpace", "DARTS", "node_slices"]

DARTS_OPS: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                              "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
DARTS_CELL_NODE_TYPES: tuple[str, ...] = ("input0", "input1", *DARTS_OPS, "output")
DARTS_NODE_TYPES: tuple[str, ...] = (tuple(f"normal:{t}" for t in DARTS_CELL_NODE_TYPES)
                                     + tuple(f"reduce:{t}" for t in DARTS_CELL_NODE_TYPES))
DARTS_STEPS = 4  # intermediate nodes per cell
_DARTS_SAMPLE_OPS = DARTS_OPS[1:]  # discrete genotypes never use 'none'
_DARTS_STEPS = DARTS_STEPS
_EDGES = sum(i + 2 for i in range(DARTS_STEPS))  # 14 supernet edges per cell


Cell = tuple[tuple[str, int], ...]


def node_slices(n_pairs: int) -> tuple[tuple[int, int], ...]:
    """``[start, end)`` of each intermediate node's pairs in a cell of ``n_pairs`` pairs: 8
    (the DARTS form, 2 inputs per node) or 14 (the edge-all form of SNAS, every edge: node i
    has its i + 2 inputs); ``ValueError`` otherwise."""
    if n_pairs == 2 * _DARTS_STEPS:
        sizes = [2] * _DARTS_STEPS
    elif n_pairs == _EDGES:
        sizes = [i + 2 for i in range(_DARTS_STEPS)]
    else:
        raise ValueError(f"wrong edge count: a DARTS cell needs {2 * _DARTS_STEPS} (op, input) "
                         f"pairs (2 per intermediate node) or {_EDGES} (every edge, the SNAS "
                         f"form), got {n_pairs}")
    ends = np.cumsum(sizes)
    return tuple((int(e - n), int(e)) for n, e in zip(sizes, ends))


def _check_cell(cell: Any, which: str) -> Cell:
    try:
        pairs = tuple((str(op), int(j)) for op, j in cell)
    except (TypeError, ValueError) as e:
        raise ValueError(f"DARTS {which} cell must be a list of (op, input) pairs, got "
                         f"{cell!r}") from e
    try:
        slices = node_slices(len(pairs))
    except ValueError as e:
        raise ValueError(f"{which} cell: {e}") from None
    for node, (a, b) in enumerate(slices):
        for op, j in pairs[a:b]:
            if op not in DARTS_OPS:
                raise ValueError(f"unknown DARTS op {op!r} in the {which} cell; valid ops: "
                                 f"{', '.join(DARTS_OPS)}")
            if not 0 <= j < node + 2:
                raise ValueError(f"{which} cell: intermediate node {node} (state {node + 2}) can "
                                 f"only take inputs 0..{node + 1}, got {j}")
        inputs = [j for _, j in pairs[a:b]]
        if len(set(inputs)) != len(inputs):
            raise ValueError(f"{which} cell: the inputs of intermediate node {node} must be "
                             f"different, got {inputs}")
    return pairs


def _check_concat(concat: Any, which: str) -> tuple[int, ...]:
    try:
        c = tuple(int(x) for x in concat)
    except (TypeError, ValueError) as e:
        raise ValueError(f"DARTS {which}_concat must be a list of ints, got {concat!r}") from e
    if not c or len(set(c)) != len(c) or any(not 2 <= x < 2 + _DARTS_STEPS for x in c):
        raise ValueError(f"DARTS {which}_concat must be distinct states in 2..{_DARTS_STEPS + 1}, "
                         f"got {list(c)}")
    return c


@dataclasses.dataclass(frozen=True)
class DARTSGenotype:
    """A DARTS genotype (Liu et al., ICLR 2019): normal and reduction cells.

    Each cell is 8 ``(op, input)`` pairs, 2 per intermediate node in node order, or 14 (the
    SNAS edge-all form: node i has its i + 2 inputs, each once, ``none`` = no edge; see
    :func:`node_slices`); inputs 0, 1 are the two previous cells' outputs, 2.. earlier
    intermediate nodes. The cell output is the concat of the ``*_concat`` states. Construction
    validates (``ValueError`` naming the op, the pair count or the bad input index). The graph
    encodings and the mutations of :class:`DARTSSpace` are defined for the 8-pair form.
    """

    normal: Cell
    reduce: Cell
    normal_concat: tuple[int, ...] = (2, 3, 4, 5)
    reduce_concat: tuple[int, ...] = (2, 3, 4, 5)

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", _check_cell(self.normal, "normal"))
        object.__setattr__(self, "reduce", _check_cell(self.reduce, "reduce"))
        object.__setattr__(self, "normal_concat", _check_concat(self.normal_concat, "normal"))
        object.__setattr__(self, "reduce_concat", _check_concat(self.reduce_concat, "reduce"))

    def to_string(self) -> str:
        """The DARTS ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5],
        reduce=[...], reduce_concat=[2, 3, 4, 5])`` repr."""
        def f(cell: Cell) -> str:
            return "[" + ", ".join(f"({op!r}, {j})" for op, j in cell) + "]"

        return (f"Genotype(normal={f(self.normal)}, normal_concat={list(self.normal_concat)}, "
                f"reduce={f(self.reduce)}, reduce_concat={list(self.reduce_concat)})")

    @classmethod
    def from_string(cls, s: str) -> DARTSGenotype:
        """Parses the repr (also ``normal_concat=range(2, 6)`` as in the DARTS repository)
        without ``eval``; ``ValueError`` on malformed text."""
        if not isinstance(s, str):
            raise ValueError(f"DARTS genotype string expected, got {type(s).__name__}")
        try:
            tree = ast.parse(s.strip(), mode="eval").body
        except SyntaxError as e:
            raise ValueError(f"malformed DARTS genotype string {s!r}: {e.msg}") from e
        if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
                and tree.func.id == "Genotype" and not tree.args):
            raise ValueError(f"DARTS genotype string must look like 'Genotype(normal=[...], "
                             f"normal_concat=[...], reduce=[...], reduce_concat=[...])', got {s!r}")
        kw: dict[str, Any] = {}
        for k in tree.keywords:
            v = k.value
            if (isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "range"
                    and not v.keywords):
                kw[k.arg] = list(range(*[ast.literal_eval(a) for a in v.args]))
            else:
                try:
                    kw[k.arg] = ast.literal_eval(v)
                except ValueError as e:
                    raise ValueError(f"DARTS genotype field {k.arg!r} is not a literal in "
                                     f"{s!r}") from e
        fields = {"normal", "reduce", "normal_concat", "reduce_concat"}
        if set(kw) - fields or not {"normal", "reduce"} <= set(kw):
            raise ValueError(f"DARTS genotype fields must be {sorted(fields)} (normal and reduce "
                             f"required), got {sorted(kw)}")
        return cls(**kw)

    def nodes(self, which: str) -> tuple[Cell, ...]:
        """The pairs of each intermediate node of the ``which`` ('normal' or 'reduce') cell."""
        cell = getattr(self, which)
        return tuple(cell[a:b] for a, b in node_slices(len(cell)))

    @property
    def edge_all(self) -> bool:
        """Whether a cell has the 14-pair SNAS edge-all form."""
        return len(self.normal) == _EDGES or len(self.reduce) == _EDGES

    def canonical(self) -> DARTSGenotype:
        """The same genotype with each node's pairs sorted (the cell computes the same)."""
        def canon(cell: Cell) -> Cell:
            out: list[tuple[str, int]] = []
            for a, b in node_slices(len(cell)):
                out += sorted(cell[a:b], key=lambda p: (p[1], p[0]))
            return tuple(out)
        return DARTSGenotype(canon(self.normal), canon(self.reduce),
                             tuple(sorted(self.normal_concat)), tuple(sorted(self.reduce_concat)))

    def to_cell_graphs(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-cell node-op graphs ``(adj f32[2, 11, 11], ops f32[2, 11, 11])`` (normal,
        reduce): nodes 0, 1 inputs, 2..9 the op of each pair, 10 the concat output; one-hot over
        ``DARTS_CELL_NODE_TYPES``. ``ValueError`` for an edge-all (14-pair) cell."""
        if self.edge_all:
            raise ValueError("the DARTS graph encoding is defined for 8-pair cells (2 inputs per "
                             "node), not for the 14-pair SNAS edge-all form")
        adjs, opss = [], []
        for cell, concat in ((self.normal, self.normal_concat), (self.reduce, self.reduce_concat)):
            adj = np.zeros((11, 11), np.float32)
            ops = np.zeros((11, len(DARTS_CELL_NODE_TYPES)), np.float32)
            ops[0, 0] = ops[1, 1] = ops[10, -1] = 1.0
            for p, (op, j) in enumerate(cell):
                ops[2 + p, 2 + DARTS_OPS.index(op)] = 1.0
                if j < 2:
                    adj[j, 2 + p] = 1.0
                else:  # state j = intermediate node j-2 = sum of its two op nodes
                    adj[2 + 2 * (j - 2), 2 + p] = adj[3 + 2 * (j - 2), 2 + p] = 1.0
            for c in concat:
                adj[2 + 2 * (c - 2), 10] = adj[3 + 2 * (c - 2), 10] = 1.0
            adjs.append(adj)
            opss.append(ops)
        return np.stack(adjs), np.stack(opss)

    def to_graph(self) -> tuple[np.ndarray, np.ndarray]:
        """``(adj f32[22, 22], ops f32[22, 22])``: the two cell graphs of :meth:`to_cell_graphs`
        block-diagonal (normal nodes 0..10, reduce 11..21), node types ``DARTS_NODE_TYPES``
        (normal and reduce types kept apart)."""
        a, o = self.to_cell_graphs()
        adj = np.zeros((22, 22), np.float32)
        ops = np.zeros((22, 2 * o.shape[2]), np.float32)
        adj[:11, :11], adj[11:, 11:] = a[0], a[1]
        ops[:11, :o.shape[2]], ops[11:, o.shape[2]:] = o[0], o[1]
        return adj, ops

    @classmethod
    def from_graph(cls, adj: Any, ops: Any) -> DARTSGenotype:
        """Inverse of :meth:`to_graph`: the genotype of a ``(adj f32[22, 22], ops
        f32[22, 22])`` graph; ``ValueError`` if it is not one :meth:`to_graph` makes."""
        adj, ops = np.asarray(adj), np.asarray(ops)
        k = len(DARTS_CELL_NODE_TYPES)
        if adj.shape != (22, 22) or ops.shape != (22, 2 * k):
            raise ValueError(f"a DARTS graph is (adj [22, 22], ops [22, {2 * k}]), got "
                             f"{adj.shape} and {ops.shape}")
        cells, concats = [], []
        for c in range(2):
            a = adj[11 * c:11 * c + 11, 11 * c:11 * c + 11]
            o = ops[11 * c:11 * c + 11, k * c:k * c + k]
            pairs = []
            for p in range(8):
                t = int(o[2 + p].argmax()) - 2
                if o[2 + p].sum() != 1 or not 0 <= t < len(DARTS_OPS):
                    raise ValueError(f"DARTS graph op node {2 + p} of cell {c} is not one-hot "
                                     "over the ops")
                src = [j for j in range(10) if a[j, 2 + p]]
                if src in ([0], [1]):
                    j = src[0]
                elif len(src) == 2 and src[0] % 2 == 0 and src[1] == src[0] + 1:
                    j = (src[0] - 2) // 2 + 2
                else:
                    raise ValueError(f"DARTS graph: op node {2 + p} of cell {c} has inputs "
                                     f"{src}, expected one input or one intermediate state")
                pairs.append((DARTS_OPS[t], j))
            cells.append(tuple(pairs))
            concats.append(tuple((j - 2) // 2 + 2 for j in range(2, 10, 2) if a[j, 10]))
        return cls(cells[0], cells[1], concats[0], concats[1])


class DARTSSpace(ArchParsing):
    """The DARTS space (Liu et al., ICLR 2019). ``num_edges`` = 14 supernet edges per cell."""

    name = "darts"
    ops = DARTS_OPS
    node_types = DARTS_NODE_TYPES
    steps = _DARTS_STEPS
    num_edges = sum(i + 2 for i in range(_DARTS_STEPS))
    size = None
    graph_size = 22
    num_node_types = len(DARTS_NODE_TYPES)
    arch_type = DARTSGenotype

    def __repr__(self) -> str:
        return "DARTSSpace()"

    def _recheck(self, arch: DARTSGenotype) -> DARTSGenotype:
        return DARTSGenotype(arch.normal, arch.reduce, arch.normal_concat, arch.reduce_concat)

    def is_valid(self, arch: Any) -> bool:
        """Whether :meth:`validate` accepts ``arch``."""
        try:
            self.validate(arch)
            return True
        except ValueError:
            return False

    def enumerate(self) -> list[DARTSGenotype]:
        """Not possible (``ValueError``): the space is too large."""
        raise ValueError("the DARTS space (~1e18 genotypes) cannot be enumerated; use sample()")

    @staticmethod
    def _sample_cell(rng: np.random.Generator) -> Cell:
        cell: list[tuple[str, int]] = []
        for node in range(_DARTS_STEPS):
            inputs = sorted(int(x) for x in rng.choice(node + 2, size=2, replace=False))
            for j in inputs:
                cell.append((_DARTS_SAMPLE_OPS[int(rng.integers(len(_DARTS_SAMPLE_OPS)))], j))
        return tuple(cell)

    def sample(self, key: jax.Array | int, n: int = 1) -> list[DARTSGenotype]:
        """``n`` genotypes: per node 2 distinct inputs uniform over the earlier states, each op
        uniform over the 7 non-``none`` ops; both cells independent; concat (2, 3, 4, 5)."""
        rng = np_rng(key)
        return [DARTSGenotype(self._sample_cell(rng), self._sample_cell(rng)) for _ in range(n)]

    @staticmethod
    def _changes(g: DARTSGenotype) -> list[DARTSGenotype]:
        if g.edge_all:
            raise ValueError("DARTS mutations are defined for 8-pair cells (2 inputs per node), "
                             "not for the 14-pair SNAS edge-all form")
        out = []
        for which in ("normal", "reduce"):
            cell = getattr(g, which)
            for p, (op, j) in enumerate(cell):
                node, other = p // 2, cell[p ^ 1][1]
                for o in _DARTS_SAMPLE_OPS:
                    if o != op:
                        out.append(dataclasses.replace(
                            g, **{which: cell[:p] + ((o, j),) + cell[p + 1:]}))
                for k in range(node + 2):
                    if k not in (j, other):
                        out.append(dataclasses.replace(
                            g, **{which: cell[:p] + ((op, k),) + cell[p + 1:]}))
        return out

    def mutate(self, key: jax.Array | int, arch: DARTSGenotype | str) -> DARTSGenotype:
        """One uniformly chosen single change: one pair's op (to another non-``none`` op) or
        its input (to another state not already feeding that node)."""
        g = self.parse(arch)
        changes = self._changes(g)
        return changes[int(np_rng(key).integers(len(changes)))]

    def neighbours(self, arch: DARTSGenotype | str) -> list[DARTSGenotype]:
        """Every genotype one change away (op or input of one pair), without repeats."""
        g = self.parse(arch)
        me = g.canonical()
        return [c for c in dedup_by(self._changes(g), self.dedup_key) if c.canonical() != me]

    def dedup_key(self, arch: DARTSGenotype) -> DARTSGenotype:
        """The identity used by :meth:`dedup` (the canonical genotype)."""
        return arch.canonical()

    def dedup(self, archs: Iterable[DARTSGenotype]) -> list[DARTSGenotype]:
        """``archs`` without repeats up to the order of the two pairs of a node."""
        return dedup_by(archs, self.dedup_key)


DARTS = DARTSSpace()
