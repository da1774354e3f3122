"""Search spaces: NAS-Bench-201, DARTS and NAS-Bench-101 architectures as small immutable values.

Each space has one architecture value type (frozen, hashable, ``to_string``/``from_string``,
``to_graph``/``from_graph``) and one space object (:data:`NB201`, :data:`DARTS`,
:data:`NB101`) with ``parse``, ``validate``, key-driven ``sample``, ``mutate``,
``neighbours``, ``dedup`` and the graph sizes used for GCN batching. :func:`get_space` is the
one resolver: every public entry point taking a space accepts its name or its object.
This module is the only home of the op and edge constants (:data:`NB201_OPS`,
:data:`NB201_EDGES`, :data:`DARTS_OPS`, :data:`NB101_OPS`).

* NAS-Bench-201 (Dong & Yang, ICLR 2020): 4-node cell, 6 edges, 5 ops, 15,625 cells (here).
* DARTS (Liu et al., ICLR 2019): see :mod:`jnas.spaces_darts`.
* NAS-Bench-101 (Ying et al., ICML 2019): see :mod:`jnas.spaces_nb101`.

Graph form (``arch.to_graph() -> (adj f32[n, n], ops f32[n, k])``, ``adj[i, j] = 1`` for an
edge i->j): ops live on nodes. NB201 cells are turned into node-op graphs by the standard
transform (every edge becomes a node): input, the 6 edge-op nodes (``NB201_EDGES`` order),
output — 8 nodes.

Two integer names of a cell must not be confused: the **space index**
(``NB201Arch.to_index``, ``sum(op_id[e] * 5**e)``, this module) and the **benchmark row**
(``NB201Bench.row(arch)``, the official NB201 index, :mod:`jnas.benchmarks`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import jax
import numpy as np

from jnas.rng import np_rng
from jnas.space_base import ArchParsing, dedup_by
from jnas.spaces_darts import (DARTS, DARTS_CELL_NODE_TYPES, DARTS_NODE_TYPES, DARTS_OPS,
                               DARTSGenotype, DARTSSpace)
from jnas.spaces_nb101 import (NB101, NB101_MAX_EDGES, NB101_MAX_NODES, NB101_NODE_TYPES,
                               NB101_OPS, NB101Arch, NB101Space, hash_module)

__all__ = [
    "NB201_OPS", "NB201_EDGES", "NB201_NODE_TYPES", "DARTS_OPS", "DARTS_NODE_TYPES",
    "DARTS_CELL_NODE_TYPES",
    "NB101_OPS", "NB101_NODE_TYPES", "NB101_MAX_NODES", "NB101_MAX_EDGES",
    "NB201Arch", "DARTSGenotype", "NB101Arch", "NB201Space", "DARTSSpace", "NB101Space",
    "NB201", "DARTS", "NB101", "SPACES", "get_space", "hash_module", "SearchSpace",
]

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                              "avg_pool_3x3")
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NB201_NODE_TYPES: tuple[str, ...] = ("input", *NB201_OPS, "output")


class SearchSpace(Protocol):
    """What every space object provides (see ``docs/CONTRACT.md``)."""

    name: str
    ops: tuple[str, ...]
    num_edges: int
    size: int | None
    graph_size: int
    num_node_types: int

    def parse(self, s: Any) -> Any:
        """A cell from its standard string (or the cell itself)."""

    def validate(self, arch: Any) -> Any:
        """``arch`` as a valid cell, or ``ValueError`` naming the problem."""

    def sample(self, key: jax.Array | int, n: int = 1) -> list[Any]:
        """``n`` cells drawn by the space's sampling rule, a pure function of ``key``."""

    def mutate(self, key: jax.Array | int, arch: Any) -> Any:
        """One random single change of ``arch``."""

    def neighbours(self, arch: Any) -> list[Any]:
        """Every cell one change away from ``arch``."""

    def dedup(self, archs: Iterable[Any]) -> list[Any]:
        """``archs`` without repeats (first kept)."""


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
        """The cell of 6 op ids (indices into ``NB201_OPS``, edge order)."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < len(NB201_OPS)]
        if bad:
            raise ValueError(f"NB201 op ids must be in 0..4, got {bad}")
        return cls(tuple(NB201_OPS[i] for i in ids))

    def to_index(self) -> int:
        """Space index ``sum(op_id[e] * 5**e)`` in 0..15624 (the order of
        ``NB201.enumerate()``). NOT the benchmark row: that is ``NB201Bench.row(arch)``."""
        return sum(i * 5 ** e for e, i in enumerate(self.op_ids))

    @classmethod
    def from_index(cls, index: int) -> NB201Arch:
        """Inverse of :meth:`to_index` (a space index, not a benchmark row); ``ValueError``
        outside 0..15624."""
        index = int(index)
        if not 0 <= index < 5 ** 6:
            raise ValueError(f"NB201 space index {index} is out of range; valid indices: "
                             "0..15624")
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

    @classmethod
    def from_graph(cls, adj: Any, ops: Any) -> NB201Arch:
        """Inverse of :meth:`to_graph`: the cell of an ``(adj f32[8, 8], ops f32[8, 7])``
        node-op graph; ``ValueError`` if the graph is not one :meth:`to_graph` makes."""
        adj, ops = np.asarray(adj), np.asarray(ops)
        if adj.shape != (8, 8) or ops.shape != (8, len(NB201_NODE_TYPES)):
            raise ValueError(f"an NB201 graph is (adj [8, 8], ops [8, {len(NB201_NODE_TYPES)}]),"
                             f" got {adj.shape} and {ops.shape}")
        types = ops.argmax(axis=1)
        if not np.all(ops.sum(axis=1) == 1) or types[0] != 0 or types[7] != len(ops[0]) - 1 \
                or np.any((types[1:7] < 1) | (types[1:7] > len(NB201_OPS))):
            raise ValueError("NB201 graph ops must be one-hot: input, 6 edge ops, output")
        arch = cls.from_op_ids([int(t) - 1 for t in types[1:7]])
        if not np.array_equal(arch.to_graph()[0], adj != 0):
            raise ValueError("NB201 graph adjacency is not the fixed NB201 node-op topology")
        return arch


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
        """Whether :meth:`validate` accepts ``arch``."""
        try:
            self.validate(arch)
            return True
        except ValueError:
            return False

    def to_index(self, arch: NB201Arch | str) -> int:
        """The space index of ``arch`` (not a benchmark row; see :meth:`NB201Arch.to_index`)."""
        return self.parse(arch).to_index()

    def from_index(self, index: int) -> NB201Arch:
        """The cell at space index ``index``; ``ValueError`` outside 0..15624."""
        return NB201Arch.from_index(index)

    def from_graph(self, adj: Any, ops: Any) -> NB201Arch:
        """The cell of a :meth:`NB201Arch.to_graph` graph."""
        return NB201Arch.from_graph(adj, ops)

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
        """The identity used by :meth:`dedup` (the op tuple)."""
        return arch.ops

    def dedup(self, archs: Iterable[NB201Arch]) -> list[NB201Arch]:
        """``archs`` without exact repeats, first occurrence kept (isomorphic-but-different
        cells are kept: the benchmark lists them separately)."""
        return dedup_by(archs, self.dedup_key)


# =========================================================================== registry
NB201 = NB201Space()
SPACES: dict[str, Any] = {"nb201": NB201, "darts": DARTS, "nb101": NB101}
_ALIASES = {"nasbench201": "nb201", "nas-bench-201": "nb201", "nats-tss": "nb201",
            "nasbench101": "nb101", "nas-bench-101": "nb101"}


def get_space(name: str | Any) -> NB201Space | DARTSSpace | NB101Space | Any:
    """The space object for ``name`` (``'nb201'``, ``'darts'``, ``'nb101'``, case-insensitive,
    or a space object, returned as is): the one resolver of spaces."""
    if not isinstance(name, str):
        if hasattr(name, "parse") and hasattr(name, "name") and hasattr(name, "sample"):
            return name
        raise ValueError(f"expected a space name ({', '.join(SPACES)}) or a space object, "
                         f"got {name!r}")
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in SPACES:
        raise ValueError(f"unknown space {name!r}; valid spaces: {', '.join(SPACES)}")
    return SPACES[key]
