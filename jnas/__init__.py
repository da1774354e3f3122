"""jnas: neural architecture search in JAX.

The public API is re-exported lazily from the submodules (so ``import jnas`` stays cheap and a
missing optional piece never breaks the others): ``jnas.spaces``, ``jnas.cells``,
``jnas.train``, ``jnas.data``, ``jnas.benchmarks``, ``jnas.search``, ``jnas.darts``,
``jnas.gcn``, ``jnas.bo``, ``jnas.gan``, ``jnas.renas``.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("spaces", "cells", "train", "data", "benchmarks", "search", "darts", "gcn",
               "bo", "gan", "renas", "metrics", "report", "download", "config", "rng",
               "registry", "weight_sharing", "snas", "less_local", "relax", "oneshot")


# The public API: name -> module that defines it (imported on first use).
_EXPORTS = {
    "NB201Arch": "spaces", "DARTSGenotype": "spaces", "NB101Arch": "spaces",
    "NB201": "spaces", "DARTS": "spaces", "NB101": "spaces", "get_space": "spaces",
    "NB201Supernet": "cells", "NB201Network": "cells", "DARTSSupernet": "cells",
    "DARTSNetwork": "cells", "NB101Network": "cells", "arch_cost": "cells",
    "TrainState": "train", "make_mesh": "train", "make_classifier_steps": "train",
    "save_checkpoint": "train", "restore_checkpoint": "train", "recalibrate_bn": "train",
    "load_cifar10": "data", "load_image_folder": "data", "search_split": "data",
    "augment": "data", "batch_iterator": "data",
    "load_nb201": "benchmarks", "TabularEvaluator": "benchmarks", "load_table": "benchmarks",
    "load_nb101_official": "benchmarks", "load_nb101_json": "benchmarks",
    "run_search": "search", "RandomSearch": "search", "RegularizedEvolution": "search",
    "run_darts": "darts", "run_gdas": "darts", "DARTSConfig": "darts",
    "run_snas": "snas", "SNASConfig": "snas",
    "run_less_local": "less_local", "LessLocalConfig": "less_local",
    "BONASSearcher": "bo", "BONASConfig": "bo", "WeightSharingEvaluator": "weight_sharing",
    "GANASSearcher": "gan", "GANASConfig": "gan",
    "ReNASSearcher": "renas", "ReNASConfig": "renas",
    "kendall_tau": "metrics", "spearman_rho": "metrics",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"jnas.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"jnas.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'jnas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_SUBMODULES) + list(_EXPORTS))
