"""ReNAS predictor-guided searchers (ask/tell) and their CLI registration.

Xu et al., "ReNAS: Relativistic Evaluation of Neural Architecture Search", CVPR 2021
(arXiv 1910.01523): query ``train_size`` random cells, train the ranking predictor of
:mod:`jnas.renas`, score every cell of the space and query the best-predicted ones
(:class:`ReNASSearcher`); and regularised evolution (Real et al., AAAI 2019) with the
predictor as an acquisition filter (:class:`PredictorGuidedEvolution`). Re-exported by
:mod:`jnas.renas`, whose import registers ``renas`` and ``renas-rea`` for the CLI.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

import jax
import numpy as np

from jnas.rng import as_key

if TYPE_CHECKING:
    from jnas.renas import TrainedPredictor

# jnas.renas imports this module at its end (re-export + registration), so the core is
# imported lazily here to keep either import order working.


def _core():
    from jnas import renas
    return renas


def features(space: Any, archs: Sequence[Any]) -> np.ndarray:
    return _core().features(space, archs)


def train_predictor(*args: Any, **kwargs: Any) -> "TrainedPredictor":
    return _core().train_predictor(*args, **kwargs)


def _space_name(space: Any) -> str:
    return _core()._space_name(space)

__all__ = ["ReNASConfig", "ReNASSearcher", "PGEConfig", "PredictorGuidedEvolution"]


# ----------------------------------------------------------------------------- search
@dataclasses.dataclass(frozen=True)
class ReNASConfig:
    """ReNAS predictor-guided search (Xu et al., 2021; defaults = the paper's NB101 protocol).

    Attributes:
      train_size: random cells queried to train the predictor (paper: 424 = 0.1% of NB101).
      top_k: best-predicted unseen cells queried after training (paper: 10); a budget beyond
        ``train_size + top_k`` keeps going down the predicted ranking.
      epochs, lr: predictor training (whole training set as one batch, Adam).
      loss: ``'rank'`` (pairwise logistic) or ``'mse'``.
      pool: NB101 only, the benchmark JSON whose cells form the candidate pool
        ('' = ``$JNAS_DATA_DIR/nb101/zc_nasbench101.json``). NB201 scores all 15,625 cells.
    """
    train_size: int = 424
    top_k: int = 10
    epochs: int = 200
    lr: float = 1e-3
    loss: str = "rank"
    pool: str = ""


def _candidate_pool(space: Any, pool: str) -> list[Any]:
    name = _space_name(space)
    if name == "nb201":
        from jnas.spaces import NB201
        return NB201.enumerate()
    from jnas.benchmarks import load_nb101_json
    return list(load_nb101_json(pool or None).archs)


def _key_of(arch: Any) -> str:
    return arch.spec_hash() if hasattr(arch, "spec_hash") else arch.to_string()


class ReNASSearcher:
    """ReNAS search as an ask/tell searcher (Xu et al., CVPR 2021, arXiv 1910.01523).

    Proposes ``train_size`` distinct random cells of the candidate pool; once all are told,
    trains the ranking predictor on them, scores every pool cell and proposes the unseen
    ones from the best predicted down (the first ``top_k`` are the paper's protocol).
    """
    name = "renas"

    def __init__(self, space: Any, key: Any, config: ReNASConfig | None = None,
                 candidates: Sequence[Any] | None = None) -> None:
        self.space, self.config = space, config or ReNASConfig()
        c = self.config
        losses = list(_core()._LOSSES)
        if c.loss not in losses:
            raise ValueError(f"ReNASConfig.loss must be one of {losses}, got {c.loss!r}")
        self.pool = list(candidates) if candidates is not None else _candidate_pool(space, c.pool)
        if not 2 <= c.train_size <= len(self.pool):
            hint = ""
            if _space_name(space) == "nb101":
                hint = (f"; the NB101 pool is the benchmark table's cells ({len(self.pool)} "
                        "unique in the offline NASLib subset), so the paper's 424 training "
                        "cells need the full NB101 table (set pool=PATH), or use e.g. "
                        "--set train_size=200")
            raise ValueError(f"train_size must be in [2, {len(self.pool)}] (the candidate pool),"
                             f" got {c.train_size}{hint}")
        if c.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {c.top_k}")
        self._key = as_key(key)
        rng = np.random.default_rng(np.asarray(jax.random.key_data(self._key)).ravel())
        self._queue = [self.pool[i] for i in rng.choice(len(self.pool), c.train_size,
                                                        replace=False)]
        self._told: dict[str, tuple[Any, float]] = {}
        self._asked: set[str] = set()
        self.predictor: TrainedPredictor | None = None
        self.pool_scores: np.ndarray | None = None

    def ask(self, n: int) -> list[Any]:
        """The next ``n`` proposals (training cells first, then by predicted score)."""
        out = []
        for _ in range(int(n)):
            if not self._queue:
                if self.predictor is None:
                    raise RuntimeError("ReNAS: tell the scores of the training cells before "
                                       "asking for predictor-ranked ones")
                raise RuntimeError("ReNAS: the candidate pool is exhausted")
            arch = self._queue.pop(0)
            self._asked.add(_key_of(arch))
            out.append(arch)
        return out

    def tell(self, archs: Sequence[Any], scores: Sequence[float]) -> None:
        """Records scores; trains the predictor once the training cells are all told."""
        for a, s in zip(archs, scores):
            self._told[_key_of(a)] = (a, float(s))
        if self.predictor is None and len(self._told) >= self.config.train_size \
                and not self._queue:
            self._fit_and_rank()

    def _fit_and_rank(self) -> None:
        c = self.config
        archs, ys = zip(*self._told.values())
        x = features(self.space, archs)
        self.predictor = train_predictor(jax.random.fold_in(self._key, 1), x, ys,
                                         epochs=c.epochs, lr=c.lr, loss=c.loss)
        self.pool_scores = self.predictor.predict(features(self.space, self.pool))
        order = np.argsort(-self.pool_scores, kind="stable")
        self._queue = [self.pool[i] for i in order if _key_of(self.pool[i]) not in self._asked]


@dataclasses.dataclass(frozen=True)
class PGEConfig:
    """Regularised evolution with the ReNAS predictor as acquisition (NB201).

    Attributes:
      population, sample: REA settings (NB201: 10, 3).
      warmup: random queries before the first predictor fit.
      candidates: mutants generated per proposal; the best-predicted unseen one is queried.
      retrain_every: refit the predictor on all told cells after this many new ones.
      epochs, lr, loss: predictor training.
    """
    population: int = 10
    sample: int = 3
    warmup: int = 100
    candidates: int = 50
    retrain_every: int = 100
    epochs: int = 100
    lr: float = 1e-3
    loss: str = "rank"


class PredictorGuidedEvolution:
    """REA whose proposals are the predictor's favourite among many mutants.

    Real et al. (AAAI 2019) regularised evolution with the ReNAS ranking predictor
    (Xu et al., 2021) as a cheap filter: each proposal draws ``candidates`` mutants of
    tournament winners and queries the unseen one with the highest predicted score.
    """
    name = "renas-rea"

    def __init__(self, space: Any, key: Any, config: PGEConfig | None = None) -> None:
        self.space, self.config = space, config or PGEConfig()
        _space_name(space)
        c = self.config
        if c.population < 1 or not 1 <= c.sample <= c.population or c.warmup < 2:
            raise ValueError(f"PGE needs population >= 1, 1 <= sample <= population and "
                             f"warmup >= 2, got {c}")
        self._key = as_key(key)
        self._rng = np.random.default_rng(np.asarray(jax.random.key_data(self._key)).ravel())
        self.population: list[tuple[Any, float]] = []
        self._told: dict[str, tuple[Any, float]] = {}
        self._seen: set[str] = set()
        self.predictor: TrainedPredictor | None = None
        self._fitted_at = 0

    def _seed(self) -> int:
        return int(self._rng.integers(2 ** 31))

    def ask(self, n: int) -> list[Any]:
        """``n`` proposals: random during warm-up, then predictor-filtered mutants."""
        c = self.config
        out = []
        for _ in range(int(n)):
            if self.predictor is None or len(self.population) < c.sample:
                arch = self.space.sample(self._seed(), 1)[0]
            else:
                cands = []
                for _ in range(c.candidates):
                    idx = self._rng.choice(len(self.population), c.sample, replace=False)
                    parent = max((self.population[i] for i in idx), key=lambda m: m[1])[0]
                    child = self.space.mutate(self._seed(), parent)
                    if _key_of(child) not in self._seen:
                        cands.append(child)
                if not cands:
                    cands = self.space.sample(self._seed(), 1)
                scores = self.predictor.predict(features(self.space, cands))
                arch = cands[int(np.argmax(scores))]
            self._seen.add(_key_of(arch))
            out.append(arch)
        return out

    def tell(self, archs: Sequence[Any], scores: Sequence[float]) -> None:
        """Ages the population; (re)fits the predictor on every told cell when due."""
        c = self.config
        for a, s in zip(archs, scores):
            self._told[_key_of(a)] = (a, float(s))
            self.population.append((a, float(s)))
            self.population = self.population[-c.population:]
        due = self.predictor is None and len(self._told) >= c.warmup
        due |= self.predictor is not None and len(self._told) - self._fitted_at >= c.retrain_every
        if due:
            a, y = zip(*self._told.values())
            self.predictor = train_predictor(jax.random.fold_in(self._key, len(self._told)),
                                             features(self.space, a), y,
                                             epochs=c.epochs, lr=c.lr, loss=c.loss)
            self._fitted_at = len(self._told)


def _register() -> None:
    from jnas.registry import register
    register("renas", kind="sample", config_cls=ReNASConfig, spaces=("nb201", "nb101"),
             doc="ReNAS: ranking predictor on feature tensors; train_size random + top_k")(
        lambda space, key, config=None: ReNASSearcher(space, key, config))
    register("renas-rea", kind="sample", config_cls=PGEConfig, spaces=("nb201",),
             doc="regularised evolution filtered by the ReNAS predictor")(
        lambda space, key, config=None: PredictorGuidedEvolution(space, key, config))


_register()
