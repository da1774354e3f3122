"""The method table behind ``jnas search METHOD``: name -> entry point, config, kind, spaces.

The table is explicit (:data:`METHODS`); a method's module is imported only when that method
is loaded (:meth:`MethodSpec.load`), so ``jnas search rs`` never imports the one-shot stack.
Two kinds exist:

* ``"sample"``: ``factory(space, key, config) -> Searcher`` (ask/tell, run by
  :func:`jnas.search.run_search` against an evaluator).
* ``"oneshot"``: ``run(config, *, space, dataset, key, out_dir, quiet=False) ->
  (Result, state)`` (a whole supernet search on images).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

__all__ = ["MethodSpec", "METHODS", "KINDS", "get_method", "methods"]

KINDS = ("sample", "oneshot")
_TABLES = ("nb201", "nb101", "csv")  # the tabular benchmarks a sample-based method can query


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """One search method: where its entry point and config class live, and what it supports."""
    name: str                        # the name given to `jnas search`
    kind: str                        # "sample" (ask/tell searcher) or "oneshot" (supernet run)
    target: str                      # "module:function" of the factory / run function
    config: str                      # "module:Class" of its config dataclass
    spaces: tuple[str, ...]          # search spaces it supports
    benchmarks: tuple[str, ...]      # evaluators it can query ("nb201", "nb101", "csv", ...)
    doc: str = ""                    # one line: what it is (+ paper)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"method kind must be one of {KINDS}, got {self.kind!r}")
        for ref in (self.target, self.config):
            if ref.count(":") != 1:
                raise ValueError(f"{self.name}: {ref!r} is not of the form 'module:name'")

    def load(self) -> Callable[..., Any]:
        """The entry point (imports its module now)."""
        return _resolve(self.target)

    def config_cls(self) -> type:
        """The config dataclass (imports its module now)."""
        return _resolve(self.config)

    def default_config(self) -> Any:
        """An instance of the config class with its defaults."""
        return self.config_cls()()

    @property
    def factory(self) -> Callable[..., Any]:
        """The entry point with a plain-dict result: a sample factory as is; a one-shot run
        wrapped to return only the ``result.json`` dict (no state)."""
        fn = self.load()
        if self.kind == "sample":
            return fn

        def run_to_dict(*args: Any, **kw: Any) -> dict[str, Any]:
            out = fn(*args, **kw)
            if isinstance(out, tuple):
                out = out[0]
            if hasattr(out, "to_json"):
                return out.to_json()
            out = dict(out)
            out.pop("_state", None)
            return out

        return run_to_dict


def _resolve(ref: str) -> Any:
    mod_name, attr = ref.split(":")
    return getattr(importlib.import_module(mod_name), attr)


_NB = ("nb201", "darts")
_SCORED = ("nb201",)  # one-shot runs score the found cell on the NB201 table
_ALL = ("nb201", "darts", "nb101")

METHODS: dict[str, MethodSpec] = {s.name: s for s in (
    MethodSpec("rs", "sample", "jnas.search:make_rs", "jnas.search:RandomSearchConfig", _ALL,
               _TABLES, "random search (uniform sampling)"),
    MethodSpec("rea", "sample", "jnas.search:make_rea", "jnas.search:REAConfig", _ALL,
               _TABLES, "regularised evolution, population 10, sample 3 (Real et al., AAAI "
               "2019)"),
    MethodSpec("bonas", "sample", "jnas.bo:make_bonas", "jnas.bo:BONASConfig", _ALL,
               _TABLES + ("weight-sharing",), "BONAS: GCN + Bayesian linear regression "
               "surrogate, UCB over candidate pools (Shi et al., NeurIPS 2020)"),
    MethodSpec("ganas", "sample", "jnas.gan:make_ganas", "jnas.gan:GANASConfig",
               ("nb201", "nb101"), _TABLES, "GA-NAS: generator trained by PPO on a pairwise "
               "GNN discriminator's reward (Rezaei et al., IJCAI 2021)"),
    MethodSpec("renas", "sample", "jnas.renas:make_renas", "jnas.renas:ReNASConfig",
               ("nb201", "nb101"), _TABLES, "ReNAS: ranking predictor on feature tensors; "
               "train_size random + top_k (Xu et al., CVPR 2021)"),
    MethodSpec("renas-rea", "sample", "jnas.renas:make_renas_rea", "jnas.renas:PGEConfig",
               ("nb201",), _TABLES, "regularised evolution filtered by the ReNAS predictor"),
    MethodSpec("darts", "oneshot", "jnas.darts:run_darts", "jnas.darts:DARTSConfig", _NB,
               _SCORED, "DARTS first order (Liu et al., ICLR 2019)"),
    MethodSpec("darts2", "oneshot", "jnas.darts:run_darts", "jnas.darts:DARTS2Config", _NB,
               _SCORED, "DARTS exact second order (Liu et al., ICLR 2019)"),
    MethodSpec("gdas", "oneshot", "jnas.darts:run_gdas", "jnas.darts:GDASConfig", _NB,
               _SCORED, "GDAS-style hard Gumbel bilevel search (Dong & Yang, CVPR 2019)"),
    MethodSpec("snas", "oneshot", "jnas.snas:run_snas", "jnas.snas:SNASConfig", _NB,
               _SCORED, "SNAS single-level Gumbel-softmax search + resource penalty (Xie "
               "et al., ICLR 2019)"),
    MethodSpec("less-local", "oneshot", "jnas.less_local:run_less_local",
               "jnas.less_local:LessLocalConfig", _NB, _SCORED,
               "population-based global optimisation of the DARTS objective (after Bodin et "
               "al. 2021)"),
)}


def methods() -> dict[str, MethodSpec]:
    """All methods, by name (imports nothing)."""
    return dict(sorted(METHODS.items()))


def get_method(name: str | MethodSpec) -> MethodSpec:
    """The method called ``name``; a clear error lists the valid names otherwise."""
    if isinstance(name, MethodSpec):
        return name
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(sorted(METHODS))}"
                         " (see `jnas methods`)")
    return METHODS[name]
