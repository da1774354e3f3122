"""NAS-Bench-101 tables (Ying et al., ICML 2019, arXiv 1902.09635) as :class:`TableBench`.

Two sources:

* the **official record layout** ``{module_hash: (fixed, computed)}`` that the official
  ``nasbench`` API holds in memory (``fixed = {module_adjacency, module_operations,
  trainable_parameters}``, ``computed = {108: [3 runs × {final_validation_accuracy,
  final_test_accuracy, final_training_time, ...}]}``), pickled: :func:`load_nb101_official`.
  It stores per cell the mean over the 3 runs of the final (108-epoch) validation and test
  accuracy (in %), the parameter count and the training time. Architectures are built
  lazily, so the full 423,624-cell file loads without constructing every cell;
* the NAS-Bench-Suite-Zero JSON subset (``zc_nasbench101.json``, 500 cells, 108-epoch
  validation accuracy, FLOPs, params): :func:`load_nb101_json`.

Rows are looked up by the official isomorphism-invariant hash (``NB101Arch.spec_hash``), so
any isomorphic form of a cell finds its row.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jnas.download import fetch
from jnas.spaces_nb101 import NB101Arch
from jnas.tables import TableBench, TableSpace

__all__ = ["load_nb101_official", "load_nb101_json", "TableSpace"]

# zc_nasbench101.json op codes (data/README.md).
_ZC_OPS = ("input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")


class _LazyArchs(Sequence):
    """A read-only list of ``NB101Arch`` built on access from (matrix, ops) pairs."""

    def __init__(self, specs: list[tuple[Any, Sequence[str]]]) -> None:
        self._specs = specs
        self._built: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._specs)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]
        if i not in self._built:
            m, ops = self._specs[i]
            self._built[i] = NB101Arch(np.asarray(m).tolist(), tuple(ops))
        return self._built[i]


def load_nb101_official(path: str | Path | None = None, epochs: int = 108) -> TableBench:
    """Loads a pickle of the official NB101 records ``{hash: (fixed, computed)}``.

    Args:
      path: the pickle (default: the 30-cell ``nb101_dummy.pkl`` via :func:`fetch`).
      epochs: the training budget whose runs are averaged (108 in the official file).

    Returns:
      A :class:`TableBench` with signal = mean final validation accuracy (%), reported = mean
      final test accuracy (%), ``extra``: ``params``, ``train_time_s``, ``val_std``,
      ``test_std``; ``keys`` are the official hashes.

    Raises:
      ValueError: the file is not in the official layout (the message names the missing key).
    """
    p = Path(path) if path is not None else fetch("nb101_dummy.pkl")
    if not p.is_file():
        raise FileNotFoundError(f"NB101 records {p} not found")
    with open(p, "rb") as f:
        data = pickle.load(f)  # trusted local benchmark file (pickle executes code)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{p}: expected a non-empty dict {{hash: (fixed, computed)}}, got "
                         f"{type(data).__name__}")
    keys, specs, val, test, params, ttime, vstd, tstd = [], [], [], [], [], [], [], []
    for h, rec in data.items():
        try:
            fixed, computed = rec
            m, ops = fixed["module_adjacency"], fixed["module_operations"]
            runs = computed[epochs]
            v = [float(r["final_validation_accuracy"]) * 100 for r in runs]
            t = [float(r["final_test_accuracy"]) * 100 for r in runs]
            tt = [float(r["final_training_time"]) for r in runs]
            params.append(float(fixed["trainable_parameters"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{p}: record {h!r} is not in the official NB101 layout "
                             f"(fixed/computed[{epochs}]/final_*): missing {e}") from None
        keys.append(str(h))
        specs.append((m, ops))
        val.append(np.mean(v))
        test.append(np.mean(t))
        ttime.append(np.mean(tt))
        vstd.append(np.std(v))
        tstd.append(np.std(t))
    archs: Any = _LazyArchs(specs)
    return TableBench("nb101", archs, np.array(val), np.array(test),
                      "val_accuracy", "test_accuracy", keys, source=str(p),
                      extra={"params": np.array(params), "train_time_s": np.array(ttime),
                             "val_std": np.array(vstd), "test_std": np.array(tstd)})


def _zc_key_to_spec(key: str) -> tuple[list[list[int]], list[str]]:
    t = [int(x) for x in key.strip("()").split(",")]
    if len(t) != 56:
        raise ValueError(f"NB101 JSON key {key[:40]!r}... has {len(t)} ints, expected 49 "
                         "adjacency + 7 op codes")
    m = [t[7 * i:7 * i + 7] for i in range(7)]
    return m, [_ZC_OPS[i] for i in t[49:]]


def load_nb101_json(path: str | Path | None = None) -> TableBench:
    """Loads the NASLib NB101 JSON subset (``{"nasbench101": {"cifar10": {key: rec}}}``).

    Signal = reported = 108-epoch validation accuracy (%; the subset has no test accuracy);
    ``extra``: ``flops_M``, ``params_M``, ``num_records``. Keys are the official hashes.
    The file's 500 records hold only 292 distinct cells: many records have dangling nodes
    and prune to the same cell (their accuracies look like the 3 runs of that cell). Records
    of one cell are merged into one row with the mean validation accuracy.
    """
    p = Path(path) if path is not None else fetch("zc_nasbench101.json")
    with open(p) as f:
        data = json.load(f)
    try:
        recs = data["nasbench101"]["cifar10"]
    except (KeyError, TypeError):
        raise ValueError(f"{p}: expected {{'nasbench101': {{'cifar10': ...}}}}") from None
    rows: dict[str, list[Any]] = {}  # hash -> [arch, [val...], flops, params]
    for k, rec in recs.items():
        m, ops = _zc_key_to_spec(k)
        a = NB101Arch(m, tuple(ops))
        h = a.spec_hash()
        if h not in rows:
            rows[h] = [a.pruned(), [], float(rec["flops"]), float(rec["params"])]
        rows[h][1].append(float(rec["val_accuracy"]))
    keys = list(rows)
    val = np.array([np.mean(rows[h][1]) for h in keys])
    return TableBench("nb101", [rows[h][0] for h in keys], val, val, "val_accuracy",
                      "val_accuracy", keys, source=str(p),
                      extra={"flops_M": np.array([rows[h][2] for h in keys]),
                             "params_M": np.array([rows[h][3] for h in keys]),
                             "num_records": np.array([len(rows[h][1]) for h in keys])})
