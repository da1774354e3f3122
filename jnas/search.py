"""The sample-based search loop: ask/tell searchers, a budgeted run loop, RS and REA.

Every sample-based method (random search, regularised evolution, BONAS, GA-NAS, ReNAS-guided
search) is a :class:`Searcher`: ``ask(n)`` proposes architectures, ``tell(archs, scores)``
gives it their *search signals* (higher is better). An :class:`Evaluator` answers
``evaluate(archs)`` with a :class:`Query` (signal, reported value, cost) or a bare signal per
arch; a plain function ``archs -> scores`` works too (:func:`as_evaluator`). :func:`run_search`
drives a searcher against an evaluator for a query budget and returns a
:class:`jnas.report.Result` recording

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
import time
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Protocol, Sequence

from jnas import benchmarks, registry, report, tables
from jnas.config import apply_overrides, check_positive, check_range, split_overrides
from jnas.report import Result, jsonable, write_json
from jnas.rng import as_key, np_rng
from jnas.search_history import (History, append_rows, arch_key, arch_str, iso_key, open_history,
                                 replay)
from jnas.spaces import get_space

__all__ = ["Query", "Evaluator", "Searcher", "as_evaluator", "run_search", "run_method",
           "run_seeds", "RandomSearch", "RandomSearchConfig", "RegularizedEvolution",
           "REAConfig", "make_rs", "make_rea", "summarise", "REPORTED_NOTE"]

REPORTED_NOTE = ("'reported' is the benchmark number of the best-by-signal cell so far, so it "
                 "can fall while the signal rises")


class Query(NamedTuple):
    """The outcome of evaluating one architecture."""
    signal: float    # what the searcher is told (higher is better)
    reported: float  # the number a result reports for it (e.g. a benchmark's test accuracy)
    cost_s: float    # (simulated) seconds the evaluation cost


class Evaluator(Protocol):
    """Answers queries. ``evaluate`` is the only required method; a float answer is a signal
    (reported = signal, cost 0). Optional: ``report(arch) -> dict`` (the numbers a result
    records for its best cell), ``describe() -> dict``, ``dataset``, ``space``."""

    def evaluate(self, archs: Sequence[Any]) -> Sequence[Query | float]:
        """One answer per architecture."""
        ...


class Searcher(Protocol):
    """Ask/tell protocol of sample-based NAS. ``__init__(space, key, config)``."""

    def ask(self, n: int) -> list[Any]:
        """Proposes ``n`` architectures (space values)."""
        ...

    def tell(self, archs: Sequence[Any], scores: Sequence[float]) -> None:
        """Receives the search signals of ``archs`` (higher is better)."""
        ...


class _QueryEvaluator:
    """Any evaluator seen through one interface: ``evaluate(archs) -> list[Query]``,
    ``report``, ``describe``, ``dataset``, ``space``, ``compile_s``.

    A float answer becomes ``Query(s, reported, cost)`` where ``reported`` is the evaluator's
    ``reported_score(arch)`` if it has one (the table evaluators) else the signal, and
    ``cost`` the growth of its ``simulated_cost_s`` counter shared by the batch (else 0)."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        fn = obj.evaluate if hasattr(obj, "evaluate") else obj
        if not callable(fn):
            raise ValueError(f"an evaluator is a function archs -> scores or an object with "
                             f"evaluate(archs); got {type(obj).__name__}")
        self._fn = fn
        self._reported = getattr(obj, "reported_score", None)
        self._counts_cost = hasattr(obj, "simulated_cost_s")
        self._report = getattr(obj, "report", None)
        self._describe = getattr(obj, "describe", None)
        self.dataset = getattr(obj, "dataset", None)
        self.space = getattr(obj, "space", "?")

    @property
    def compile_s(self) -> float:
        """Seconds the wrapped evaluator spent compiling (0 when it does not say)."""
        return float(getattr(self.obj, "compile_s", 0.0))

    def _cost(self) -> float:
        return float(self.obj.simulated_cost_s) if self._counts_cost else 0.0

    def evaluate(self, archs: Sequence[Any]) -> list[Query]:
        """One :class:`Query` per arch."""
        cost0 = self._cost()
        answers = list(self._fn(archs))
        if len(answers) != len(archs):
            raise ValueError(f"the evaluator returned {len(answers)} scores for {len(archs)} "
                             "architectures; return one per architecture")
        per = (self._cost() - cost0) / len(archs)
        out = []
        for a, q in zip(archs, answers):
            if isinstance(q, Query):
                out.append(Query(float(q.signal), float(q.reported), float(q.cost_s)))
                continue
            rep = self._reported(a) if self._reported is not None else q
            out.append(Query(float(q), float(rep), per))
        return out

    def report(self, arch: Any) -> dict[str, Any]:
        """The evaluator's numbers for ``arch`` ({} when it has none)."""
        return self._report(arch) if self._report is not None else {}

    def describe(self) -> dict[str, Any]:
        """What the evaluator measures ({} when it does not say)."""
        return self._describe() if self._describe is not None else {}


def as_evaluator(obj: Any) -> _QueryEvaluator:
    """``obj`` as an evaluator returning :class:`Query` values: a plain callable
    ``archs -> scores`` or an object with ``evaluate(archs)`` (floats or Query)."""
    return obj if isinstance(obj, _QueryEvaluator) else _QueryEvaluator(obj)


def _evaluate(evaluator: _QueryEvaluator, fresh: list[Any], key: Callable[[Any], str] = arch_key
              ) -> tuple[dict[str, tuple[float, float]], dict[str, float], float]:
    """Queries ``fresh``: ``({key: (signal, reported)}, {key: cost_s}, seconds)``."""
    if not fresh:
        return {}, {}, 0.0
    t0 = time.perf_counter()
    answers = evaluator.evaluate(fresh)
    vals = {key(a): (q.signal, q.reported) for a, q in zip(fresh, answers)}
    costs = {key(a): q.cost_s for a, q in zip(fresh, answers)}
    return vals, costs, time.perf_counter() - t0


def _record_batch(archs: list[Any], vals: dict, costs: dict, hist: History, dup_run: int
                  ) -> tuple[list[dict[str, Any]], list[float], int]:
    """Records a batch (new queries and duplicates); returns (rows, signals, duplicate
    proposals in a row so far)."""
    rows, scores = [], []
    for a in archs:
        k = hist.key(a)
        new = k in vals and k not in hist.cache
        if new:
            hist.sim_cost += costs[k]
            hist.cache[k] = vals[k]
        dup_run = 0 if new else dup_run + 1
        rows.append(hist.record(a, *hist.cache[k], new=new))
        scores.append(hist.cache[k][0])
    return rows, scores, dup_run


def _config_dict(config: Any) -> dict[str, Any]:
    cfg = (dataclasses.asdict(config) if dataclasses.is_dataclass(config)
           else dict(config or {}))
    return json.loads(json.dumps(cfg, default=jsonable))


def run_search(searcher: Any, evaluator: Any, budget: int, batch_size: int = 1, *,
               out_dir: str | Path | None = None, method: str | None = None,
               seed: int | None = None, config: Any = None,
               max_duplicates: int | None = None,
               log: Callable[[str], None] | None = None, log_every: int = 0,
               skip_isomorphs: bool = False) -> Result:
    """Runs ``searcher`` against ``evaluator`` until ``budget`` distinct architectures are
    queried.

    Args:
      searcher: a :class:`Searcher`.
      evaluator: an :class:`Evaluator` or a plain function ``archs -> scores``
        (see :func:`as_evaluator`).
      budget: number of distinct queries.
      batch_size: architectures asked per round (the last round is cut to the budget).
      out_dir: folder for ``history.jsonl`` (saved as the run goes; an existing history of
        the same settings is resumed, one of different settings raises ``ValueError``).
      method, seed, config: recorded in the result (``method`` defaults to the searcher's
        ``name`` or class name; ``config`` to its ``config``).
      max_duplicates: end early after this many duplicate proposals in a row (default
        ``max(1000, 20 * budget)``).
      log, log_every: progress callback every ``log_every`` queries.
      skip_isomorphs: a proposal isomorphic to a queried NB201 cell
        (:func:`jnas.search_history.nb201_canonical`) is not queried again: it counts as a
        repeat and the searcher is told the queried isomorph's signal (off by default; NB101
        cells are always compared up to isomorphism).

    Returns:
      A :class:`jnas.report.Result`; ``extra`` holds ``best_signal``, ``trajectory_sim_s``,
      ``num_queries``, ``simulated_cost_s``, ``search_overhead_s`` (and per query),
      ``evaluator``, ``resumed_queries`` and ``note``.
    """
    if budget < 1:
        raise ValueError(f"budget must be >= 1 query, got {budget}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ev = as_evaluator(evaluator)
    method = method or getattr(searcher, "name", type(searcher).__name__)
    cfg = _config_dict(config if config is not None else getattr(searcher, "config", None))
    describe = ev.describe()
    max_dup = max_duplicates if max_duplicates is not None else max(1000, 20 * budget)
    meta = {"method": method, "seed": seed, "config": cfg, "evaluator": describe,
            "batch_size": batch_size}
    if skip_isomorphs:
        meta["skip_isomorphs"] = True
    hist_path, saved = open_history(out_dir, meta)
    t_start = time.perf_counter()
    hist = History(iso_key if skip_isomorphs else arch_key)
    eval_s, dup_run, note, logged = 0.0, 0, "", False
    saved_rows = collections.deque(saved)
    while hist.num_queries < budget:
        archs = list(searcher.ask(min(batch_size, budget - hist.num_queries)))
        if not archs:
            note = "searcher proposed nothing; run ended early"
            break
        if saved_rows:
            done, replay_note = replay(searcher, archs, saved_rows, hist)
            note = replay_note or note
            if done:
                continue
        fresh = hist.unseen(archs)
        vals, costs, dt = _evaluate(ev, fresh, hist.key)
        eval_s += dt
        rows, scores, dup_run = _record_batch(archs, vals, costs, hist, dup_run)
        searcher.tell(archs, scores)
        append_rows(hist_path, rows)
        if log is not None and log_every and fresh and hist.num_queries % log_every < len(fresh):
            log(_progress_line(method, hist, budget, first=not logged))
            logged = True
        if dup_run >= max_dup:
            note = (f"stopped after {max_dup} duplicate proposals in a row "
                    f"({hist.num_queries} distinct queries)")
            break
    res = _result(searcher, ev, hist, method=method, seed=seed, config=cfg, describe=describe,
                  wall=time.perf_counter() - t_start, eval_s=eval_s,
                  resumed=sum(1 for r in saved if r.get("new")), note=note)
    if skip_isomorphs:
        res = res.replace(extra={**res.extra, "skip_isomorphs": True})
    return res


def _progress_line(method: str, hist: History, budget: int, first: bool) -> str:
    """One progress line; the first one says what 'reported' is."""
    return (f"[{method}] {hist.num_queries}/{budget} queries, best signal "
            f"{hist.best_signal:.2f}, reported {hist.best_reported:.2f}"
            + (f" ({REPORTED_NOTE})" if first else ""))


def _result(searcher: Any, ev: _QueryEvaluator, hist: History, *, method: str, seed: Any,
            config: dict, describe: dict, wall: float, eval_s: float, resumed: int,
            note: str) -> Result:
    """The :class:`Result` of a finished run."""
    space = getattr(getattr(searcher, "space", None), "name", None) or ev.space
    overhead = max(wall - eval_s, 0.0)
    extra = {"best_signal": hist.best_signal, "trajectory_sim_s": hist.trajectory_sim_s,
             "num_queries": hist.num_queries, "simulated_cost_s": hist.sim_cost,
             "search_overhead_s": overhead, "evaluator": describe,
             "resumed_queries": resumed, "note": note,
             "search_overhead_s_per_query": (overhead / hist.num_queries
                                             if hist.num_queries else None)}
    diagnostics = getattr(searcher, "diagnostics", None)  # optional: a per-round log (GA-NAS)
    if callable(diagnostics):
        extra["diagnostics"] = json.loads(json.dumps(diagnostics(), default=jsonable))
    bench = ev.report(hist.best_arch) if hist.best_arch is not None else {}
    return Result(method=method, space=str(space), dataset=ev.dataset, seed=seed,
                  best_arch=arch_str(hist.best_arch) if hist.best_arch is not None else None,
                  bench=bench, trajectory=hist.trajectory, history=hist.rows, wall_s=wall,
                  compile_s=float(getattr(searcher, "compile_s", 0.0)) + ev.compile_s,
                  config=config, extra=extra)


# ----------------------------------------------------------------------------- baselines
@dataclasses.dataclass(frozen=True)
class RandomSearchConfig:
    """Random search has no hyper-parameters (kept for the CLI's ``--set``)."""


@dataclasses.dataclass(frozen=True)
class REAConfig:
    """Regularised evolution (Real et al., 2019) with the NB201 reference settings.

    """
    population: int = 10  # size of the aging population (NB201: 10)
    sample: int = 3       # tournament size, drawn without replacement (NB201: 3)

    def __post_init__(self) -> None:
        check_positive(self, "population", "sample")
        check_range(self, "sample", 1, self.population)


class RandomSearch:
    """Uniform random sampling from the space (Li & Talwalkar, 2019 baseline); ``space`` is
    a name or a space object."""
    name = "rs"

    def __init__(self, space: Any, key: Any, config: RandomSearchConfig | None = None) -> None:
        self.space, self.config = get_space(space), config or RandomSearchConfig()
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
        self.space, self.config = get_space(space), config or REAConfig()
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


def make_rs(space: Any, key: Any, config: RandomSearchConfig | None = None) -> RandomSearch:
    """Method factory (``jnas.registry``): ``RandomSearch(space, key, config)``."""
    return RandomSearch(space, key, config)


def make_rea(space: Any, key: Any, config: REAConfig | None = None) -> RegularizedEvolution:
    """Method factory (``jnas.registry``): ``RegularizedEvolution(space, key, config)``."""
    return RegularizedEvolution(space, key, config)


# ----------------------------------------------------------------------------- entry points
def run_method(name_or_spec: Any, config: Any, *, space: Any, evaluator: Any, seed: int,
               budget: int, out_dir: str | Path | None = None,
               log: Callable[[str], None] | None = None, batch_size: int = 1,
               dataset: str | None = None, skip_isomorphs: bool = False) -> Result:
    """One seed of a sample-based method: the library entry of ``jnas search`` and
    :func:`run_seeds`.

    The searcher is built by the method's factory on ``space`` (name or object), restricted
    to the rows of the evaluator's table when the table covers part of the space
    (:func:`jnas.tables.restrict`), with key ``seed``; it runs :func:`run_search` for
    ``budget`` queries (history in ``out_dir``, resumable), logging ten progress lines.
    ``dataset`` defaults to the evaluator's; ``skip_isomorphs`` as in :func:`run_search`.
    Returns the :class:`jnas.report.Result`.
    """
    spec = registry.get_method(name_or_spec)
    if spec.kind != "sample":
        raise ValueError(f"run_method runs sample-based methods; {spec.name!r} is "
                         f"{spec.kind!r} (use its run function)")
    if config is None:
        config = spec.default_config()
    searcher = spec.load()(tables.restrict(evaluator, space), as_key(int(seed)), config)
    res = run_search(searcher, evaluator, budget, batch_size, out_dir=out_dir,
                     method=spec.name, seed=int(seed), config=config, log=log,
                     log_every=max(1, budget // 10) if log is not None else 0,
                     skip_isomorphs=skip_isomorphs)
    name = space if isinstance(space, str) else space.name
    return res.replace(space=name, dataset=dataset if dataset is not None else res.dataset)


# ----------------------------------------------------------------------------- multi-seed
def run_seeds(method: str, seeds: Iterable[int], budget: int, *, space: str = "nb201",
              benchmark: str = "nb201", dataset: str = "cifar10", protocol: str = "12epoch",
              config: Any = None, overrides: Sequence[str] | None = None,
              out_dir: str | Path | None = None, batch_size: int = 1,
              evaluator_factory: Callable[[int], Any] | None = None) -> list[dict[str, Any]]:
    """Runs a sample-based method for several seeds (:func:`run_method`); returns the result
    dicts.

    Each seed gets a fresh evaluator (``evaluator_factory(seed)``, or the weight-sharing
    evaluator when ``benchmark='weight-sharing'`` (configured by ``ws.KEY=VALUE``
    overrides), or ``benchmarks.make_evaluator(benchmark, dataset, protocol)``) and, with
    ``out_dir``, its own ``out_dir/seed_<S>/`` holding ``history.jsonl`` (resumable) and
    ``result.json``.
    """
    spec = registry.get_method(method)
    main_over, ws_over = split_overrides(overrides)
    cfg = apply_overrides(config if config is not None else spec.config_cls(), main_over)

    def evaluator(seed: int) -> Any:
        if evaluator_factory is not None:
            return evaluator_factory(seed)
        if benchmark == "weight-sharing":
            from jnas import weight_sharing  # flax + CIFAR: only for this evaluator
            return weight_sharing.make_evaluator("weight-sharing", dataset=dataset, seed=seed,
                                                 overrides=ws_over)
        if ws_over:
            raise ValueError(f"ws.* overrides {ws_over} configure the weight-sharing "
                             "evaluator; pass benchmark='weight-sharing' or drop them")
        return benchmarks.make_evaluator(benchmark, dataset=dataset, protocol=protocol)

    results = []
    for seed in seeds:
        sd = Path(out_dir) / f"seed_{seed}" if out_dir is not None else None
        res = run_method(spec, cfg, space=space, evaluator=evaluator(int(seed)), seed=int(seed),
                         budget=budget, out_dir=sd, batch_size=batch_size, dataset=dataset)
        if sd is not None:
            write_json(sd / "result.json", res, indent=None)
        results.append(res.to_json())
    return results


def summarise(results: Sequence[Any], budgets: Sequence[int] = (50, 100, 200, 500)
              ) -> dict[str, Any]:
    """Mean ± std of the reported score at ``budgets`` (see :func:`jnas.report.summarise`)."""
    return report.summarise([r.to_json() if hasattr(r, "to_json") else r for r in results], budgets)
