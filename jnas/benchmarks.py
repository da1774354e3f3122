"""Tabular benchmarks: NAS-Bench-201 tables, user CSV tables, and query-counting evaluators.

NAS-Bench-201 (Dong & Yang, ICLR 2020, arXiv 2001.00326) is read from three small public
files (see :mod:`jnas.download`), never from the 28 GB object graph of the official API:

* ``nats_bench.csv``: 200-epoch test accuracy of all 15,625 cells on CIFAR-10,
  CIFAR-100, ImageNet16-120; row ``i`` = official NB201 index ``i``;
* ``nb201_12epoch_accs.csv``: 12-epoch validation and test accuracy (same row order; checked);
* ``zc_nasbench201.json``: the ~725-cell NAS-Bench-Suite-Zero subset with 200-epoch
  *validation* accuracy, FLOPs and params (NaN elsewhere for the validation accuracy).

The parsed arrays are cached as ``.npz`` in the cache folder, keyed by the files' sha256, so a
second load takes milliseconds.

Evaluators separate the **search signal** (what a searcher sees) from the **reported score**
(what a paper tables). :class:`TabularEvaluator` implements the two NB201 protocols:

* ``'12epoch'`` (default, the NB201 paper's protocol for RS/REA/REINFORCE/BOHB): signal =
  12-epoch validation accuracy on the chosen dataset (CIFAR-10: the ``cifar10-valid`` split);
  reported = 200-epoch test accuracy of the cell.
* ``'200epoch'`` (what many predictor papers do): signal = reported = the 200-epoch test
  accuracy itself. The search then peeks at test numbers; label results accordingly. (A
  200-epoch *validation* accuracy exists only for the ~725-cell subset, so it cannot be the
  signal over the whole space.)

**Simulated cost is a model, not a measurement**: one query costs
``epochs * scale * (overhead_s + per_mflop_s * flops_M)`` (:func:`simulated_time_s`;
epochs = 12 or 200; FLOPs at the dataset's input size), i.e. per-epoch training time linear
in the cell's FLOPs, times ``scale`` = training images per epoch / 25,000
(:data:`TRAIN_IMAGES`). The defaults ``overhead_s = 6.6 s``, ``per_mflop_s = 0.037 s/MFLOP``
are the line through two per-epoch training times logged in NAS-Bench-201 (Dong & Yang,
ICLR 2020, arXiv 2001.00326), ``get_more_info(i, 'cifar10-valid', hp='200')['train-per-time']``
of the official API as printed in public code that uses it (not a number from the paper):
7.22 s for cell 0 (17.96 MFLOPs) and 10.85 s for cell 1 (116.69 MFLOPs), on cifar10-valid's
25,000 training images. Check: the model's mean over all 15,625 cells is 8.7 s per epoch;
public NATS-Bench code (Mirofil/SOTL_NAS, ``nasbench.py``) reports a mean ``train-per-time``
of 9.14 s over 15,000 cells with ``hp='12'`` (-5 %). So an average CIFAR-10 12-epoch query
costs ~105 s, and the 12,000 s budget of the NB201 RS/REA rows buys ~115 queries (the
reference code, D-X-Y/AutoDL-Projects ``exps/algos/R_EA.py`` @ 28e4b840 run by
``scripts-search/algos/R-EA.sh --time_budget 12000``, charges each query the 12-epoch
``train-all-time + valid-per-time`` of ``cifar10-valid``). Not modelled: the ~3 s evaluation
per query and per-cell timing noise. The CIFAR-100 (50,000 images, x2) and ImageNet16-120
(151,700 images at 16x16, x6.07) scales assume time proportional to images per epoch; no
measured times for them were found, so they are not fitted. Pass ``overhead_s`` / ``per_mflop_s`` to
:class:`TabularEvaluator` to recalibrate.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from jnas import cost, download
from jnas.benchmarks_nb101 import load_nb101_json, load_nb101_official
from jnas.download import fetch
from jnas.spaces import NB201_OPS, NB201Arch
from jnas.tables import (TableBench, TableEvaluator, TableSpace, check_space, csv_column,
                         load_table, read_csv, restrict)

__all__ = ["DATASETS", "PROTOCOLS", "data_dir", "fetch", "NB201Bench", "load_nb201",
           "TabularEvaluator", "TableBench", "TableEvaluator", "load_table", "make_evaluator",
           "load_nb101_official", "load_nb101_json", "nb201_cost", "simulated_time_s",
           "COST_OVERHEAD_S", "COST_PER_MFLOP_S", "TRAIN_IMAGES", "TableSpace", "restrict",
           "BENCHMARK_SPACES", "zc_key_to_string", "clear_loaded"]

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
PROTOCOLS = ("12epoch", "200epoch")
_COL200 = {"cifar10": "CIFAR10TestAccuracy200Epochs",
           "cifar100": "CIFAR100TestAccuracy200Epochs",
           "ImageNet16-120": "ImageNetTestAccuracy200Epochs"}
_COL12 = {"cifar10": ("cifar10-val", "cifar10-test"),
          "cifar100": ("cifar100-val", "cifar100-test"),
          "ImageNet16-120": ("imagenet-val", "imagenet-test")}
# zc_nasbench201.json tuple keys: op codes over this list, edge order (1,2),(1,3),(1,4),(2,3),
# (2,4),(3,4) in 1-based node numbers (data/README.md).
_ZC_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
_CACHE_VERSION = 1


def data_dir() -> Path:
    """``$JNAS_DATA_DIR`` or ``~/.cache/jnas`` (where benchmark files are looked up)."""
    return download.data_dir()


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f"unknown NB201 dataset {dataset!r}; valid datasets: "
                         f"{', '.join(DATASETS)}")
    return dataset


# ----------------------------------------------------------------------------- cost model
def nb201_cost(op_counts: Sequence[int], dataset: str = "cifar10") -> dict[str, float]:
    """FLOPs (M) and params (M) of the NB201 network from a cell's op counts, as the NB201
    tables report them (:func:`jnas.cost.nb201_reference_cost`)."""
    return cost.nb201_reference_cost(op_counts, _check_dataset(dataset))


#: Per-epoch cost model (s, s/MFLOP) on 25,000 training images: the line through the NB201
#: API's per-epoch training times of cells 0 and 1 on cifar10-valid (module docstring).
COST_OVERHEAD_S = 6.6
COST_PER_MFLOP_S = 0.037
#: Training images per epoch behind each search signal (NB201 paper, datasets): CIFAR-10
#: 12-epoch = cifar10-valid's train split; CIFAR-10 200-epoch = train+valid; CIFAR-100 and
#: ImageNet16-120 = their training sets.
TRAIN_IMAGES = {("cifar10", "12epoch"): 25_000, ("cifar10", "200epoch"): 50_000,
                ("cifar100", "12epoch"): 50_000, ("cifar100", "200epoch"): 50_000,
                ("ImageNet16-120", "12epoch"): 151_700, ("ImageNet16-120", "200epoch"): 151_700}


def simulated_time_s(flops_M: float | np.ndarray, epochs: int,
                     overhead_s: float = COST_OVERHEAD_S, per_mflop_s: float = COST_PER_MFLOP_S,
                     scale: float = 1.0) -> float | np.ndarray:
    """Modelled training time of one query,
    ``epochs * scale * (overhead_s + per_mflop_s * flops_M)``, with ``scale`` = training
    images per epoch / 25,000 (see the module docstring; a model, not a measurement)."""
    return epochs * scale * (overhead_s + per_mflop_s * np.asarray(flops_M, dtype=np.float64))


# ----------------------------------------------------------------------------- NB201 tables
@dataclasses.dataclass(eq=False)
class NB201Bench:
    """The NAS-Bench-201 tables over the 15,625 official rows (row ``i`` = NB201 index ``i``).

    Look cells up with :meth:`row` / :meth:`lookup`, never with ``arch.to_index()``: that is
    the space index (another order), e.g. space index 8343 is table row 6111.

    Attributes:
      arch_strings: standard strings by table row (official NB201 index, not the space
        index), ``str`` array of 15,625.
      unique_strings: isomorphism-canonical strings (6,466 distinct values).
      test_acc, val12, test12: ``{dataset: float64[15625]}`` in percent (200-epoch test;
        12-epoch validation; 12-epoch test).
      val200: ``{dataset: float64[15625]}`` 200-epoch validation accuracy, NaN outside the
        ~725-cell subset of ``zc_nasbench201.json``.
      flops_M, params_M: ``{dataset: float64[15625]}`` from :func:`nb201_cost`.
    """
    arch_strings: np.ndarray
    unique_strings: np.ndarray
    test_acc: dict[str, np.ndarray]
    val12: dict[str, np.ndarray]
    test12: dict[str, np.ndarray]
    val200: dict[str, np.ndarray]
    flops_M: dict[str, np.ndarray]
    params_M: dict[str, np.ndarray]
    name: str = "nb201"

    def __post_init__(self) -> None:
        self._rows = {s: i for i, s in enumerate(self.arch_strings.tolist())}

    def __len__(self) -> int:
        return len(self.arch_strings)

    def row(self, arch: Any) -> int:
        """Table row of an ``NB201Arch`` or a standard string: the official NB201 index
        (not the space index ``NB201Arch.to_index``)."""
        s = arch if isinstance(arch, str) else arch.to_string()
        try:
            return self._rows[s]
        except KeyError:
            raise ValueError(f"{s!r} is not an NB201 cell string; expected the standard form "
                             "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|") from None

    index_of = row  # the name used so far

    def arch_at(self, i: int) -> Any:
        """The ``NB201Arch`` at table row (official index) ``i``."""
        if not 0 <= int(i) < len(self):
            raise ValueError(f"NB201 index {i} is out of range; valid indices: "
                             f"0..{len(self) - 1}")
        return NB201Arch.from_string(str(self.arch_strings[int(i)]))

    def lookup(self, arch: Any) -> dict[str, Any]:
        """The table's record of ``arch``: its row (official index), string and every
        column, per dataset (``{"test_acc": {dataset: %}, ...}``)."""
        i = self.row(arch)
        out: dict[str, Any] = {"row": i, "arch": str(self.arch_strings[i]),
                               "unique_string": str(self.unique_strings[i])}
        for col in ("test_acc", "val12", "test12", "val200", "flops_M", "params_M"):
            out[col] = {ds: float(v[i]) for ds, v in getattr(self, col).items()}
        return out


def _op_counts(s: str) -> list[int]:
    ops = [tok.split("~")[0] for tok in s.replace("+", "").split("|") if tok]
    c = Counter(ops)
    return [c[o] for o in NB201_OPS]


def zc_key_to_string(key: str) -> str:
    """The standard NB201 string of a ``zc_nasbench201.json`` key (op codes over its own op
    list, edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4))."""
    t = [int(x) for x in key.strip("()").split(",")]
    o = [_ZC_OPS[i] for i in t]
    return f"|{o[0]}~0|+|{o[1]}~0|{o[3]}~1|+|{o[2]}~0|{o[4]}~1|{o[5]}~2|"


def _parse_nb201(p200: Path, p12: Path, pzc: Path) -> dict[str, np.ndarray]:
    h, rows = read_csv(p200)
    ia, iu = csv_column(h, "ArchitectureString", p200), csv_column(h, "UniqueString", p200)
    out: dict[str, np.ndarray] = {
        "arch_strings": np.array([r[ia] for r in rows]),
        "unique_strings": np.array([r[iu] for r in rows])}
    for ds, c in _COL200.items():
        j = csv_column(h, c, p200)
        out[f"test_acc/{ds}"] = np.array([float(r[j]) for r in rows])
    h12, rows12 = read_csv(p12)
    if len(rows12) != len(rows):
        raise ValueError(f"{p12} has {len(rows12)} rows but {p200} has {len(rows)}; the two "
                         "NB201 tables must list the same cells in the same order")
    jc, ja = csv_column(h12, "cellstr", p12), csv_column(h12, "arch", p12)
    for i, (r, r12) in enumerate(zip(rows, rows12)):
        if r12[jc] != r[ia] or int(r12[ja]) != i:
            raise ValueError(f"row order mismatch at index {i}: {p12.name} has "
                             f"{r12[ja]} {r12[jc]!r}, {p200.name} has {r[ia]!r}; the tables "
                             "must be in the same (official NB201) order")
    for ds, (cv, ct) in _COL12.items():
        jv, jt = csv_column(h12, cv, p12), csv_column(h12, ct, p12)
        out[f"val12/{ds}"] = np.array([float(r[jv]) for r in rows12])
        out[f"test12/{ds}"] = np.array([float(r[jt]) for r in rows12])
    index = {s: i for i, s in enumerate(out["arch_strings"].tolist())}
    counts = np.array([_op_counts(s) for s in out["arch_strings"].tolist()])
    with open(pzc) as f:
        zc = json.load(f)
    for ds in DATASETS:
        cost = [nb201_cost(c, ds) for c in counts]
        out[f"flops_M/{ds}"] = np.array([c["flops_M"] for c in cost])
        out[f"params_M/{ds}"] = np.array([c["params_M"] for c in cost])
        v = np.full(len(rows), np.nan)
        for key, rec in zc.get(ds, {}).items():
            v[index[zc_key_to_string(key)]] = float(rec["val_accuracy"])
        out[f"val200/{ds}"] = v
    return out


_LOADED: dict[tuple[str, ...], NB201Bench] = {}


def clear_loaded() -> None:
    """Forgets the tables :func:`load_nb201` keeps in memory (the ``.npz`` cache stays)."""
    _LOADED.clear()


def load_nb201(directory: str | Path | None = None, *, cache: bool = True) -> NB201Bench:
    """Loads the NAS-Bench-201 tables (fetching/verifying the files) as an :class:`NB201Bench`.

    Args:
      directory: folder holding ``nb201/*.csv|json`` (default: :func:`fetch`, i.e.
        ``$JNAS_DATA_DIR`` or the download cache).
      cache: reuse/write the parsed ``.npz`` in the cache folder.

    Raises:
      ValueError: the tables disagree on the row order or miss a column.
      jnas.download.DownloadError: a file is missing/corrupt and cannot be downloaded.
    """
    names = ("nats_bench.csv", "nb201_12epoch_accs.csv", "zc_nasbench201.json")
    if directory is not None:
        paths = [Path(directory) / "nb201" / n if (Path(directory) / "nb201" / n).is_file()
                 else Path(directory) / n for n in names]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"{p} not found; run `jnas download` or pass the "
                                        "folder holding the nb201 files")
    else:
        paths = [fetch(n) for n in names]
    digest = hashlib.sha256("".join(download.sha256_file(p) for p in paths).encode()
                            ).hexdigest()[:16]
    memo = (digest,)
    if memo in _LOADED:
        return _LOADED[memo]
    arrays = None
    cfile = download.cache_dir() / f"nb201_tables_v{_CACHE_VERSION}_{digest}.npz"
    if cache and cfile.is_file():
        try:
            with np.load(cfile, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError):
            arrays = None
    if arrays is None:
        arrays = _parse_nb201(*paths)
        if cache:
            try:
                cfile.parent.mkdir(parents=True, exist_ok=True)
                tmp = cfile.with_name(cfile.name + f".{os.getpid()}.tmp.npz")
                np.savez(tmp, **arrays)
                os.replace(tmp, cfile)
            except OSError:
                pass  # a read-only cache only costs speed
    group = lambda g: {ds: arrays[f"{g}/{ds}"] for ds in DATASETS}  # noqa: E731
    bench = NB201Bench(arrays["arch_strings"], arrays["unique_strings"], group("test_acc"),
                       group("val12"), group("test12"), group("val200"), group("flops_M"),
                       group("params_M"))
    _LOADED[memo] = bench
    return bench


# ----------------------------------------------------------------------------- evaluators
class TabularEvaluator:
    """Query-counting NB201 evaluator with a search signal and a reported score.

    Args:
      bench: an :class:`NB201Bench`.
      dataset: ``'cifar10'``, ``'cifar100'`` or ``'ImageNet16-120'``.
      protocol: ``'12epoch'`` (signal = 12-epoch validation accuracy; NB201 paper) or
        ``'200epoch'`` (signal = 200-epoch test accuracy; labelled as such in reports).
      overhead_s, per_mflop_s: constants of the simulated-cost model (per epoch on 25,000
        images; defaults fitted to NB201's logged times, see the module docstring); the
        dataset's :data:`TRAIN_IMAGES` scale them.

    Attributes:
      num_queries: architectures evaluated so far (every arch passed to :meth:`evaluate`).
      simulated_cost_s: modelled training time of those queries (:func:`simulated_time_s`).
    """

    def __init__(self, bench: NB201Bench, dataset: str = "cifar10",
                 protocol: str = "12epoch", *, overhead_s: float = COST_OVERHEAD_S,
                 per_mflop_s: float = COST_PER_MFLOP_S) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; valid protocols: "
                             f"{', '.join(PROTOCOLS)}")
        self.bench, self.dataset, self.protocol = bench, _check_dataset(dataset), protocol
        self.space = "nb201"
        self.epochs = 12 if protocol == "12epoch" else 200
        self._signal = bench.val12[dataset] if protocol == "12epoch" else bench.test_acc[dataset]
        self.signal_name = (f"{dataset} 12-epoch validation accuracy" if protocol == "12epoch"
                            else f"{dataset} 200-epoch TEST accuracy (signal = reported)")
        self.report_name = f"{dataset} 200-epoch test accuracy"
        scale = TRAIN_IMAGES[(dataset, protocol)] / 25_000
        self._cost_model = (float(overhead_s), float(per_mflop_s), scale)
        self._cost = simulated_time_s(bench.flops_M[dataset], self.epochs, *self._cost_model)
        self.num_queries = 0
        self.simulated_cost_s = 0.0

    def evaluate(self, archs: Iterable[Any]) -> list[float]:
        """Search signals (%) of ``archs``; counts each as one query."""
        idx = [self.bench.row(a) for a in archs]
        self.num_queries += len(idx)
        self.simulated_cost_s += float(sum(self._cost[i] for i in idx))
        return [float(self._signal[i]) for i in idx]

    def reported_score(self, arch: Any) -> float:
        """The score a result reports for ``arch`` (200-epoch test accuracy); no query."""
        return float(self.bench.test_acc[self.dataset][self.bench.row(arch)])

    def query_cost_s(self, arch: Any) -> float:
        """Modelled seconds of one query of ``arch``."""
        return float(self._cost[self.bench.row(arch)])

    def report(self, arch: Any) -> dict[str, Any]:
        """The benchmark's numbers for ``arch`` (not counted as a query)."""
        b, i, ds = self.bench, self.bench.row(arch), self.dataset
        out: dict[str, Any] = {
            "nb201_index": i, "protocol": self.protocol,
            "test_accuracy": float(b.test_acc[ds][i]),
            "val12_accuracy": float(b.val12[ds][i]), "test12_accuracy": float(b.test12[ds][i]),
            "flops_M": float(b.flops_M[ds][i]), "params_M": float(b.params_M[ds][i])}
        for d in DATASETS:
            out[f"test_accuracy_{d}"] = float(b.test_acc[d][i])
        v = b.val200[ds][i]
        out["val200_accuracy"] = None if math.isnan(v) else float(v)
        return out

    def describe(self) -> dict[str, Any]:
        """What the evaluator measures (goes into result files)."""
        return {"benchmark": "nb201", "dataset": self.dataset, "protocol": self.protocol,
                "signal": self.signal_name, "reported": self.report_name,
                "cost_model": f"epochs*{self._cost_model[2]:.4g}*({self._cost_model[0]} s + "
                              f"{self._cost_model[1]} s/MFLOP*flops_M), a model"}


#: The space whose cells each named benchmark holds.
BENCHMARK_SPACES = {"nb201": "nb201", "nb101": "nb101"}


def make_evaluator(name: str, dataset: str = "cifar10", protocol: str = "12epoch", *,
                   space: Any = None) -> Any:
    """Evaluator for a named benchmark: ``'nb201'`` (both protocols) or ``'nb101'`` (the
    500-cell NASLib subset: signal = reported = 108-epoch validation accuracy).

    Args:
      name: the benchmark.
      dataset, protocol: what the NB201 evaluator measures (see :class:`TabularEvaluator`).
      space: the search space (name or object) the evaluator will serve; ``ValueError`` if
        the benchmark holds another space's cells (e.g. ``nb101`` for ``nb201``).
    """
    if name in BENCHMARK_SPACES:
        check_space(f"the {name} benchmark", BENCHMARK_SPACES[name], space)
    if name == "nb201":
        return TabularEvaluator(load_nb201(), dataset=dataset, protocol=protocol)
    if name == "nb101":
        if dataset != "cifar10":
            raise ValueError("the NB101 table is CIFAR-10 only; use --dataset cifar10")
        return TableEvaluator(load_nb101_json())
    if name == "darts":
        raise ValueError("no tabular benchmark for the darts space; give --benchmark FILE.csv "
                         "or use a one-shot method")
    raise ValueError(f"unknown benchmark {name!r}; valid: nb201, nb101, or a .csv file")
