"""The sample-based search loop: ask/tell searchers, a budgeted run loop, RS and REA.

Every sample-based method (random search, regularised evolution, BONAS, GA-NAS, ReNAS-guided
search) is a :class:`Searcher`: ``ask(n)`` proposes architectures, ``tell(archs, scores)``
gives it their *search signals* (higher is better). :func:`run_search` drives a searcher
against an evaluator (:mod:`jnas.benchmarks`) for a query budget and records

* the **history**: every proposal in order (arch string, signal, reported score, whether it
  was a new query, cumulative simulated cost), saved as JSON lines while the run goes;
* the **trajectory**: ``[queries, reported score of the best-by-signal arch so far]`` after
  each new query (and ``trajectory_sim_s`` against simulated training seconds).

Duplicates: an architecture that was already queried is *not* queried again; the searcher is
told its cached signal, and it is neither counted against the budget nor charged simulated
cost (a real system would cache it too). A searcher that only proposes duplicates for
``max_duplicates`` proposals in a row ends the run early (noted in the result).

Resume: with ``out_dir``, the history is appended to ``out_dir/history.jsonl`` after every
batch. Running again with the same ``out_dir`` replays the saved history into a freshly
built searcher (its proposals are re-generated from the same key and told the saved scores,
no evaluator queries) and continues up to the budget, so the resumed run ends exactly as an
uninterrupted one for deterministic searchers. A history written by different settings is
refused rather than overwritten.

Baselines: :class:`RandomSearch` (uniform sampling) and :class:`RegularizedEvolution` (Real
et al., AAAI 2019, arXiv 1802.01548; population 10, tournament sample 3 and one-edge
mutation, the NAS-Bench-201 reference settings of Dong & Yang, ICLR 2020).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from jnas.registry import register
from jnas.rng import np_rng

__all__ = ["Searcher", "SearchResult", "run_search", "run_seeds", "RandomSearch",
           "RandomSearchConfig", "RegularizedEvolution", "REAConfig", "summarise"]

_SPACES = ("nb201", "darts", "nb101")


class Searcher(Protocol):
    """Ask/tell protocol of sample-based NAS. ``__init__(space, key, config)``."""

    def ask(self, n: int) -> list[Any]:
        """Proposes ``n`` architectures (space values)."""
        ...

    def tell(self, archs: Sequence[Any], scores: Sequence[float]) -> None:
        """Receives the search signals of ``archs`` (higher is better)."""
        ...


def _arch_str(arch: Any) -> str:
    return arch if isinstance(arch, str) else arch.to_string()


def _arch_key(arch: Any) -> str:
    """Identity used for duplicate detection (NB101: isomorphism-invariant hash)."""
    if hasattr(arch, "spec_hash"):
        return arch.spec_hash()
    return _arch_str(arch)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "to_string"):
        return o.to_string()
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@dataclasses.dataclass
class SearchResult:
    """Outcome of :func:`run_search` (``to_json()`` gives the CLI result record)."""
    method: str
    space: str
    dataset: str | None
    seed: int | None
    best_arch: str | None
    best_signal: float
    bench: dict[str, Any]
    trajectory: list[list[float]]
    trajectory_sim_s: list[list[float]]
    history: list[dict[str, Any]]
    num_queries: int
    simulated_cost_s: float
    wall_s: float
    compile_s: float
    search_overhead_s: float
    evaluator: dict[str, Any]
    config: dict[str, Any]
    resumed_queries: int = 0
    note: str = ""

    def best_at(self, budget: int) -> float:
        """Reported score of the best-by-signal arch within the first ``budget`` queries."""
        best = math.nan
        for q, v in self.trajectory:
            if q > budget:
                break
            best = v
        return best

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with the CLI contract fields (method, space, dataset, seed,
        best_arch, trajectory, bench, wall_s, compile_s, config) and the rest."""
        d = dataclasses.asdict(self)
        d["search_overhead_s_per_query"] = (self.search_overhead_s / self.num_queries
                                            if self.num_queries else None)
        return json.loads(json.dumps(d, default=_jsonable))


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


def run_search(searcher: Any, evaluator: Any, budget: int, batch_size: int = 1, *,
               out_dir: str | Path | None = None, method: str | None = None,
               seed: int | None = None, config: Any = None,
               max_duplicates: int | None = None,
               log: Callable[[str], None] | None = None, log_every: int = 0) -> SearchResult:
    """Runs ``searcher`` against ``evaluator`` until ``budget`` distinct architectures are
    queried.

    Args:
      searcher: a :class:`Searcher`.
      evaluator: has ``evaluate(archs) -> list[float]`` (signals), ``report(arch) -> dict``,
        optionally ``reported_score(arch)``, ``simulated_cost_s``, ``describe()``,
        ``dataset``, ``space``.
      budget: number of distinct queries.
      batch_size: architectures asked per round (the last round is cut to the budget).
      out_dir: folder for ``history.jsonl`` (saved as the run goes; an existing history of
        the same settings is resumed, one of different settings raises ``ValueError``).
      method, seed, config: recorded in the result (``method`` defaults to the searcher's
        ``name`` or class name; ``config`` to its ``config``).
      max_duplicates: end early after this many duplicate proposals in a row (default
        ``max(1000, 20 * budget)``).
      log, log_every: progress callback every ``log_every`` queries.

    Returns:
      A :class:`SearchResult`.
    """
    if budget < 1:
        raise ValueError(f"budget must be >= 1 query, got {budget}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    method = method or getattr(searcher, "name", type(searcher).__name__)
    config = config if config is not None else getattr(searcher, "config", None)
    cfg = (dataclasses.asdict(config) if dataclasses.is_dataclass(config)
           else dict(config or {}))
    cfg = json.loads(json.dumps(cfg, default=_jsonable))
    describe = evaluator.describe() if hasattr(evaluator, "describe") else {}
    space = getattr(getattr(searcher, "space", None), "name", None) or \
        getattr(evaluator, "space", "?")
    dataset = getattr(evaluator, "dataset", None)
    max_dup = max_duplicates if max_duplicates is not None else max(1000, 20 * budget)
    reported = getattr(evaluator, "reported_score", None) or \
        (lambda a: float(evaluator.report(a)["reported"]))
    meta = {"method": method, "seed": seed, "config": cfg, "evaluator": describe,
            "batch_size": batch_size}

    hist_path = None
    saved: list[dict[str, Any]] = []
    if out_dir is not None:
        hist_path = Path(out_dir) / "history.jsonl"
        hist_path.parent.mkdir(parents=True, exist_ok=True)
        if hist_path.is_file():
            old_meta, saved = _load_history(hist_path)
            if old_meta is not None and old_meta != meta:
                raise ValueError(
                    f"{hist_path} was written by a run with different settings "
                    f"({old_meta}) than this one ({meta}); use another --out folder or "
                    "delete the old one")
            # Rewrite cleanly (drops a torn last line) before appending.
            tmp = hist_path.with_suffix(".jsonl.tmp")
            with open(tmp, "w") as f:
                f.write(json.dumps({"meta": meta}) + "\n")
                for r in saved:
                    f.write(json.dumps(r) + "\n")
            os.replace(tmp, hist_path)
        else:
            hist_path.write_text(json.dumps({"meta": meta}) + "\n")

    t_start = time.perf_counter()
    eval_s = 0.0
    cache: dict[str, tuple[float, float]] = {}  # key -> (signal, reported)
    history: list[dict[str, Any]] = []
    trajectory: list[list[float]] = []
    traj_sim: list[list[float]] = []
    best_sig, best_rep, best_arch, best_obj = -math.inf, math.nan, None, None
    n_queries, sim_cost, dup_run = 0, 0.0, 0
    note = ""
    replay = collections.deque(saved)
    resumed = sum(1 for r in saved if r.get("new"))

    def record(arch: Any, sig: float, rep: float, new: bool) -> dict[str, Any]:
        nonlocal best_sig, best_rep, best_arch, best_obj, n_queries, sim_cost
        row = {"arch": _arch_str(arch), "signal": float(sig), "reported": float(rep),
               "new": bool(new)}
        if new:
            n_queries += 1
            if sig > best_sig:
                best_sig, best_rep, best_arch = float(sig), float(rep), _arch_str(arch)
                best_obj = arch
            trajectory.append([n_queries, best_rep])
            traj_sim.append([sim_cost, best_rep])
            row["query"] = n_queries
        row["sim_s"] = sim_cost
        history.append(row)
        return row

    while n_queries < budget:
        n = min(batch_size, budget - n_queries)
        archs = list(searcher.ask(n))
        if not archs:
            note = "searcher proposed nothing; run ended early"
            break
        if replay:
            # Resume: tell the searcher the saved outcome of its (re-generated) proposals.
            rows = [replay.popleft() for _ in range(min(len(archs), len(replay)))]
            if len(rows) == len(archs):
                if [r["arch"] for r in rows] != [_arch_str(a) for a in archs]:
                    note = ("resumed history differs from the searcher's re-generated "
                            "proposals (nondeterministic searcher); the saved outcomes were "
                            "told instead")
                    space_obj = getattr(searcher, "space", None)
                    archs = [space_obj.parse(r["arch"]) if space_obj is not None else r["arch"]
                             for r in rows]
                for a, r in zip(archs, rows):
                    if r["new"]:
                        sim_cost = float(r["sim_s"])
                    record(a, r["signal"], r["reported"], r["new"])
                    cache[_arch_key(a)] = (r["signal"], r["reported"])
                searcher.tell(archs, [r["signal"] for r in rows])
                continue
            replay.clear()  # a partial batch at the end: re-query it normally
        keys = [_arch_key(a) for a in archs]
        fresh, seen_here = [], set()
        for a, k in zip(archs, keys):
            if k not in cache and k not in seen_here:
                fresh.append(a)
                seen_here.add(k)
        if fresh:
            t0 = time.perf_counter()
            cost0 = float(getattr(evaluator, "simulated_cost_s", 0.0))
            sigs = evaluator.evaluate(fresh)
            reps = [reported(a) for a in fresh]
            eval_s += time.perf_counter() - t0
            dcost = float(getattr(evaluator, "simulated_cost_s", 0.0)) - cost0
            per = dcost / len(fresh)
            fresh_vals = {_arch_key(a): (float(s), float(r)) for a, s, r in
                          zip(fresh, sigs, reps)}
        else:
            fresh_vals, per = {}, 0.0
        scores, new_rows = [], []
        for a, k in zip(archs, keys):
            if k in fresh_vals and k not in cache:
                sim_cost += per
                cache[k] = fresh_vals[k]
                new_rows.append(record(a, *cache[k], new=True))
                dup_run = 0
            else:
                new_rows.append(record(a, *cache[k], new=False))
                dup_run += 1
            scores.append(cache[k][0])
        searcher.tell(archs, scores)
        if hist_path is not None:
            with open(hist_path, "a") as f:
                for r in new_rows:
                    f.write(json.dumps(r) + "\n")
        if log is not None and log_every and fresh and n_queries % log_every < len(fresh):
            log(f"[{method}] {n_queries}/{budget} queries, best signal {best_sig:.2f}, "
                f"reported {best_rep:.2f}")
        if dup_run >= max_dup:
            note = (f"stopped after {max_dup} duplicate proposals in a row "
                    f"({n_queries} distinct queries)")
            break

    wall = time.perf_counter() - t_start
    bench = evaluator.report(best_obj) if best_obj is not None else {}
    return SearchResult(
        method=method, space=str(space), dataset=dataset, seed=seed, best_arch=best_arch,
        best_signal=best_sig, bench=bench, trajectory=trajectory, trajectory_sim_s=traj_sim,
        history=history, num_queries=n_queries, simulated_cost_s=sim_cost, wall_s=wall,
        compile_s=float(getattr(searcher, "compile_s", 0.0)),
        search_overhead_s=max(wall - eval_s, 0.0), evaluator=describe, config=cfg,
        resumed_queries=resumed, note=note)


# ----------------------------------------------------------------------------- baselines
@dataclasses.dataclass(frozen=True)
class RandomSearchConfig:
    """Random search has no hyper-parameters (kept for the CLI's ``--set``)."""


@dataclasses.dataclass(frozen=True)
class REAConfig:
    """Regularised evolution (Real et al., 2019) with the NB201 reference settings.

    Attributes:
      population: size of the aging population (NB201: 10).
      sample: tournament size (NB201: 3), drawn without replacement.
    """
    population: int = 10
    sample: int = 3


class RandomSearch:
    """Uniform random sampling from the space (Li & Talwalkar, 2019 baseline)."""
    name = "rs"

    def __init__(self, space: Any, key: Any, config: RandomSearchConfig | None = None) -> None:
        self.space, self.config = space, config or RandomSearchConfig()
        self._rng = np_rng(key)

    def ask(self, n: int) -> list[Any]:
        """``n`` uniform samples."""
        return list(self.space.sample(int(self._rng.integers(2 ** 31)), n))

    def tell(self, archs: Sequence[Any], scores: Sequence[float]) -> None:
        """Random search ignores feedback."""


class RegularizedEvolution:
    """Regularised (aging) evolution (Real et al., AAAI 2019, arXiv 1802.01548).

    The first ``population`` proposals are uniform samples; afterwards each proposal is a
    one-edge mutation (``space.mutate``) of the best of ``sample`` members drawn without
    replacement from the population; every told architecture joins the population and the
    oldest member leaves once it exceeds ``population``.
    """
    name = "rea"

    def __init__(self, space: Any, key: Any, config: REAConfig | None = None) -> None:
        self.space, self.config = space, config or REAConfig()
        if self.config.population < 1 or not 1 <= self.config.sample <= self.config.population:
            raise ValueError(f"REA needs population >= 1 and 1 <= sample <= population, got "
                             f"{self.config}")
        self._rng = np_rng(key)
        self.population: collections.deque = collections.deque()
        self._asked = 0

    def _seed(self) -> int:
        return int(self._rng.integers(2 ** 31))

    def ask(self, n: int) -> list[Any]:
        """``n`` proposals: random while the population fills, then mutated tournament
        winners."""
        out = []
        for _ in range(n):
            if self._asked < self.config.population or len(self.population) < self.config.sample:
                out.append(self.space.sample(self._seed(), 1)[0])
            else:
                idx = self._rng.choice(len(self.population), self.config.sample, replace=False)
                parent = max((self.population[i] for i in idx), key=lambda m: m[1])[0]
                out.append(self.space.mutate(self._seed(), parent))
            self._asked += 1
        return out

    def tell(self, archs: Sequence[Any], scores: Sequence[float]) -> None:
        """Adds the told architectures (aging out the oldest)."""
        for a, s in zip(archs, scores):
            self.population.append((a, float(s)))
            while len(self.population) > self.config.population:
                self.population.popleft()


@register("rs", kind="sample", config_cls=RandomSearchConfig, spaces=_SPACES,
          doc="random search (uniform sampling)")
def _make_rs(space: Any, key: Any, config: RandomSearchConfig | None = None) -> RandomSearch:
    return RandomSearch(space, key, config)


@register("rea", kind="sample", config_cls=REAConfig, spaces=_SPACES,
          doc="regularised evolution (population 10, sample 3)")
def _make_rea(space: Any, key: Any, config: REAConfig | None = None) -> RegularizedEvolution:
    return RegularizedEvolution(space, key, config)


# ----------------------------------------------------------------------------- multi-seed
def run_seeds(method: str, seeds: Iterable[int], budget: int, *, space: str = "nb201",
              benchmark: str = "nb201", dataset: str = "cifar10", protocol: str = "12epoch",
              config: Any = None, overrides: Sequence[str] | None = None,
              out_dir: str | Path | None = None, batch_size: int = 1,
              evaluator_factory: Callable[[int], Any] | None = None) -> list[dict[str, Any]]:
    """Runs a registered sample-based method for several seeds; returns the result dicts.

    Each seed gets a fresh evaluator (``evaluator_factory(seed)`` or
    ``benchmarks.make_evaluator(benchmark, dataset, protocol)``) and, with ``out_dir``, its
    own ``out_dir/seed_<S>/`` holding ``history.jsonl`` (resumable) and ``result.json``.
    """
    from jnas import benchmarks, registry, spaces
    from jnas.config import apply_overrides
    from jnas.rng import as_key
    spec = registry.get_method(method)
    if spec.kind != "sample":
        raise ValueError(f"run_seeds runs sample-based methods; {method!r} is {spec.kind!r}")
    sp = spaces.get_space(space)
    cfg = apply_overrides(config if config is not None else spec.config_cls(), overrides)
    results = []
    for seed in seeds:
        ev = (evaluator_factory(seed) if evaluator_factory is not None else
              benchmarks.make_evaluator(benchmark, dataset=dataset, protocol=protocol))
        searcher = spec.factory(sp, as_key(int(seed)), cfg)
        sd = Path(out_dir) / f"seed_{seed}" if out_dir is not None else None
        res = run_search(searcher, ev, budget, batch_size, out_dir=sd, method=spec.name,
                         seed=int(seed), config=cfg).to_json()
        res.update({"space": space, "dataset": dataset})
        if sd is not None:
            tmp = sd / "result.json.tmp"
            tmp.write_text(json.dumps(res))
            os.replace(tmp, sd / "result.json")
        results.append(res)
    return results


def summarise(results: Sequence[Any], budgets: Sequence[int] = (50, 100, 200, 500)
              ) -> dict[str, Any]:
    """Mean ± std of the reported score at ``budgets`` (see :func:`jnas.report.summarise`)."""
    from jnas.report import summarise as _summarise
    return _summarise([r.to_json() if hasattr(r, "to_json") else r for r in results], budgets)
