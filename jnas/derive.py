"""Deriving the discrete architecture from α after a one-shot search, and scoring it on the
benchmark table.

NB201: argmax op of every edge (the NB201 DARTS baselines, Dong & Yang, ICLR 2020). DARTS
space: the DARTS rule, per intermediate node the two strongest non-``none`` incoming edges
(Liu et al., ICLR 2019, Sec. 2.4; DARTS, GDAS), or the SNAS rule (Xie et al., ICLR 2019),
the argmax op of every edge, ``none`` removing the edge (the 14-pair edge-all genotype).
"""
from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jnas import benchmarks, spaces
from jnas.cells import as_alpha_dict

__all__ = ["alpha_probs", "discretise", "score_arch", "DERIVE_RULES"]

#: Derivation rules of the DARTS space: DARTS's top-2 per node, SNAS's argmax of every edge.
DERIVE_RULES = ("top2", "argmax")


def alpha_probs(alpha: Any) -> dict[str, np.ndarray]:
    """softmax(α) per edge as host arrays (α a dict, or a bare NB201 array: ``{"cell": p}``)."""
    return {k: np.asarray(jax.nn.softmax(jnp.asarray(v), axis=-1))
            for k, v in as_alpha_dict(alpha).items()}


def _darts_cell(probs: np.ndarray, ops: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    none = ops.index("none")
    pairs: list[tuple[str, int]] = []
    start = 0
    for node in range(4):
        n_in = node + 2
        rows = probs[start:start + n_in]
        masked = rows.copy()
        masked[:, none] = -np.inf
        best_op = masked.argmax(axis=1)
        strength = masked.max(axis=1)
        top = sorted(np.argsort(-strength, kind="stable")[:2])
        pairs.extend((ops[int(best_op[j])], int(j)) for j in top)
        start += n_in
    return tuple(pairs)


def _edge_all_cell(probs: np.ndarray, ops: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    pairs: list[tuple[str, int]] = []
    start = 0
    for node in range(4):
        pairs.extend((ops[int(probs[start + j].argmax())], j) for j in range(node + 2))
        start += node + 2
    return tuple(pairs)


def discretise(space: str | Any, alpha: Any, rule: str = "top2") -> Any:
    """The discrete architecture of α (NB201: a bare ``[6, 5]`` array or ``{"cell": α}``;
    DARTS space: ``{"normal": α_n, "reduce": α_r}``).

    NB201: argmax op on every edge (``none`` allowed, as in the NB201 DARTS baselines); both
    rules agree there. DARTS space, ``rule='top2'`` (DARTS, GDAS): per intermediate node the 2
    incoming edges with the strongest non-``none`` op, each with that op (Liu et al., 2019,
    Sec. 2.4). ``rule='argmax'`` (SNAS, Xie et al., 2019): every edge with its argmax op, the
    14-pair edge-all genotype (a ``none`` pair is no edge).
    """
    if rule not in DERIVE_RULES:
        raise ValueError(f"unknown derivation rule {rule!r}; valid: {', '.join(DERIVE_RULES)}")
    space = spaces.get_space(space).name
    if space == "nb201":
        a = np.asarray(as_alpha_dict(alpha)["cell"])
        if a.shape != (len(spaces.NB201_EDGES), len(spaces.NB201_OPS)):
            raise ValueError(f"NB201 α must have shape (6, 5) (edges x ops), got {a.shape}")
        return spaces.NB201Arch.from_op_ids(tuple(int(i) for i in a.argmax(axis=-1)))
    if space == "darts":
        ops = tuple(spaces.DARTS_OPS)
        p = alpha_probs(as_alpha_dict(alpha, ("normal", "reduce")))
        cell = _darts_cell if rule == "top2" else _edge_all_cell
        return spaces.DARTSGenotype(normal=cell(p["normal"], ops), reduce=cell(p["reduce"], ops))
    raise ValueError(f"unknown space {space!r}; valid: nb201, darts")


_bench_cache: dict[str, Any] = {}


def score_arch(space: str, arch: Any) -> dict[str, float] | None:
    """NB201 200-epoch test accuracies of ``arch`` on the 3 datasets (None off NB201 or when the
    table is not available)."""
    if space != "nb201":
        return None
    if "nb201" not in _bench_cache:
        try:
            _bench_cache["nb201"] = benchmarks.load_nb201()
        except Exception as e:  # noqa: BLE001  (offline, no table: search still runs)
            warnings.warn(f"NB201 table unavailable, found cells are not scored: {e}")
            _bench_cache["nb201"] = None
    bench = _bench_cache["nb201"]
    if bench is None:
        return None
    i = bench.index_of(arch)
    out: dict[str, float] = {"nb201_index": int(i)}
    for ds in ("cifar10", "cifar100", "ImageNet16-120"):
        out[f"test_accuracy_{ds}"] = float(bench.test_acc[ds][i])
    out["test_accuracy"] = out["test_accuracy_cifar10"]
    return out
