"""Search spaces: NAS-Bench-201, DARTS and NAS-Bench-101 architectures as small immutable values.

Each space has one architecture value type (frozen, hashable, ``to_string``/``from_string``,
``to_graph``) and one space object (:data:`NB201`, :data:`DARTS`, :data:`NB101`, or
:func:`get_space`) with ``parse``, ``validate``, key-driven ``sample``, ``mutate``,
``neighbours``, ``dedup`` and the graph sizes used for GCN batching.

* NAS-Bench-201 (Dong & Yang, ICLR 2020): 4-node cell, 6 edges, 5 ops, 15,625 cells.
* DARTS (Liu et al., ICLR 2019): normal + reduction cell, each 4 intermediate nodes with two
  ``(op, input)`` pairs, ops from 8 candidates.
* NAS-Bench-101 (Ying et al., ICML 2019): see :mod:`jnas.spaces_nb101`.

Graph form (``arch.to_graph() -> (adj f32[n, n], ops f32[n, k])``, ``adj[i, j] = 1`` for an
edge i->j): ops live on nodes. NB201 cells are turned into node-op graphs by the standard
transform (every edge becomes a node): input, the 6 edge-op nodes (``NB201_EDGES`` order),
output — 8 nodes. A DARTS genotype becomes, per cell, 2 input nodes, 8 op nodes (one per
``(op, input)`` pair) and the concat output node (11 nodes); the two cells are block-diagonal
in one 22-node graph with separate node types for normal and reduction cells.
"""
from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import jax
import numpy as np

from jnas.rng import np_rng
from jnas.space_base import ArchParsing
from jnas.spaces_nb101 import (NB101, NB101_MAX_EDGES, NB101_MAX_NODES, NB101_NODE_TYPES,
                               NB101_OPS, NB101Arch, NB101Space, hash_module)

__all__ = [
    "NB201_OPS", "NB201_EDGES", "NB201_NODE_TYPES", "DARTS_OPS", "DARTS_NODE_TYPES",
    "NB101_OPS", "NB101_NODE_TYPES", "NB101_MAX_NODES", "NB101_MAX_EDGES",
    "NB201Arch", "DARTSGenotype", "NB101Arch", "NB201Space", "DARTSSpace", "NB101Space",
    "NB201", "DARTS", "NB101", "SPACES", "get_space", "hash_module", "SearchSpace",
]

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                              "avg_pool_3x3")
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NB201_NODE_TYPES: tuple[str, ...] = ("input", *NB201_OPS, "output")

DARTS_OPS: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                              "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
DARTS_CELL_NODE_TYPES: tuple[str, ...] = ("input0", "input1", *DARTS_OPS, "output")
DARTS_NODE_TYPES: tuple[str, ...] = (tuple(f"normal:{t}" for t in DARTS_CELL_NODE_TYPES)
                                     + tuple(f"reduce:{t}" for t in DARTS_CELL_NODE_TYPES))
_DARTS_SAMPLE_OPS = DARTS_OPS[1:]  # discrete genotypes never use 'none'
_DARTS_STEPS = 4


class SearchSpace(Protocol):
    """What every space object provides (see ``docs/CONTRACT.md``)."""

    name: str
    ops: tuple[str, ...]
    num_edges: int
    size: int | None
    graph_size: int
    num_node_types: int

    def parse(self, s: Any) -> Any: ...
    def validate(self, arch: Any) -> Any: ...
    def sample(self, key: jax.Array | int, n: int = 1) -> list[Any]: ...
    def mutate(self, key: jax.Array | int, arch: Any) -> Any: ...
    def neighbours(self, arch: Any) -> list[Any]: ...
    def dedup(self, archs: Iterable[Any]) -> list[Any]: ...


def _dedup_by(archs: Iterable[Any], key) -> list[Any]:
    seen: set = set()
    out = []
    for a in archs:
        k = key(a)
        if k not in seen:
            seen.add(k)
            out.append(a)
    return out


# =========================================================================== NAS-Bench-201
@dataclasses.dataclass(frozen=True)
class NB201Arch:
    """One NAS-Bench-201 cell (Dong & Yang, ICLR 2020): 6 op names in ``NB201_EDGES`` order.

    Construction validates (``ValueError`` naming an unknown op or a wrong edge count).
    """

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.ops, str) or not isinstance(self.ops, Iterable):
            raise ValueError(f"NB201Arch.ops must be a sequence of 6 op names, got {self.ops!r}; "
                             "use NB201Arch.from_string for the '|op~0|+...' form")
        ops = tuple(self.ops)
        if len(ops) != len(NB201_EDGES):
            raise ValueError(f"wrong edge count: an NB201 cell has 6 edges, got {len(ops)} ops")
        for e, op in enumerate(ops):
            if op not in NB201_OPS:
                raise ValueError(f"unknown NB201 op {op!r} on edge {NB201_EDGES[e]} (to, from); "
                                 f"valid ops: {', '.join(NB201_OPS)}")
        object.__setattr__(self, "ops", ops)

    # -- strings
    def to_string(self) -> str:
        """The standard ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` string."""
        nodes = []
        for to in (1, 2, 3):
            nodes.append("|" + "|".join(f"{self.ops[e]}~{frm}" for e, (t, frm)
                                        in enumerate(NB201_EDGES) if t == to) + "|")
        return "+".join(nodes)

    @classmethod
    def from_string(cls, s: str) -> NB201Arch:
        """Parses the standard string; ``ValueError`` naming the problem on bad input."""
        if not isinstance(s, str):
            raise ValueError(f"NB201 arch string expected, got {type(s).__name__}")
        text = s.strip()
        groups = text.split("+")
        if len(groups) != 3:
            raise ValueError(f"wrong edge count in {s!r}: an NB201 string has 3 nodes separated "
                             "by '+', e.g. |nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+"
                             "|skip_connect~0|none~1|none~2|")
        ops: list[str] = []
        for to, g in enumerate(groups, start=1):
            if not (g.startswith("|") and g.endswith("|")) or len(g) < 2:
                raise ValueError(f"malformed node {to} {g!r} in {s!r}: expected '|op~j|...|'")
            items = g[1:-1].split("|")
            if len(items) != to:
                raise ValueError(f"wrong edge count in {s!r}: node {to} needs {to} incoming "
                                 f"edges, got {len(items)} ({g!r})")
            for frm, item in enumerate(items):
                op, sep, src = item.rpartition("~")
                if not sep or src != str(frm):
                    raise ValueError(f"bad edge {item!r} of node {to} in {s!r}: expected "
                                     f"'op~{frm}'")
                if op not in NB201_OPS:
                    raise ValueError(f"unknown NB201 op {op!r} in {s!r}; valid ops: "
                                     f"{', '.join(NB201_OPS)}")
                ops.append(op)
        return cls(tuple(ops))

    # -- integer forms
    @property
    def op_ids(self) -> tuple[int, ...]:
        """Indices into ``NB201_OPS``, in edge order."""
        return tuple(NB201_OPS.index(o) for o in self.ops)

    @classmethod
    def from_op_ids(cls, ids: Sequence[int]) -> NB201Arch:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < len(NB201_OPS)]
        if bad:
            raise ValueError(f"NB201 op ids must be in 0..4, got {bad}")
        return cls(tuple(NB201_OPS[i] for i in ids))

    def to_index(self) -> int:
        """Space-enumeration index ``sum(op_id[e] * 5**e)`` (NOT the benchmark row; see
        ``jnas.benchmarks.NB201Bench.index_of``)."""
        return sum(i * 5 ** e for e, i in enumerate(self.op_ids))

    @classmethod
    def from_index(cls, index: int) -> NB201Arch:
        """Inverse of :meth:`to_index`; ``ValueError`` outside 0..15624."""
        index = int(index)
        if not 0 <= index < 5 ** 6:
            raise ValueError(f"NB201 space index must be in 0..15624, got {index}")
        return cls.from_op_ids([(index // 5 ** e) % 5 for e in range(6)])

    def to_graph(self) -> tuple[np.ndarray, np.ndarray]:
        """Node-op graph ``(adj f32[8, 8], ops f32[8, 7])``: node 0 input, nodes 1..6 the
        edge ops in ``NB201_EDGES`` order, node 7 output; one-hot over ``NB201_NODE_TYPES``.
        Edge-op node (to=i, from=j) reads node j: the input if j == 0, else every edge-op
        node into j; edge-op nodes into node 3 feed the output."""
        adj = np.zeros((8, 8), np.float32)
        for e, (to, frm) in enumerate(NB201_EDGES):
            if frm == 0:
                adj[0, 1 + e] = 1.0
            else:
                for e2, (to2, _) in enumerate(NB201_EDGES):
                    if to2 == frm:
                        adj[1 + e2, 1 + e] = 1.0
            if to == 3:
                adj[1 + e, 7] = 1.0
        ops = np.zeros((8, len(NB201_NODE_TYPES)), np.float32)
        ops[0, 0] = 1.0
        for e, i in enumerate(self.op_ids):
            ops[1 + e, 1 + i] = 1.0
        ops[7, -1] = 1.0
        return adj, ops


class NB201Space(ArchParsing):
    """The NAS-Bench-201 space (Dong & Yang, ICLR 2020): 5 ops on 6 edges, 15,625 cells."""

    name = "nb201"
    ops = NB201_OPS
    edges = NB201_EDGES
    node_types = NB201_NODE_TYPES
    num_edges = len(NB201_EDGES)
    size = len(NB201_OPS) ** len(NB201_EDGES)
    graph_size = 8
    num_node_types = len(NB201_NODE_TYPES)
    arch_type = NB201Arch

    def __repr__(self) -> str:
        return "NB201Space()"

    def _recheck(self, arch: NB201Arch) -> NB201Arch:
        return NB201Arch(arch.ops)

    def is_valid(self, arch: Any) -> bool:
        try:
            self.validate(arch)
            return True
        except ValueError:
            return False

    def to_index(self, arch: NB201Arch) -> int:
        return self.parse(arch).to_index()

    def from_index(self, index: int) -> NB201Arch:
        return NB201Arch.from_index(index)

    def enumerate(self) -> list[NB201Arch]:
        """All 15,625 cells in space-index order (``from_index(0..15624)``)."""
        return [NB201Arch.from_index(i) for i in range(self.size)]

    def sample(self, key: jax.Array | int, n: int = 1) -> list[NB201Arch]:
        """``n`` cells, every edge's op uniform and independent (uniform over the 15,625)."""
        ids = np_rng(key).integers(0, len(NB201_OPS), size=(int(n), len(NB201_EDGES)))
        return [NB201Arch.from_op_ids(row) for row in ids]

    def mutate(self, key: jax.Array | int, arch: NB201Arch | str) -> NB201Arch:
        """One uniformly chosen edge gets a different, uniformly chosen op."""
        arch = self.parse(arch)
        rng = np_rng(key)
        e = int(rng.integers(len(NB201_EDGES)))
        others = [o for o in NB201_OPS if o != arch.ops[e]]
        ops = list(arch.ops)
        ops[e] = others[int(rng.integers(len(others)))]
        return NB201Arch(tuple(ops))

    def neighbours(self, arch: NB201Arch | str) -> list[NB201Arch]:
        """The 24 cells that differ from ``arch`` on exactly one edge."""
        arch = self.parse(arch)
        out = []
        for e in range(len(NB201_EDGES)):
            for o in NB201_OPS:
                if o != arch.ops[e]:
                    out.append(NB201Arch(arch.ops[:e] + (o,) + arch.ops[e + 1:]))
        return out

    def dedup_key(self, arch: NB201Arch) -> tuple[str, ...]:
        return arch.ops

    def dedup(self, archs: Iterable[NB201Arch]) -> list[NB201Arch]:
        """``archs`` without exact repeats, first occurrence kept (isomorphic-but-different
        cells are kept: the benchmark lists them separately)."""
        return _dedup_by(archs, self.dedup_key)


# =========================================================================== DARTS
Cell = tuple[tuple[str, int], ...]


def _check_cell(cell: Any, which: str) -> Cell:
    try:
        pairs = tuple((str(op), int(j)) for op, j in cell)
    except (TypeError, ValueError) as e:
        raise ValueError(f"DARTS {which} cell must be a list of (op, input) pairs, got "
                         f"{cell!r}") from e
    if len(pairs) != 2 * _DARTS_STEPS:
        raise ValueError(f"wrong edge count: the DARTS {which} cell needs {2 * _DARTS_STEPS} "
                         f"(op, input) pairs (2 per intermediate node), got {len(pairs)}")
    for p, (op, j) in enumerate(pairs):
        node = p // 2
        if op not in DARTS_OPS:
            raise ValueError(f"unknown DARTS op {op!r} in the {which} cell; valid ops: "
                             f"{', '.join(DARTS_OPS)}")
        if not 0 <= j < node + 2:
            raise ValueError(f"{which} cell: intermediate node {node} (state {node + 2}) can only "
                             f"take inputs 0..{node + 1}, got {j}")
    for node in range(_DARTS_STEPS):
        if pairs[2 * node][1] == pairs[2 * node + 1][1]:
            raise ValueError(f"{which} cell: the two inputs of intermediate node {node} must be "
                             f"different, both are {pairs[2 * node][1]}")
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

    Each cell is 8 ``(op, input)`` pairs, 2 per intermediate node in node order; inputs 0, 1 are
    the two previous cells' outputs, 2.. earlier intermediate nodes. The cell output is the
    concat of the ``*_concat`` states. Construction validates (``ValueError`` naming the op,
    the pair count or the bad input index).
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

    def canonical(self) -> DARTSGenotype:
        """The same genotype with each node's two pairs sorted (the cell computes the same)."""
        def canon(cell: Cell) -> Cell:
            out: list[tuple[str, int]] = []
            for n in range(_DARTS_STEPS):
                out += sorted(cell[2 * n: 2 * n + 2], key=lambda p: (p[1], p[0]))
            return tuple(out)
        return DARTSGenotype(canon(self.normal), canon(self.reduce),
                             tuple(sorted(self.normal_concat)), tuple(sorted(self.reduce_concat)))

    def to_cell_graphs(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-cell node-op graphs ``(adj f32[2, 11, 11], ops f32[2, 11, 11])`` (normal,
        reduce): nodes 0, 1 inputs, 2..9 the op of each pair, 10 the concat output; one-hot over
        ``DARTS_CELL_NODE_TYPES``."""
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
        try:
            self.validate(arch)
            return True
        except ValueError:
            return False

    def enumerate(self) -> list[DARTSGenotype]:
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
        return [c for c in _dedup_by(self._changes(g), self.dedup_key) if c.canonical() != me]

    def dedup_key(self, arch: DARTSGenotype) -> DARTSGenotype:
        return arch.canonical()

    def dedup(self, archs: Iterable[DARTSGenotype]) -> list[DARTSGenotype]:
        """``archs`` without repeats up to the order of the two pairs of a node."""
        return _dedup_by(archs, self.dedup_key)


# =========================================================================== registry
NB201 = NB201Space()
DARTS = DARTSSpace()
SPACES: dict[str, Any] = {"nb201": NB201, "darts": DARTS, "nb101": NB101}
_ALIASES = {"nasbench201": "nb201", "nas-bench-201": "nb201", "nats-tss": "nb201",
            "nasbench101": "nb101", "nas-bench-101": "nb101"}


def get_space(name: str) -> NB201Space | DARTSSpace | NB101Space:
    """The space object for ``name`` (``'nb201'``, ``'darts'``, ``'nb101'``; case-insensitive)."""
    if not isinstance(name, str):
        raise ValueError(f"space name must be a string, got {name!r}")
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in SPACES:
        raise ValueError(f"unknown search space {name!r}; valid spaces: {', '.join(SPACES)}")
    return SPACES[key]
