"""Generic benchmark tables: rows of architectures with a signal and a reported column.

* :class:`TableBench` holds the rows (built by :func:`load_table` from a user CSV and by the
  NB101 loaders in :mod:`jnas.benchmarks_nb101`); rows are found by the architecture's
  lookup key (standard string, or the NB101 isomorphism hash).
* :class:`TableEvaluator` answers queries from it (search signal, reported score, cost).
* :class:`TableSpace` restricts a search space to the table's rows, so any searcher proposes
  only cells the table can answer; :func:`restrict` applies that to any evaluator
  (:meth:`TableEvaluator.restrict`; the full NB201 table covers its space and needs none).

Names: a table's **row** (``bench.row(arch)``) is the position in the table file; it is not
the space's enumeration index (``NB201Arch.to_index``).
"""
from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from jnas.rng import np_rng
from jnas.spaces import SPACES, get_space

__all__ = ["TableBench", "TableEvaluator", "TableSpace", "load_table", "restrict", "read_csv",
           "csv_column", "check_space", "ARCH_COLUMNS"]

ARCH_COLUMNS = ("arch", "arch_str", "arch_string", "architecture", "ArchitectureString",
                "cellstr", "genotype", "spec")  # architecture columns load_table looks for


def read_csv(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of a CSV file (a UTF-8 byte-order mark is ignored)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path} is empty; expected a header row and data rows")
    return rows[0], rows[1:]


def csv_column(header: list[str], name: str, path: str | Path) -> int:
    """Position of column ``name`` in ``header``; ``ValueError`` listing the columns."""
    if name not in header:
        raise ValueError(f"{path}: missing column {name!r}; columns are {header}")
    return header.index(name)


def check_space(what: str, table_space: str, space: Any) -> None:
    """``ValueError`` when a benchmark over ``table_space`` is used with another space."""
    if space is None:
        return
    name = get_space(space).name
    if name != table_space:
        raise ValueError(f"{what} holds {table_space} cells but the search space is {name}; "
                         f"use --space {table_space} (or a {name} benchmark)")


@dataclasses.dataclass(eq=False)
class TableBench:
    """A generic table: architectures with a signal column and a reported column.

    ``archs`` are the space's architecture values; ``keys`` their lookup keys (standard
    string, or the NB101 isomorphism hash); ``extra`` holds further per-row columns.
    """
    space: str                       # name of the space the rows belong to
    archs: Any                       # the rows' architectures (a sequence)
    signal: np.ndarray               # column the search sees, per row
    reported: np.ndarray             # column results report, per row
    signal_name: str                 # name of the signal column
    report_name: str                 # name of the reported column
    keys: list[str]                  # lookup key per row
    source: str = ""                 # where the table came from (file path)
    extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # other columns

    def __post_init__(self) -> None:
        self._rows = {k: i for i, k in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.archs)

    def key_of(self, arch: Any) -> str:
        """The lookup key of ``arch`` (NB101: isomorphism-invariant hash)."""
        if isinstance(arch, str):
            return arch
        if self.space == "nb101" and hasattr(arch, "spec_hash"):
            return arch.spec_hash()
        return arch.to_string()

    def has(self, arch: Any) -> bool:
        """Whether the table holds ``arch``."""
        return self.key_of(arch) in self._rows

    def row(self, arch: Any) -> int:
        """Table row of ``arch`` (not the space index); ``ValueError`` if not held."""
        k = self.key_of(arch)
        if k not in self._rows:
            s = arch if isinstance(arch, str) else arch.to_string()
            raise ValueError(f"architecture {s} is not in the table {self.source or ''} "
                             f"({len(self)} rows); search within the table's cells")
        return self._rows[k]

    index_of = row  # the name used so far

    def arch_at(self, i: int) -> Any:
        """The architecture of row ``i``; ``ValueError`` outside the table."""
        if not 0 <= int(i) < len(self):
            raise ValueError(f"table row {i} is out of range; valid rows: 0..{len(self) - 1}")
        return self.archs[int(i)]

    def lookup(self, arch: Any) -> dict[str, Any]:
        """The table's record of ``arch``: its row, signal, reported value and extra columns."""
        i = self.row(arch)
        out: dict[str, Any] = {"row": i, self.signal_name: float(self.signal[i]),
                               self.report_name: float(self.reported[i]),
                               "reported": float(self.reported[i])}
        for k, v in self.extra.items():
            out[k] = float(v[i])
        return out


class TableEvaluator:
    """Query-counting evaluator over a :class:`TableBench` (user CSV, NB101 tables).

    Simulated cost: the ``train_time_s`` column when the table has one, else 0.
    """

    def __init__(self, bench: TableBench) -> None:
        self.bench, self.space, self.protocol = bench, bench.space, "table"
        self.signal_name, self.report_name = bench.signal_name, bench.report_name
        self.num_queries = 0
        self.simulated_cost_s = 0.0

    def evaluate(self, archs: Iterable[Any]) -> list[float]:
        """Signal column values of ``archs``; counts each as one query."""
        idx = [self.bench.row(a) for a in archs]
        self.num_queries += len(idx)
        t = self.bench.extra.get("train_time_s")
        if t is not None:
            self.simulated_cost_s += float(sum(t[i] for i in idx))
        return [float(self.bench.signal[i]) for i in idx]

    def reported_score(self, arch: Any) -> float:
        """The reported column value of ``arch`` (no query)."""
        return float(self.bench.reported[self.bench.row(arch)])

    def report(self, arch: Any) -> dict[str, Any]:
        """All numbers of ``arch``'s row (not counted as a query)."""
        return self.bench.lookup(arch)

    def describe(self) -> dict[str, Any]:
        """What the evaluator measures."""
        return {"benchmark": self.bench.source, "signal": self.signal_name,
                "reported": self.report_name}

    def restrict(self, space: Any) -> "TableSpace":
        """``space`` (name or object) restricted to the table's rows; ``ValueError`` if the
        table belongs to another space."""
        check_space(f"the table {self.bench.source or ''}".rstrip(), self.bench.space, space)
        return TableSpace(self.bench, get_space(space))


def restrict(evaluator: Any, space: Any) -> Any:
    """The space a searcher should use with ``evaluator``: restricted to the table's rows
    when the evaluator has a ``restrict`` method (tables that cover part of the space), else
    the space object itself."""
    if hasattr(evaluator, "restrict"):
        return evaluator.restrict(space)
    return get_space(space)


class TableSpace:
    """A search space restricted to the rows of a table (e.g. the 292-cell NB101 subset).

    Sampling is uniform over the rows; ``mutate`` picks a random neighbour of the base space
    that the table holds (one edge/op change), or a random other row when none is held;
    ``neighbours`` are the held neighbours. Everything else (``parse``, ``validate``,
    ``dedup``, ``graph_size``, ...) is the base space's.
    """

    def __init__(self, bench: TableBench, base: Any) -> None:
        self.bench, self.base = bench, get_space(base)
        self.name = self.base.name
        self.size = len(bench)

    def __getattr__(self, attr: str) -> Any:
        if attr in ("bench", "base"):  # not yet set (e.g. during unpickling)
            raise AttributeError(attr)
        return getattr(self.base, attr)

    def __repr__(self) -> str:
        return f"TableSpace({self.base!r}, {len(self.bench)} rows)"

    def enumerate(self) -> list[Any]:
        """All rows' architectures."""
        return [self.bench.arch_at(i) for i in range(len(self.bench))]

    def sample(self, key: Any, n: int = 1) -> list[Any]:
        """``n`` rows drawn uniformly (with replacement)."""
        idx = np_rng(key).integers(len(self.bench), size=int(n))
        return [self.bench.arch_at(int(i)) for i in idx]

    def neighbours(self, arch: Any) -> list[Any]:
        """Base-space neighbours of ``arch`` that the table holds."""
        return [a for a in self.base.neighbours(arch) if self.bench.has(a)]

    def mutate(self, key: Any, arch: Any) -> Any:
        """A held neighbour of ``arch`` (uniform), else a uniform other row."""
        rng = np_rng(key)
        near = self.neighbours(arch)
        if near:
            return near[int(rng.integers(len(near)))]
        own = self.bench.row(arch) if self.bench.has(arch) else None
        others = [i for i in range(len(self.bench)) if i != own]
        return self.bench.arch_at(others[int(rng.integers(len(others)))])


def _other_space(text: str, space_name: str) -> str | None:
    """The name of another space that parses ``text`` (for a clearer mismatch message)."""
    for name, sp in SPACES.items():
        if name != space_name:
            try:
                sp.parse(text)
                return name
            except ValueError:
                pass
    return None


def load_table(csv_path: str | Path, space: Any, metric: str, report: str | None = None,
               arch_column: str | None = None) -> TableBench:
    """Loads a user CSV: one architecture-string column and numeric metric columns.

    Args:
      csv_path: the CSV file (header row first; a UTF-8 byte-order mark is fine).
      space: a space object or name (``'nb201'``, ``'darts'``, ``'nb101'``) that parses
        the architecture strings.
      metric: column the search sees (higher is better).
      report: column reported in results (default: ``metric``).
      arch_column: the architecture column (default: the first of :data:`ARCH_COLUMNS`
        present).

    Raises:
      ValueError: a missing column (the message lists the columns), an unparseable
        architecture string (with its line number; naming the space whose cells the table
        holds when it is another one), a duplicate architecture (both line numbers), or a
        missing/NaN/non-numeric value (line number and column).
    """
    path = Path(csv_path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark table {path} not found")
    space = get_space(space)
    header, rows = read_csv(path)
    header = [h.strip() for h in header]
    if arch_column is None:
        found = [c for c in ARCH_COLUMNS if c in header]
        if not found:
            raise ValueError(f"{path}: no architecture column; expected one of "
                             f"{list(ARCH_COLUMNS)} (or pass arch_column); columns are "
                             f"{header}")
        arch_column = found[0]
    report = report or metric
    cols = {n: csv_column(header, n, path) for n in dict.fromkeys((arch_column, metric, report))}
    archs, keys, sig, rep, seen = [], [], [], [], {}
    space_name = space.name
    for line, r in enumerate(rows, start=2):
        if not any(x.strip() for x in r):
            continue
        if len(r) != len(header):
            raise ValueError(f"{path}:{line}: {len(r)} fields, header has {len(header)}")
        text = r[cols[arch_column]].strip()
        try:
            arch = space.parse(text)
        except ValueError as e:
            other = _other_space(text, space_name) if not archs else None
            if other is not None:
                raise ValueError(f"{path} holds {other} cells but the search space is "
                                 f"{space_name}; use --space {other}") from None
            raise ValueError(f"{path}:{line}: bad {space_name} architecture {text!r}: "
                             f"{e}") from None
        key = arch.spec_hash() if space_name == "nb101" and hasattr(arch, "spec_hash") \
            else arch.to_string()
        if key in seen:
            raise ValueError(f"{path}:{line}: duplicate architecture {text!r} (same as line "
                             f"{seen[key]}); keep one row per architecture")
        seen[key] = line
        vals = []
        for name in (metric, report):
            raw = r[cols[name]].strip()
            try:
                v = float(raw)
            except ValueError:
                raise ValueError(f"{path}:{line}: column {name!r} value {raw!r} is not a "
                                 "number") from None
            if not math.isfinite(v):
                raise ValueError(f"{path}:{line}: column {name!r} is {raw!r} (NaN/inf); fill "
                                 "or drop the row")
            vals.append(v)
        archs.append(arch)
        keys.append(key)
        sig.append(vals[0])
        rep.append(vals[1])
    if not archs:
        raise ValueError(f"{path}: no data rows")
    return TableBench(space_name, archs, np.array(sig), np.array(rep), metric, report, keys,
                      source=str(path))
