"""The record of a sample-based search: proposals, answers, best cell, trajectory, resume.

:class:`History` keeps every proposal in order (arch string, signal, reported value, whether
it was a new query, cumulative simulated cost), the answer of every queried architecture and
the best-by-signal one; :func:`open_history` starts or resumes ``out_dir/history.jsonl`` and
:func:`replay` tells a re-built searcher the saved outcomes of its re-generated proposals.
Used by :func:`jnas.search.run_search`.
"""
from __future__ import annotations

import collections
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["arch_str", "arch_key", "nb201_canonical", "iso_key", "History", "open_history",
           "replay", "append_rows"]


def arch_str(arch: Any) -> str:
    """The standard string of an architecture (strings pass through)."""
    return arch if isinstance(arch, str) else arch.to_string()


def arch_key(arch: Any) -> str:
    """Identity used for duplicate detection (NB101: isomorphism-invariant hash)."""
    if hasattr(arch, "spec_hash"):
        return arch.spec_hash()
    return arch_str(arch)


def nb201_canonical(arch: Any) -> str:
    """An isomorphism-invariant form of an NB201 cell: the output node as a symbolic sum.

    Every node is the sorted sum of its input terms: a ``none`` edge, or an edge from a node
    that is exactly zero, gives the zero term ``#``; ``skip_connect`` passes its input's form
    on; any other op ``o`` on input form ``e`` gives ``(e)@o``. Edges that never reach the
    output and the order of summed paths leave the form unchanged. Its classes are exactly
    the 6,466 classes of the NB201 table's ``unique_str`` (checked in ``tests/test_search.py``).
    ``arch`` is an :class:`jnas.spaces.NB201Arch` (or its 6 ``ops``)."""
    ops = getattr(arch, "ops", arch)
    edge = {(1, 0): 0, (2, 0): 1, (2, 1): 2, (3, 0): 3, (3, 1): 4, (3, 2): 5}  # NB201_EDGES
    nodes = {0: "0"}
    for to in (1, 2, 3):
        cur = []
        for frm in range(to):
            op, src = ops[edge[to, frm]], nodes[frm]
            if op == "none" or src == "#":
                cur.append("#")
            elif op == "skip_connect":
                cur.append(src)
            else:
                cur.append(f"({src})@{op}")
        nodes[to] = "+".join(sorted(cur))
    return nodes[3]


def iso_key(arch: Any) -> str:
    """Identity up to isomorphism: :func:`nb201_canonical` for NB201 cells, the NB101 hash
    for NB101 cells, else the standard string."""
    if type(arch).__name__ == "NB201Arch":
        return "nb201:" + nb201_canonical(arch)
    return arch_key(arch)


def _load_history(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    meta, rows = None, []
    with open(path) as f:
        for n, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                # A run killed mid-write leaves at most a torn last line: ignore only that one.
                rest = f.read().strip()
                if rest:
                    raise ValueError(f"{path}:{n}: corrupt history line; fix or delete the "
                                     "file") from None
                break
            if "meta" in obj and n == 1:
                meta = obj["meta"]
            else:
                rows.append(obj)
    return meta, rows


def open_history(out_dir: str | Path | None, meta: dict[str, Any]
                  ) -> tuple[Path | None, list[dict[str, Any]]]:
    """``out_dir/history.jsonl`` (rewritten cleanly, or started) and its saved rows."""
    if out_dir is None:
        return None, []
    path = Path(out_dir) / "history.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        path.write_text(json.dumps({"meta": meta}) + "\n")
        return path, []
    old_meta, saved = _load_history(path)
    if old_meta is not None and old_meta != meta:
        raise ValueError(f"{path} was written by a run with different settings ({old_meta}) "
                         f"than this one ({meta}); use another --out folder or delete the old "
                         "one")
    tmp = path.with_suffix(".jsonl.tmp")  # rewrite cleanly (drops a torn last line)
    with open(tmp, "w") as f:
        f.write(json.dumps({"meta": meta}) + "\n")
        for r in saved:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, path)
    return path, saved


class History:
    """Every proposal in order, the answers of queried archs, the best-by-signal arch and the
    trajectory (``[queries, reported of the best so far]``). ``key`` is the identity of a
    query (:func:`arch_key`; :func:`iso_key` counts NB201 isomorphs as repeats)."""

    def __init__(self, key: Callable[[Any], str] = arch_key) -> None:
        self.key = key
        self.rows: list[dict[str, Any]] = []
        self.cache: dict[str, tuple[float, float]] = {}  # arch key -> (signal, reported)
        self.trajectory: list[list[float]] = []
        self.trajectory_sim_s: list[list[float]] = []
        self.best_signal, self.best_reported = -math.inf, math.nan
        self.best_arch: Any = None
        self.num_queries, self.sim_cost = 0, 0.0

    def record(self, arch: Any, sig: float, rep: float, new: bool) -> dict[str, Any]:
        """Appends one proposal; a new query counts against the budget."""
        row = {"arch": arch_str(arch), "signal": float(sig), "reported": float(rep),
               "new": bool(new)}
        if new:
            self.num_queries += 1
            if sig > self.best_signal:
                self.best_signal, self.best_reported = float(sig), float(rep)
                self.best_arch = arch
            self.trajectory.append([self.num_queries, self.best_reported])
            self.trajectory_sim_s.append([self.sim_cost, self.best_reported])
            row["query"] = self.num_queries
        row["sim_s"] = self.sim_cost
        self.rows.append(row)
        return row

    def unseen(self, archs: Sequence[Any]) -> list[Any]:
        """The archs of ``archs`` not queried before (first occurrence of each)."""
        fresh, here = [], set()
        for a in archs:
            k = self.key(a)
            if k not in self.cache and k not in here:
                fresh.append(a)
                here.add(k)
        return fresh


def replay(searcher: Any, archs: list[Any], saved: collections.deque, hist: History
            ) -> tuple[bool, str]:
    """Tells the searcher the saved outcome of its re-generated proposals (resume); returns
    (whether the batch was replayed, a note)."""
    rows = [saved.popleft() for _ in range(min(len(archs), len(saved)))]
    if len(rows) != len(archs):
        saved.clear()  # a partial batch at the end: re-query it normally
        return False, ""
    note = ""
    if [r["arch"] for r in rows] != [arch_str(a) for a in archs]:
        note = ("resumed history differs from the searcher's re-generated proposals "
                "(nondeterministic searcher); the saved outcomes were told instead")
        space_obj = getattr(searcher, "space", None)
        archs = [space_obj.parse(r["arch"]) if space_obj is not None else r["arch"]
                 for r in rows]
    for a, r in zip(archs, rows):
        if r["new"]:
            hist.sim_cost = float(r["sim_s"])
        hist.record(a, r["signal"], r["reported"], r["new"])
        hist.cache[hist.key(a)] = (r["signal"], r["reported"])
    searcher.tell(archs, [r["signal"] for r in rows])
    return True, note


def append_rows(path: Path | None, rows: list[dict[str, Any]]) -> None:
    """Appends history rows to ``path`` (nothing when None)."""
    if path is not None:
        with open(path, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
