"""jnas: neural architecture search in JAX.

The public API (``jnas.__all__``, listed with signatures in ``docs/API.md``) is re-exported
lazily from the submodules, so ``import jnas`` stays cheap and ``jnas.search`` never loads the
one-shot stack:

* spaces and costs: ``NB201``/``DARTS``/``NB101`` (:mod:`jnas.spaces`), ``get_space``,
  ``arch_cost`` (:mod:`jnas.cost`);
* networks and training: ``NB201Network``, ``NB201Supernet``, ... (:mod:`jnas.cells`),
  ``relax`` (continuous relaxations), ``create_train_state``, ``sgd_cosine`` (:mod:`jnas.train`);
* data: ``load_cifar10``, ``search_split``, ``normalize``, ``augment`` (:mod:`jnas.data`);
* one-shot flow: ``OneShotConfig``, ``discretise``, ``run_oneshot`` (:mod:`jnas.oneshot`),
  ``run_darts``, ``run_gdas``, ``run_snas``, ``run_less_local``, ``run_vmapped_seeds``
  (seeds of a one-shot search as one vmapped search, :mod:`jnas.oneshot_seeds`);
* sample-based flow: ``Searcher``, ``Evaluator``, ``Query``, ``run_search``, ``run_method``
  (:mod:`jnas.search`), ``RandomSearch``, ``RegularizedEvolution``, ``BONASSearcher``,
  ``GANASSearcher``, ``ReNASSearcher``; predictors on architecture values ``GraphPredictor``
  (GCN/MLP), ``RankingPredictor`` (ReNAS); benchmarks ``load_nb201``, ``make_evaluator``,
  ``load_table`` (:mod:`jnas.benchmarks`, :mod:`jnas.tables`);
* results: ``Result``, ``write_json``, ``summarise`` (:mod:`jnas.report`), ``kendall_tau``.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Submodules reachable as ``jnas.<name>`` (imported on first use).
SUBMODULES = ("spaces", "cost", "cells", "relax", "train", "data", "benchmarks", "tables",
              "search", "oneshot", "darts", "snas", "less_local", "oneshot_seeds", "gcn",
              "bo",
              "weight_sharing", "gan", "renas", "metrics", "report", "registry", "config",
              "rng", "download", "xla", "distributed", "layers", "fastconv", "step_cache")

_EXPORTS_BY_MODULE = {
    "spaces": ("NB201Arch", "DARTSGenotype", "NB101Arch", "NB201", "DARTS", "NB101",
               "get_space", "SearchSpace", "NB201_OPS", "NB201_EDGES", "DARTS_OPS",
               "NB101_OPS"),
    "cost": ("arch_cost", "op_costs", "cell_costs", "count_params"),
    "cells": ("NB201Network", "NB201Supernet", "DARTSNetwork", "DARTSSupernet",
              "NB101Network", "init_fast"),
    "train": ("TrainState", "create_train_state", "sgd_cosine", "make_mesh",
              "make_classifier_steps", "save_checkpoint", "restore_checkpoint",
              "recalibrate_bn"),
    "data": ("load_cifar10", "load_image_folder", "search_split", "normalize", "augment",
             "batch_iterator", "mock_cifar"),
    "benchmarks": ("load_nb201", "NB201Bench", "TabularEvaluator", "make_evaluator",
                   "load_nb101_official", "load_nb101_json"),
    "tables": ("TableBench", "TableEvaluator", "TableSpace", "load_table"),
    "search": ("Query", "Evaluator", "Searcher", "as_evaluator", "run_search", "run_method",
               "run_seeds",
               "RandomSearch", "RandomSearchConfig", "RegularizedEvolution", "REAConfig"),
    "oneshot": ("OneShotConfig", "SearchState", "make_supernet", "discretise", "run_oneshot"),
    "darts": ("run_darts", "run_gdas", "DARTSConfig", "DARTS2Config", "GDASConfig"),
    "snas": ("run_snas", "SNASConfig"),
    "less_local": ("run_less_local", "LessLocalConfig"),
    "oneshot_seeds": ("run_vmapped_seeds",),
    "gcn": ("GraphPredictor",),
    "bo": ("BONASSearcher", "BONASConfig"),
    "weight_sharing": ("WeightSharingEvaluator", "WSConfig"),
    "gan": ("GANASSearcher", "GANASConfig"),
    "renas": ("ReNASSearcher", "ReNASConfig", "RankingPredictor"),
    "metrics": ("kendall_tau", "spearman_rho", "precision_at_k"),
    "report": ("Result", "write_json", "load_results", "summarise"),
    "registry": ("get_method", "methods"),
    "config": ("apply_overrides", "parse_seeds"),
    "rng": ("as_key",),
}

#: The public API: name -> the submodule that provides it (imported on first use).
EXPORTS: dict[str, str] = {name: mod for mod, names in _EXPORTS_BY_MODULE.items()
                           for name in names}

__all__ = sorted(EXPORTS) + sorted(set(SUBMODULES) - set(EXPORTS))


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        return getattr(importlib.import_module(f"jnas.{EXPORTS[name]}"), name)
    if name in SUBMODULES:
        return importlib.import_module(f"jnas.{name}")
    raise AttributeError(f"module 'jnas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(SUBMODULES) | set(EXPORTS))
