"""The method registry behind ``jnas search METHOD``.

Each method module registers its entry point with :func:`register`. Two kinds exist:

* ``"sample"``: ``factory(space, key, config) -> Searcher`` (ask/tell, run by
  :func:`jnas.search.run_search` against an evaluator).
* ``"oneshot"``: ``factory(config, *, space, dataset, key, out_dir) -> dict`` (a whole
  supernet search returning the result record).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

_METHOD_MODULES = ("jnas.search", "jnas.darts", "jnas.bo", "jnas.gan", "jnas.renas")


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """One registered search method."""
    name: str
    kind: str  # "sample" or "oneshot"
    factory: Callable[..., Any]
    config_cls: type
    spaces: tuple[str, ...]
    doc: str = ""


_REGISTRY: dict[str, MethodSpec] = {}


def register(name: str, *, kind: str, config_cls: type, spaces: tuple[str, ...],
             doc: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``factory`` as method ``name``."""
    if kind not in ("sample", "oneshot"):
        raise ValueError(f"method kind must be 'sample' or 'oneshot', got {kind!r}")

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = MethodSpec(name, kind, factory, config_cls, tuple(spaces), doc)
        return factory

    return deco


def _load_all() -> None:
    for mod in _METHOD_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a method module not written yet
            if e.name != mod:
                raise


def methods() -> dict[str, MethodSpec]:
    """All registered methods, by name."""
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get_method(name: str) -> MethodSpec:
    """The method called ``name``; a clear error lists the valid names otherwise."""
    all_methods = methods()
    if name not in all_methods:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(all_methods)}")
    return all_methods[name]
