"""The NAS-Bench-101 search space: cell value type, official graph hash, sampling, mutation.

NAS-Bench-101 (Ying et al., "NAS-Bench-101: Towards Reproducible Neural Architecture Search",
ICML 2019): a cell is a DAG of at most 7 nodes (``input``, up to 5 op nodes, ``output``) with
at most 9 edges, given as an upper-triangular adjacency matrix and one op per node. Nodes that
are not on an input→output path do nothing; the benchmark prunes them before hashing, and the
hash (:func:`hash_module`) is invariant to isomorphism, so it is the identity of a cell.

Re-exported by :mod:`jnas.spaces`; use ``jnas.spaces.NB101`` rather than this module.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import numpy as np

from jnas.rng import np_rng
from jnas.space_base import ArchParsing

__all__ = ["NB101_OPS", "NB101_NODE_TYPES", "NB101_MAX_NODES", "NB101_MAX_EDGES",
           "hash_module", "NB101Arch", "NB101Space", "NB101"]

NB101_OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
NB101_NODE_TYPES: tuple[str, ...] = ("input", *NB101_OPS, "output")
NB101_MAX_NODES = 7
NB101_MAX_EDGES = 9

Matrix = tuple[tuple[int, ...], ...]


# --------------------------------------------------------------------------- graph helpers
def _reachable(matrix: Matrix, start: int, forward: bool) -> set[int]:
    """Nodes reachable from ``start`` along (forward) or against (backward) the edges."""
    n = len(matrix)
    seen, stack = {start}, [start]
    while stack:
        u = stack.pop()
        for v in range(n):
            edge = matrix[u][v] if forward else matrix[v][u]
            if edge and v not in seen:
                seen.add(v)
                stack.append(v)
    return seen


def _has_cycle(matrix: Matrix) -> bool:
    """True if the directed graph has a cycle (Kahn's algorithm)."""
    n = len(matrix)
    indeg = [sum(matrix[u][v] for u in range(n)) for v in range(n)]
    queue = [v for v in range(n) if indeg[v] == 0]
    done = 0
    while queue:
        u = queue.pop()
        done += 1
        for v in range(n):
            if matrix[u][v]:
                indeg[v] -= 1
                if indeg[v] == 0:
                    queue.append(v)
    return done < n


def _prune(matrix: Matrix, ops: tuple[str, ...]) -> tuple[Matrix, tuple[str, ...]] | None:
    """Drops nodes not on an input→output path (as ``nasbench.lib.model_spec``); None if the
    input does not reach the output."""
    n = len(matrix)
    keep = sorted(_reachable(matrix, 0, True) & _reachable(matrix, n - 1, False))
    if 0 not in keep or n - 1 not in keep:
        return None
    pm = tuple(tuple(matrix[i][j] for j in keep) for i in keep)
    return pm, tuple(ops[i] for i in keep)


def _spec_error(matrix: Matrix, ops: tuple[str, ...]) -> str | None:
    """The first problem with a (matrix, ops) NB101 spec, or None if it is a valid cell.

    Follows the official checks (``nasbench.api.NASBench._check_spec``): edge and node limits
    are checked on the pruned graph.
    """
    n = len(matrix)
    if n < 2:
        return f"an NB101 cell needs at least 2 nodes (input, output), got {n}"
    if n > NB101_MAX_NODES:
        return (f"too many nodes: {n} > {NB101_MAX_NODES} (NB101 cells have at most 7 nodes: "
                "input, <= 5 ops, output)")
    if any(len(row) != n for row in matrix):
        lens = [len(r) for r in matrix]
        return f"the adjacency matrix must be square, got rows of lengths {lens}"
    if len(ops) != n:
        return f"{len(ops)} ops for a {n}x{n} matrix: give one op per node"
    if any(v not in (0, 1) for row in matrix for v in row):
        return "adjacency entries must be 0 or 1"
    if ops[0] != "input" or ops[-1] != "output":
        return f"ops must start with 'input' and end with 'output', got {ops[0]!r} ... {ops[-1]!r}"
    for i, op in enumerate(ops[1:-1], start=1):
        if op not in NB101_OPS:
            return f"unknown NB101 op {op!r} at node {i}; valid ops: {', '.join(NB101_OPS)}"
    if any(matrix[i][i] for i in range(n)):
        return "cyclic graph: the adjacency matrix has a self-loop (non-zero diagonal)"
    if any(matrix[i][j] for i in range(n) for j in range(i)):
        if _has_cycle(matrix):
            return "cyclic graph: NB101 cells must be DAGs (upper-triangular adjacency)"
        return ("the adjacency matrix is not upper-triangular; number the nodes in topological "
                "order (input first, output last)")
    pruned = _prune(matrix, ops)
    if pruned is None:
        return "disconnected graph: there is no path from the input node to the output node"
    n_edges = sum(map(sum, pruned[0]))
    if n_edges > NB101_MAX_EDGES:
        return f"too many edges: {n_edges} > {NB101_MAX_EDGES} (after pruning dangling nodes)"
    return None


def _as_matrix(matrix: Any) -> Matrix:
    try:
        arr = np.asarray(matrix)
        if arr.ndim != 2:
            raise ValueError
        return tuple(tuple(int(v) for v in row) for row in arr.tolist())
    except (ValueError, TypeError) as e:
        raise ValueError(f"NB101 matrix must be a square 2-d 0/1 array, got {matrix!r}") from e


def hash_module(matrix: Any, labeling: Sequence[int]) -> str:
    """The NAS-Bench-101 isomorphism-invariant graph hash (the benchmark's record key).

    Re-implements ``nasbench.lib.graph_util.hash_module`` (Ying et al., ICML 2019): every node
    starts from the md5 of ``(out-degree, in-degree, label)``; then, as many rounds as there are
    nodes, its hash becomes the md5 of its sorted in-neighbour hashes, its sorted out-neighbour
    hashes and its own hash; the fingerprint is the md5 of the sorted node hashes.

    Args:
      matrix: ``[n, n]`` 0/1 adjacency (already pruned for the official hash).
      labeling: one int per node: -1 input, -2 output, else the index into ``NB101_OPS``.
    """
    m = _as_matrix(matrix)
    n = len(m)
    if len(labeling) != n:
        raise ValueError(f"labeling has {len(labeling)} entries for {n} nodes")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode("utf-8")).hexdigest()

    ins = [[u for u in range(n) if m[u][v]] for v in range(n)]
    outs = [[w for w in range(n) if m[v][w]] for v in range(n)]
    h = [md5(str((len(outs[v]), len(ins[v]), int(labeling[v])))) for v in range(n)]
    for _ in range(n):
        h = [md5("".join(sorted(h[u] for u in ins[v])) + "|"
                 + "".join(sorted(h[w] for w in outs[v])) + "|" + h[v]) for v in range(n)]
    return md5(str(sorted(h)))


@functools.lru_cache(maxsize=1 << 16)
def _spec_hash(matrix: Matrix, ops: tuple[str, ...]) -> str:
    pruned = _prune(matrix, ops)
    if pruned is None:
        raise ValueError("disconnected NB101 graph has no hash")
    pm, pops = pruned
    labels = [-1] + [NB101_OPS.index(o) for o in pops[1:-1]] + [-2]
    return hash_module(pm, labels)


# --------------------------------------------------------------------------- value type
@dataclasses.dataclass(frozen=True)
class NB101Arch:
    """One NAS-Bench-101 cell: upper-triangular 0/1 ``matrix`` and per-node ``ops``.

    ``ops[0] == 'input'``, ``ops[-1] == 'output'``, the others in :data:`NB101_OPS`. Lists and
    numpy arrays are accepted and stored as tuples. Construction validates the cell (raises
    ``ValueError`` naming the problem: unknown op, cyclic graph, input not connected to output,
    more than 7 nodes or 9 edges). Dangling nodes are allowed (as in the official API) and
    removed by :meth:`pruned`; equality is structural, identity of the cell is :meth:`spec_hash`.
    """

    matrix: Matrix
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        m = _as_matrix(self.matrix)
        if isinstance(self.ops, str) or not isinstance(self.ops, Iterable):
            raise ValueError(f"NB101 ops must be a sequence of op names, got {self.ops!r}")
        ops = tuple(str(o) for o in self.ops)
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "ops", ops)
        err = _spec_error(m, ops)
        if err is not None:
            raise ValueError(f"invalid NB101 cell: {err}")

    @property
    def num_nodes(self) -> int:
        """Nodes of the cell (input and output included)."""
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        """Edges of the cell."""
        return int(sum(map(sum, self.matrix)))

    def to_string(self) -> str:
        """``"[[0,1,...],...]|input,conv3x3-bn-relu,...,output"`` (JSON matrix | ops)."""
        mat = json.dumps([list(r) for r in self.matrix], separators=(",", ":"))
        return mat + "|" + ",".join(self.ops)

    @classmethod
    def from_string(cls, s: str) -> NB101Arch:
        """Inverse of :meth:`to_string`; raises ``ValueError`` on malformed text."""
        if not isinstance(s, str) or s.count("|") != 1:
            raise ValueError(f"NB101 string must be 'MATRIX_JSON|op,op,...', got {s!r}")
        mat_s, ops_s = s.split("|")
        try:
            mat = json.loads(mat_s)
        except json.JSONDecodeError as e:
            raise ValueError(f"NB101 string: matrix part {mat_s!r} is not JSON ({e})") from e
        ops = tuple(o.strip() for o in ops_s.split(","))
        return cls(mat, ops)

    def pruned(self) -> NB101Arch:
        """The cell without nodes off every input→output path (``nasbench`` ``ModelSpec``)."""
        pruned = _prune(self.matrix, self.ops)
        assert pruned is not None  # validated at construction
        return NB101Arch(*pruned)

    def spec_hash(self) -> str:
        """The official NAS-Bench-101 hash of the pruned cell (key of the benchmark records)."""
        return _spec_hash(self.matrix, self.ops)

    def to_graph(self, num_nodes: int = NB101_MAX_NODES) -> tuple[np.ndarray, np.ndarray]:
        """``(adj f32[7, 7], ops f32[7, 5])`` of the pruned cell, zero-padded to ``num_nodes``.

        Padding rows/columns are inserted before the output node, so the output node is always
        the last one; op one-hot over :data:`NB101_NODE_TYPES` (all-zero rows for padding).
        """
        p = self.pruned()
        n = p.num_nodes
        if n > num_nodes:
            raise ValueError(f"cell has {n} nodes, cannot pad to {num_nodes}")
        pos = list(range(n - 1)) + [num_nodes - 1]  # node i -> padded row pos[i]
        adj = np.zeros((num_nodes, num_nodes), np.float32)
        ops = np.zeros((num_nodes, len(NB101_NODE_TYPES)), np.float32)
        for i in range(n):
            ops[pos[i], NB101_NODE_TYPES.index(p.ops[i])] = 1.0
            for j in range(n):
                if p.matrix[i][j]:
                    adj[pos[i], pos[j]] = 1.0
        return adj, ops

    @classmethod
    def from_graph(cls, adj: Any, ops: Any) -> NB101Arch:
        """Inverse of :meth:`to_graph`: the (pruned) cell of a padded ``(adj, ops)`` graph
        (all-zero op rows are padding); ``ValueError`` on a graph that is no valid cell."""
        adj, ops = np.asarray(adj), np.asarray(ops)
        if adj.ndim != 2 or adj.shape[0] != adj.shape[1] or ops.shape != (
                adj.shape[0], len(NB101_NODE_TYPES)):
            raise ValueError(f"an NB101 graph is (adj [n, n], ops [n, "
                             f"{len(NB101_NODE_TYPES)}]), got {adj.shape} and {ops.shape}")
        real = [i for i in range(len(ops)) if ops[i].any()]
        if any(ops[i].sum() != 1 for i in real):
            raise ValueError("NB101 graph op rows must be one-hot (or all zero for padding)")
        names = tuple(NB101_NODE_TYPES[int(ops[i].argmax())] for i in real)
        matrix = [[int(adj[i, j] != 0) for j in real] for i in real]
        return cls(matrix, names)


# --------------------------------------------------------------------------- space
class NB101Space(ArchParsing):
    """The NAS-Bench-101 space (Ying et al., ICML 2019): sampling, mutation, neighbours, dedup.

    ``num_edges`` is the number of possible edges of a 7-node cell (21); a valid cell uses at
    most ``max_edges`` (9) of them.
    """

    name = "nb101"
    ops = NB101_OPS
    node_types = NB101_NODE_TYPES
    num_edges = NB101_MAX_NODES * (NB101_MAX_NODES - 1) // 2
    max_edges = NB101_MAX_EDGES
    max_nodes = NB101_MAX_NODES
    size = None  # 423,624 unique cells, not enumerated here
    graph_size = NB101_MAX_NODES
    num_node_types = len(NB101_NODE_TYPES)
    arch_type = NB101Arch

    def __repr__(self) -> str:
        return "NB101Space()"

    def _recheck(self, arch: NB101Arch) -> NB101Arch:
        return NB101Arch(arch.matrix, arch.ops)

    def is_valid(self, matrix: Any, ops: Sequence[str] | None = None) -> bool:
        """True if ``(matrix, ops)`` (or an arch / string in ``matrix``) is a valid NB101 cell."""
        try:
            if ops is None:
                self.validate(matrix)
            else:
                NB101Arch(matrix, tuple(ops))
            return True
        except ValueError:
            return False

    def sample(self, key: jax.Array | int, n: int = 1) -> list[NB101Arch]:
        """``n`` random valid cells, as the official ``random_spec``: each of the 21 upper
        edges on with probability 1/2, each op node uniform over the 3 ops, rejected until
        valid. Cells are returned unpruned (7 nodes) so that mutation can re-attach dangling
        nodes. A pure function of ``key``."""
        rng = np_rng(key)
        out: list[NB101Arch] = []
        nn_ = NB101_MAX_NODES
        iu = np.triu_indices(nn_, 1)
        while len(out) < n:
            mat = np.zeros((nn_, nn_), np.int64)
            mat[iu] = rng.integers(0, 2, size=len(iu[0]))
            ops = ("input", *(NB101_OPS[i] for i in rng.integers(0, 3, size=nn_ - 2)), "output")
            m = _as_matrix(mat)
            if _spec_error(m, ops) is None:
                out.append(NB101Arch(m, ops))
        return out

    @staticmethod
    def _padded(arch: NB101Arch, dead_ops: Sequence[str]) -> tuple[Matrix, tuple[str, ...]]:
        """``arch`` grown to 7 nodes with dead nodes (fed by the input only, so pruned away)
        inserted before the output; a single edge flip (dead node -> later node) activates one.
        Same cell (same hash); ``dead_ops`` gives their ops."""
        n, full = arch.num_nodes, NB101_MAX_NODES
        if n == full:
            return arch.matrix, arch.ops
        pos = list(range(n - 1)) + [full - 1]
        m = [[0] * full for _ in range(full)]
        for i in range(n):
            for j in range(n):
                m[pos[i]][pos[j]] = arch.matrix[i][j]
        for d in range(n - 1, full - 1):
            m[0][d] = 1
        ops = arch.ops[:-1] + tuple(dead_ops[: full - n]) + ("output",)
        return tuple(map(tuple, m)), ops

    @staticmethod
    def _single_changes(matrix: Matrix, ops: tuple[str, ...]
                        ) -> list[tuple[Matrix, tuple[str, ...]]]:
        """Every one-edge flip (upper triangle) and one-op change of a spec (maybe invalid)."""
        n = len(ops)
        m = [list(r) for r in matrix]
        out = []
        for i in range(n):
            for j in range(i + 1, n):
                m[i][j] ^= 1
                out.append((tuple(map(tuple, m)), ops))
                m[i][j] ^= 1
        for v in range(1, n - 1):
            for op in NB101_OPS:
                if op != ops[v]:
                    out.append((matrix, ops[:v] + (op,) + ops[v + 1:]))
        return out

    def mutate(self, key: jax.Array | int, arch: NB101Arch | str) -> NB101Arch:
        """One random change (flip one edge or change one node's op) that gives a valid cell
        with a different :meth:`NB101Arch.spec_hash`, uniform over such changes. Cells with
        fewer than 7 nodes are first padded with dead nodes (random ops), so a mutation can
        also add a node. A pure function of ``key``."""
        arch = self.parse(arch)
        rng = np_rng(key)
        dead = [NB101_OPS[int(i)] for i in rng.integers(0, len(NB101_OPS), NB101_MAX_NODES)]
        cands = self._single_changes(*self._padded(arch, dead))
        h0 = arch.spec_hash()
        for i in rng.permutation(len(cands)):
            m, ops = cands[i]
            if _spec_error(m, ops) is None and _spec_hash(m, ops) != h0:
                return NB101Arch(m, ops)
        raise ValueError(f"no valid single-change mutation of {arch.to_string()}")

    def neighbours(self, arch: NB101Arch | str) -> list[NB101Arch]:
        """All valid cells one change away (edge flip or op change; for cells with < 7 nodes
        also adding one node of any op), one per distinct hash, excluding cells isomorphic
        to ``arch``; in a fixed order."""
        arch = self.parse(arch)
        seen = {arch.spec_hash()}
        out = []
        for dead_op in NB101_OPS:
            padded = self._padded(arch, [dead_op] * NB101_MAX_NODES)
            for m, ops in self._single_changes(*padded):
                if _spec_error(m, ops) is None:
                    h = _spec_hash(m, ops)
                    if h not in seen:
                        seen.add(h)
                        out.append(NB101Arch(m, ops))
            if padded == (arch.matrix, arch.ops):
                break  # nothing was padded: the dead-node op does not matter
        return out

    def dedup_key(self, arch: NB101Arch) -> str:
        """The identity used for deduplication: the official hash (isomorphism-aware)."""
        return arch.spec_hash()

    def dedup(self, archs: Iterable[NB101Arch]) -> list[NB101Arch]:
        """``archs`` without isomorphic repeats (same :meth:`NB101Arch.spec_hash`), first kept."""
        seen: set[str] = set()
        out = []
        for a in archs:
            h = a.spec_hash()
            if h not in seen:
                seen.add(h)
                out.append(a)
        return out

    def enumerate(self) -> list[NB101Arch]:
        """Not done (``ValueError``): use ``sample()`` or a table's cells."""
        raise ValueError("the NB101 space (423,624 cells) is not enumerated by jnas; use "
                         "sample(), or the cells of a benchmark table (jnas.benchmarks)")


NB101 = NB101Space()
