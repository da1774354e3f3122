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
               "registry", "weight_sharing")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"jnas.{name}")
    raise AttributeError(f"module 'jnas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_SUBMODULES))
