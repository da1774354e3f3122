"""GA-NAS networks: cell codecs (arch <-> decision sequence), generator and discriminator.

GA-NAS (Rezaei et al., "Generative Adversarial Neural Architecture Search", IJCAI 2021,
arXiv 2105.09356) uses a generator that reads a *context* cell with a GNN encoder and writes a
new cell with an autoregressive (MLP + GRU) decoder, and a pairwise (Siamese GNN)
discriminator. The paper's exact layer sizes are not public: every choice made here is listed
in :class:`jnas.gan.GANASConfig` and in the docstrings below.

A cell is a fixed-length sequence of ``T`` discrete decisions with at most ``K`` choices each
(a :class:`CellCodec`):

* NB201: 6 decisions (one op per edge, ``NB201_EDGES`` order), 5 choices (``NB201_OPS``).
* NB101: node by node, for ``j = 1..6`` first the 0/1 edges ``i -> j`` for ``i < j`` (upper
  triangle, so always a DAG), then (for ``j <= 5``) the op of node ``j`` -- 21 edge + 5 op
  decisions. Masks keep the cell valid while it is written: every node gets at least one
  incoming edge (so every node is reachable from the input and the output is connected), and
  the total stays <= 9 edges counting the edges still owed to later nodes. Nodes with no path
  to the output are pruned afterwards (``NB101Arch.pruned``), which keeps validity.

Both codecs also give an additive per-decision cost table (NB201: the params each op adds to
the network, so a params budget can be enforced *exactly* by masking; NB101: zeros, the budget
is enforced by rejection) and the graph form ``(adj, feats)`` that the GNNs read.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jnas import cost
from jnas.spaces import (NB101_MAX_EDGES, NB101_MAX_NODES, NB101_OPS, NB201_EDGES, NB201_OPS,
                         NB101Arch, NB201Arch)

__all__ = ["NB101_NODES", "nb201_op_params", "CellCodec", "nb201_all_sequences", "make_codec",
           "GraphEncoder", "Generator", "Discriminator", "batch_graph", "decode"]

NB101_NODES = NB101_MAX_NODES


def nb201_op_params(C: int = 16, N: int = 5) -> dict[str, int]:
    """Params each NB201 edge op adds to the network, summed over its ``3N`` cells (exact
    integers, from :func:`jnas.cost.arch_cost`: the all-``op`` cell minus the all-``none``
    cell, divided by the 6 edges)."""
    base = cost.arch_cost("nb201", NB201Arch(ops=("none",) * 6), C=C, N=N)["params_M"]
    return {op: round((cost.arch_cost("nb201", NB201Arch(ops=(op,) * 6), C=C, N=N)["params_M"]
                       - base) * 1e6) // 6 for op in NB201_OPS}


@dataclasses.dataclass(frozen=True)
class CellCodec:
    """A space as a sequence of ``T`` decisions with ``K`` choices (see module docstring).

    Attributes:
      name: space name (``'nb201'`` or ``'nb101'``).
      T, K: sequence length and maximal number of choices per decision.
      static_mask: bool[T, K], the choices that exist at each step.
      kind, src, dst: int[T] per-step metadata (kind 0 = op, 1 = edge; for NB101 edges the
        source / target node, for ops the node; -1 where unused).
      cost: float[T, K] additive cost of each choice (params in M for NB201, zeros for NB101).
      base_cost: the cost of the fixed part of the network (params in M).
      n_nodes, n_feats: size of the graph form.
    """
    name: str
    T: int
    K: int
    static_mask: np.ndarray
    kind: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    cost: np.ndarray
    base_cost: float
    n_nodes: int
    n_feats: int

    # ---- masks (jnp, batched over rows; used inside jit) -------------------------------
    def step_mask(self, tokens: jax.Array, t: jax.Array, budget: jax.Array) -> jax.Array:
        """bool[B, K]: the choices allowed at step ``t`` given ``tokens[:, :t]``.

        ``tokens`` is int[B, T]; entries at positions ``>= t`` are ignored. ``budget`` is the
        additive cost the whole cell may use (``max_params - base_cost``; ``inf`` for none).
        """
        before = (jnp.arange(self.T) < t).astype(jnp.float32)  # [T]
        static = jnp.asarray(self.static_mask)[t]  # [K]
        cost_tab = jnp.asarray(self.cost, jnp.float32)
        safe = jnp.clip(tokens, 0, self.K - 1)
        chosen = (jax.nn.one_hot(safe, self.K) * cost_tab[None]).sum(-1)  # [B, T]
        spent = (chosen * before[None]).sum(-1)  # [B]
        within = spent[:, None] + cost_tab[t][None, :] <= budget + 1e-6
        mask = static[None, :] & within
        if self.name == "nb101":
            mask = mask & self._nb101_mask(safe, t, before > 0)
        # never leave a row without a legal choice (cheapest choice always allowed).
        cheapest = jnp.argmin(jnp.where(static, cost_tab[t], jnp.inf))
        fallback = jnp.arange(self.K)[None, :] == cheapest
        return jnp.where(mask.any(-1, keepdims=True), mask, fallback & static[None, :])

    def _nb101_mask(self, tokens: jax.Array, t: jax.Array, before: jax.Array) -> jax.Array:
        kind = jnp.asarray(self.kind)
        dst = jnp.asarray(self.dst)
        src = jnp.asarray(self.src)
        is_edge = (kind == 1)[None] & before[None] & (tokens == 1)  # [B, T]
        used = is_edge.sum(-1)  # [B]
        j, i = dst[t], src[t]
        has_in = (is_edge & (dst == j)[None]).any(-1)  # [B]
        owed_after = (NB101_NODES - 1) - j  # later nodes that each still need an in-edge
        allow_one = used + 1 + owed_after <= NB101_MAX_EDGES
        allow_zero = has_in | (i < j - 1)
        edge_mask = jnp.stack([allow_zero, allow_one]
                              + [jnp.zeros_like(allow_one)] * (self.K - 2), -1)
        return jnp.where(kind[t] == 1, edge_mask, jnp.ones_like(edge_mask))

    # ---- graph form (jnp, one row) -----------------------------------------------------
    def graph(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The graph form of one decision sequence: ``adj f32[n, n]`` (adj[i, j] = 1 for an
        edge i -> j) and one-hot node features ``f32[n, F]``."""
        if self.name == "nb201":
            # node-op graph: 0 = input, 1..6 = edge nodes, 7 = output; feats: 5 ops, in, out.
            adj = jnp.asarray(_NB201_NODE_ADJ)
            ops = jax.nn.one_hot(tokens, 5)
            feats = jnp.concatenate([jnp.zeros((1, 5)), ops, jnp.zeros((1, 5))], 0)
            io = jnp.zeros((8, 2)).at[0, 0].set(1.0).at[7, 1].set(1.0)
            return adj, jnp.concatenate([feats, io], -1)
        kind = jnp.asarray(self.kind)
        edge_on = (kind == 1) & (tokens == 1)
        adj = jnp.zeros((NB101_NODES, NB101_NODES)).at[
            jnp.asarray(np.maximum(self.src, 0)), jnp.asarray(np.maximum(self.dst, 0))].add(
            edge_on.astype(jnp.float32))
        op_pos = np.where(self.kind == 0)[0]
        op_nodes = jnp.asarray(self.dst[op_pos])
        feats = jnp.zeros((NB101_NODES, 5)).at[0, 3].set(1.0).at[NB101_NODES - 1, 4].set(1.0)
        feats = feats.at[op_nodes, jnp.clip(tokens[op_pos], 0, 2)].set(1.0)
        return adj, feats

    # ---- host side: arch <-> tokens ----------------------------------------------------
    def encode(self, arch: Any) -> np.ndarray:
        """int[T] decision sequence of an arch (NB101: pruned cells are padded with dead
        nodes that feed from the input and are pruned again on decoding)."""
        if self.name == "nb201":
            ops = tuple(arch.ops)
            return np.array([NB201_OPS.index(o) for o in ops], np.int32)
        arch = arch.pruned()
        matrix = np.asarray(arch.matrix, np.int32)
        ops = list(arch.ops)
        n = matrix.shape[0]
        full = np.zeros((NB101_NODES, NB101_NODES), np.int32)
        pos = list(range(n - 1)) + [NB101_NODES - 1]  # keep output last
        for a in range(n):
            for b in range(n):
                full[pos[a], pos[b]] = matrix[a, b]
        node_ops = [0] * NB101_NODES
        for a in range(1, n - 1):
            node_ops[pos[a]] = NB101_OPS.index(ops[a])
        for d in range(n - 1, NB101_NODES - 1):  # dead padding nodes
            full[0, d] = 1
        toks = []
        for t in range(self.T):
            if self.kind[t] == 1:
                toks.append(full[self.src[t], self.dst[t]])
            else:
                toks.append(node_ops[self.dst[t]])
        return np.array(toks, np.int32)

    def decode(self, tokens: Sequence[int]) -> Any:
        """The arch (space value type) of a decision sequence."""
        tokens = [int(x) for x in tokens]
        if self.name == "nb201":
            return NB201Arch(ops=tuple(NB201_OPS[o] for o in tokens))
        matrix = np.zeros((NB101_NODES, NB101_NODES), np.int32)
        ops = ["input"] + [""] * (NB101_NODES - 2) + ["output"]
        for t, tok in enumerate(tokens):
            if self.kind[t] == 1:
                matrix[self.src[t], self.dst[t]] = tok
            else:
                ops[self.dst[t]] = NB101_OPS[tok]
        arch = NB101Arch(matrix=tuple(tuple(int(v) for v in r) for r in matrix), ops=tuple(ops))
        return arch.pruned()


def _nb201_node_adj() -> np.ndarray:
    adj = np.zeros((8, 8), np.float32)
    for e, (to, frm) in enumerate(NB201_EDGES):
        if frm == 0:
            adj[0, e + 1] = 1
        else:
            for e2, (to2, _) in enumerate(NB201_EDGES):
                if to2 == frm:
                    adj[e2 + 1, e + 1] = 1
        if to == 3:
            adj[e + 1, 7] = 1
    return adj


_NB201_NODE_ADJ = _nb201_node_adj()


def nb201_all_sequences() -> np.ndarray:
    """int32[15625, 6]: every NB201 decision sequence; row ``i`` is ``i`` written in base 5
    (most significant digit first), so ``row_of(tokens) = sum(tokens * 5 ** (5 - t))``."""
    return np.stack(np.unravel_index(np.arange(5 ** 6), (5,) * 6), -1).astype(np.int32)


def make_codec(space: str, num_classes: int = 10) -> CellCodec:
    """The :class:`CellCodec` of ``'nb201'`` or ``'nb101'`` (``num_classes`` sets the NB201
    classifier params used by the params cost)."""
    if space == "nb201":
        T, K = 6, 5
        per_op = nb201_op_params()
        op_cost = np.array([[per_op[o] / 1e6 for o in NB201_OPS]] * T, np.float64)
        return CellCodec("nb201", T, K, np.ones((T, K), bool), np.zeros(T, np.int32),
                         np.full(T, -1, np.int32), np.arange(T, dtype=np.int32), op_cost,
                         cost.arch_cost("nb201", NB201Arch(ops=("none",) * 6),
                                        num_classes=num_classes)["params_M"], 8, 7)
    if space == "nb101":
        kind, src, dst = [], [], []
        for j in range(1, NB101_NODES):
            for i in range(j):
                kind.append(1); src.append(i); dst.append(j)
            if j <= NB101_NODES - 2:
                kind.append(0); src.append(-1); dst.append(j)
        T, K = len(kind), 3
        kind_a = np.array(kind, np.int32)
        static = np.ones((T, K), bool)
        static[kind_a == 1, 2] = False
        return CellCodec("nb101", T, K, static, kind_a, np.array(src, np.int32),
                         np.array(dst, np.int32), np.zeros((T, K)), 0.0, NB101_NODES, 5)
    raise ValueError(f"GA-NAS supports spaces 'nb201' and 'nb101', got {space!r}")


# ---------------------------------------------------------------------------------------
# Networks (flax.linen)
# ---------------------------------------------------------------------------------------
class GraphEncoder(nn.Module):
    """Bidirectional GCN on a padded cell graph -> graph embedding (mean + output node).

    Each layer: ``h <- relu(LN(W_s h + W_f mean_{pred} h + W_b mean_{succ} h))`` -- the
    forward/backward message passing of the GA-NAS encoder (details [U]).
    """
    hidden: int = 32
    layers: int = 2

    @nn.compact
    def __call__(self, adj: jax.Array, feats: jax.Array) -> jax.Array:  # [B,n,n], [B,n,F]
        h = nn.Dense(self.hidden)(feats)
        indeg = jnp.maximum(adj.sum(-2), 1.0)[..., None]  # [B, n, 1]
        outdeg = jnp.maximum(adj.sum(-1), 1.0)[..., None]
        for _ in range(self.layers):
            fwd = jnp.einsum("bij,bih->bjh", adj, h) / indeg
            bwd = jnp.einsum("bij,bjh->bih", adj, h) / outdeg
            h = nn.Dense(self.hidden)(h) + nn.Dense(self.hidden, use_bias=False)(fwd) \
                + nn.Dense(self.hidden, use_bias=False)(bwd)
            h = nn.relu(nn.LayerNorm()(h))
        return jnp.concatenate([h.mean(-2), h[:, -1]], -1)


class Generator(nn.Module):
    """GA-NAS generator: GNN encoder of a context cell + autoregressive MLP/GRU decoder.

    Methods are applied step by step from :func:`decode` (a ``lax.scan`` under jit).
    """
    T: int
    K: int
    hidden: int = 32
    gnn_layers: int = 2
    gru: int = 64

    def setup(self) -> None:
        """Submodules: encoder, GRU decoder, embeddings and output head."""
        self.encoder = GraphEncoder(self.hidden, self.gnn_layers)
        self.to_h0 = nn.Dense(self.gru)
        self.tok_embed = nn.Embed(self.K + 1, self.hidden)  # index K = start token
        self.pos_embed = nn.Embed(self.T, self.hidden)
        self.cell = nn.GRUCell(features=self.gru)
        self.head1 = nn.Dense(self.hidden)
        self.head2 = nn.Dense(self.K)

    def init_all(self, adj: jax.Array, feats: jax.Array) -> jax.Array:
        """Touches every submodule once (used by ``init``); returns the first logits."""
        h = self.encode(adj, feats)
        prev = jnp.full((adj.shape[0],), self.K, jnp.int32)
        h, logits = self.step(h, prev, jnp.int32(0))
        return logits

    def encode(self, adj: jax.Array, feats: jax.Array) -> jax.Array:
        """The decoder's initial GRU state from the context cell graphs ``[B, gru]``."""
        return jnp.tanh(self.to_h0(self.encoder(adj, feats)))

    def step(self, h: jax.Array, prev: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One decoding step: new GRU state and logits ``[B, K]`` of decision ``t``."""
        x = self.tok_embed(prev) + self.pos_embed(jnp.broadcast_to(t, prev.shape))
        h, _ = self.cell(h, x)
        return h, self.head2(nn.relu(self.head1(h)))


class Discriminator(nn.Module):
    """Pairwise (relativistic) Siamese GNN discriminator.

    ``logit(a, b) = g(e_a, e_b) - g(e_b, e_a)`` with a shared GNN encoder ``e`` and an MLP
    ``g``: antisymmetric by construction, ``sigmoid(logit)`` = P(a is the better, i.e.
    "winning-set-like", cell of the pair).
    """
    hidden: int = 32
    gnn_layers: int = 2

    def setup(self) -> None:
        """Submodules: the shared encoder and the pair MLP."""
        self.encoder = GraphEncoder(self.hidden, self.gnn_layers)
        self.d1 = nn.Dense(self.hidden)
        self.d2 = nn.Dense(1)

    def embed(self, adj: jax.Array, feats: jax.Array) -> jax.Array:
        """Cell embeddings ``[B, 2 * hidden]`` (the shared GNN encoder)."""
        return self.encoder(adj, feats)

    def pair(self, ea: jax.Array, eb: jax.Array) -> jax.Array:
        """Antisymmetric logit that embedding ``ea`` is the better cell of the pair."""
        def g(x, y):
            return self.d2(nn.relu(self.d1(jnp.concatenate([x, y, x * y], -1))))[..., 0]
        return g(ea, eb) - g(eb, ea)

    def __call__(self, adj_a: jax.Array, feats_a: jax.Array, adj_b: jax.Array,
                 feats_b: jax.Array) -> jax.Array:
        """Logit that cell ``a`` beats cell ``b`` (graph forms of both)."""
        return self.pair(self.embed(adj_a, feats_a), self.embed(adj_b, feats_b))


def batch_graph(codec: CellCodec, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Graph form of int[B, T] sequences: (adj[B, n, n], feats[B, n, F])."""
    return jax.vmap(codec.graph)(tokens)


def decode(gen: Generator, params: Any, codec: CellCodec, ctx_tokens: jax.Array,
           key: jax.Array | None, budget: jax.Array, forced: jax.Array | None = None,
           temperature: float = 1.0, allowed: tuple[jax.Array, jax.Array] | None = None,
           dists: bool = False) -> tuple[jax.Array, ...]:
    """Runs the autoregressive decoder over ``T`` steps (jit-able, batched).

    Args:
      gen, params: the generator and its parameters.
      codec: the space's codec (masks).
      ctx_tokens: int[B, T] context cells (the encoder's input).
      key: sampling key (ignored when ``forced`` is given).
      budget: scalar cell cost budget (``max_params - codec.base_cost``; ``inf`` for none).
      forced: int[B, T] sequences to score instead of sampling (teacher forcing).
      temperature: sampling temperature (log-probs are those of the untempered policy).
      allowed: optional ``(seqs int[M, T], avail f32[M])``: a finite set of decision
        sequences and which of them may be emitted. Each step then allows only the choices
        that extend the prefix written so far towards at least one available sequence (a
        trie mask, evaluated as ``[B, M] @ one_hot(seqs[:, t])``), *instead of* the codec's
        validity and budget masks (the set is assumed valid and within budget). This treats
        "already seen" like the other constraints, by masking while decoding: the result is
        G's policy restricted step by step to prefixes that still have an available
        completion (log-probs are those of this masked policy; they sum to one over the
        available set, but are not exactly G's probabilities renormalised over it, which
        would need G's probability of every available cell). ``avail.sum()`` must be > 0.
      dists: also return the masked per-step log-probabilities of every choice.

    Returns:
      ``(tokens int[B, T], log_prob f32[B], entropy f32[B])``: the sum over steps of the
      masked log-probabilities of the chosen choices and of the per-step entropies; with
      ``dists`` a fourth entry, f32[B, T, K], the per-step masked log-softmax.
    """
    B = ctx_tokens.shape[0]
    adj, feats = batch_graph(codec, ctx_tokens)
    h = gen.apply({"params": params}, adj, feats, method=Generator.encode)
    toks0 = jnp.zeros((B, codec.T), jnp.int32) if forced is None else forced

    if allowed is not None:
        seqs, avail = allowed
        match0 = jnp.broadcast_to(avail.astype(jnp.float32)[None], (B, seqs.shape[0]))
    else:
        match0 = jnp.zeros((B, 1), jnp.float32)

    def body(carry, t):
        h, toks, prev, match = carry
        h, logits = gen.apply({"params": params}, h, prev, t, method=Generator.step)
        if allowed is None:
            mask = codec.step_mask(toks, t, budget)
        else:  # choices that continue the prefix towards an available sequence
            col = jnp.take(seqs, t, axis=1)  # [M]
            mask = (match @ jax.nn.one_hot(col, codec.K)) > 0
        logits = jnp.where(mask, logits, -1e9)
        logp_all = jax.nn.log_softmax(logits, -1)
        if forced is None:
            choice = jax.random.categorical(jax.random.fold_in(key, t), logits / temperature, -1)
            toks = toks.at[:, t].set(choice)
        else:
            choice = forced[:, t]
        lp = jnp.take_along_axis(logp_all, choice[:, None], -1)[:, 0]
        p = jnp.exp(logp_all)
        ent = -jnp.sum(jnp.where(mask, p * logp_all, 0.0), -1)
        if allowed is not None:
            match = match * (col[None, :] == choice[:, None])
        return (h, toks, choice.astype(jnp.int32), match), (lp, ent, logp_all)

    prev0 = jnp.full((B,), codec.K, jnp.int32)
    (_, toks, _, _), (lps, ents, alls) = jax.lax.scan(body, (h, toks0, prev0, match0),
                                                      jnp.arange(codec.T))
    if dists:
        return toks, lps.sum(0), ents.sum(0), jnp.swapaxes(alls, 0, 1)
    return toks, lps.sum(0), ents.sum(0)
