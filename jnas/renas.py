"""ReNAS: predictor-guided sample-based search with a relativistic (ranking) predictor.

Xu et al., "ReNAS: Relativistic Evaluation of Neural Architecture Search", CVPR 2021
(arXiv 1910.01523): query ``train_size`` random cells, train the ranking predictor of
:mod:`jnas.renas_predictor`, score every cell of the space and query the best-predicted
ones (:class:`ReNASSearcher`); and regularised evolution (Real et al., AAAI 2019) with the
predictor as an acquisition filter (:class:`PredictorGuidedEvolution`). The feature tensors,
the ranking CNN and its training are in :mod:`jnas.renas_predictor` (re-exported here).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import numpy as np

from jnas.benchmarks import load_nb101_json
from jnas.config import check_choice, check_positive, check_range
from jnas.renas_predictor import (  # noqa: F401  (re-exported)
    LOSSES, NB101_TYPE_IDS, NB201_TYPE_IDS, RankingPredictor, ReNASPredictor, Standardizer,
    TrainedPredictor, features, minmax, mse_loss, nb101_features, nb201_features,
    compile_seconds, pairwise_rank_loss, space_name, train_predictor)
from jnas.rng import as_key
from jnas.search_history import arch_key, iso_key
from jnas.spaces import get_space

__all__ = ["ReNASConfig", "ReNASSearcher", "PGEConfig", "PredictorGuidedEvolution",
           "make_renas", "make_renas_rea",
           # the predictor (jnas.renas_predictor)
           "NB101_TYPE_IDS", "NB201_TYPE_IDS", "nb101_features", "nb201_features", "features",
           "Standardizer", "minmax", "ReNASPredictor", "pairwise_rank_loss", "mse_loss",
           "TrainedPredictor", "train_predictor", "RankingPredictor"]


# ----------------------------------------------------------------------------- search
@dataclasses.dataclass(frozen=True)
class ReNASConfig:
    """ReNAS predictor-guided search (Xu et al., 2021; defaults = the paper's NB101 protocol).

    A budget beyond ``train_size + top_k`` keeps going down the predicted ranking; the
    predictor trains on the whole training set as one batch (Adam). NB201 scores all 15,625
    cells (a table's rows when the space is restricted to a table). The ranked picks skip
    cells isomorphic to one already asked or picked (``skip_isomorphs``; the official NB101
    code compares cells by the isomorphism-invariant hash, jnas's NB101 keys do too).
    """
    train_size: int = 424  # random cells queried to train the predictor (paper: 0.1% of NB101)
    top_k: int = 10        # best-predicted unseen cells queried after training (paper: 10)
    epochs: int = 200      # predictor training epochs
    lr: float = 1e-3       # predictor Adam learning rate
    loss: str = "rank"     # 'rank' (pairwise logistic, the paper) or 'mse'
    pool: str = ""         # NB101 candidate pool JSON ('' = JNAS_DATA_DIR's zc_nasbench101.json)
    skip_isomorphs: bool = True  # ranked picks skip NB201 isomorphs of asked cells (NB101: always)

    def __post_init__(self) -> None:
        check_choice(self, "loss", tuple(LOSSES))
        check_positive(self, "epochs", "lr")
        check_positive(self, "top_k", allow_zero=True)
        check_range(self, "train_size", 2, None)


def _candidate_pool(space: Any, pool: str) -> list[Any]:
    """The cells ReNAS draws and ranks: NB201's enumeration (a table space's rows), or the
    NB101 pool JSON's cells (those the table holds when the space is a table's)."""
    name = space_name(space)
    if name == "nb201":
        return space.enumerate()
    archs = list(load_nb101_json(pool or None).archs)
    bench = getattr(space, "bench", None)  # a jnas.tables.TableSpace
    if bench is not None and hasattr(bench, "has"):
        archs = [a for a in archs if bench.has(a)]
    return archs


class ReNASSearcher:
    """ReNAS search as an ask/tell searcher (Xu et al., CVPR 2021, arXiv 1910.01523).

    Proposes ``train_size`` distinct random cells of the candidate pool; once all are told,
    trains the ranking predictor on them, scores every pool cell and proposes the unseen
    ones from the best predicted down (the first ``top_k`` are the paper's protocol).
    """
    name = "renas"

    def __init__(self, space: Any, key: Any, config: ReNASConfig | None = None,
                 candidates: Sequence[Any] | None = None) -> None:
        self.space, self.config = get_space(space), config or ReNASConfig()
        space = self.space
        c = self.config
        self.pool = list(candidates) if candidates is not None else _candidate_pool(space, c.pool)
        if not 2 <= c.train_size <= len(self.pool):
            hint = ""
            if space_name(space) == "nb101":
                hint = (f"; the NB101 pool is the benchmark table's cells ({len(self.pool)} "
                        "unique in the offline NASLib subset), so the paper's 424 training "
                        "cells need the full NB101 table (set pool=PATH), or use e.g. "
                        "--set train_size=200")
            raise ValueError(f"train_size must be in [2, {len(self.pool)}] (the candidate pool),"
                             f" got {c.train_size}{hint}")
        self._key = as_key(key)
        rng = np.random.default_rng(np.asarray(jax.random.key_data(self._key)).ravel())
        self._queue = [self.pool[i] for i in rng.choice(len(self.pool), c.train_size,
                                                        replace=False)]
        self._told: dict[str, tuple[Any, float]] = {}
        self._asked: set[str] = set()
        self._asked_archs: list[Any] = []
        self.predictor: TrainedPredictor | None = None
        self.pool_scores: np.ndarray | None = None
        self.compile_s = 0.0  # seconds spent compiling predictor programs

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
            self._asked.add(arch_key(arch))
            self._asked_archs.append(arch)
            out.append(arch)
        return out

    def tell(self, archs: Sequence[Any], scores: Sequence[float]) -> None:
        """Records scores; trains the predictor once the training cells are all told."""
        for a, s in zip(archs, scores):
            self._told[arch_key(a)] = (a, float(s))
        if self.predictor is None and len(self._told) >= self.config.train_size \
                and not self._queue:
            self._fit_and_rank()

    def _fit_and_rank(self) -> None:
        c0 = compile_seconds()
        self._rank()
        self.compile_s += compile_seconds() - c0

    def _rank(self) -> None:
        c = self.config
        archs, ys = zip(*self._told.values())
        x = features(self.space, archs)
        self.predictor = train_predictor(jax.random.fold_in(self._key, 1), x, ys,
                                         epochs=c.epochs, lr=c.lr, loss=c.loss)
        self.pool_scores = self.predictor.predict(features(self.space, self.pool))
        order = np.argsort(-self.pool_scores, kind="stable")
        key = iso_key if c.skip_isomorphs else arch_key
        seen = {key(a) for a in self._asked_archs}
        self._queue = []
        for i in order:
            a = self.pool[i]
            k = key(a)
            if arch_key(a) not in self._asked and k not in seen:
                seen.add(k)
                self._queue.append(a)


@dataclasses.dataclass(frozen=True)
class PGEConfig:
    """Regularised evolution with the ReNAS predictor as acquisition (NB201)."""
    population: int = 10     # REA aging population (NB201: 10)
    sample: int = 3          # REA tournament size (NB201: 3)
    warmup: int = 100        # random queries before the first predictor fit
    candidates: int = 50     # mutants per proposal; the best-predicted unseen one is queried
    retrain_every: int = 100  # refit the predictor on all told cells after this many new ones
    epochs: int = 100        # predictor training epochs
    lr: float = 1e-3         # predictor Adam learning rate
    loss: str = "rank"       # 'rank' (pairwise logistic) or 'mse'

    def __post_init__(self) -> None:
        check_choice(self, "loss", tuple(LOSSES))
        check_positive(self, "population", "sample", "candidates", "retrain_every", "epochs",
                       "lr")
        check_range(self, "sample", 1, self.population)
        check_range(self, "warmup", 2, None)


class PredictorGuidedEvolution:
    """REA whose proposals are the predictor's favourite among many mutants.

    Real et al. (AAAI 2019) regularised evolution with the ReNAS ranking predictor
    (Xu et al., 2021) as a cheap filter: each proposal draws ``candidates`` mutants of
    tournament winners and queries the unseen one with the highest predicted score.
    """
    name = "renas-rea"

    def __init__(self, space: Any, key: Any, config: PGEConfig | None = None) -> None:
        self.space, self.config = get_space(space), config or PGEConfig()
        space_name(self.space)
        self._key = as_key(key)
        self._rng = np.random.default_rng(np.asarray(jax.random.key_data(self._key)).ravel())
        self.population: list[tuple[Any, float]] = []
        self._told: dict[str, tuple[Any, float]] = {}
        self._seen: set[str] = set()
        self.predictor: TrainedPredictor | None = None
        self._fitted_at = 0
        self.compile_s = 0.0  # seconds spent compiling predictor programs

    def _seed(self) -> int:
        return int(self._rng.integers(2 ** 31))

    def ask(self, n: int) -> list[Any]:
        """``n`` proposals: random during warm-up, then predictor-filtered mutants."""
        c0 = compile_seconds()
        out = self._ask(n)
        self.compile_s += compile_seconds() - c0
        return out

    def _ask(self, n: int) -> list[Any]:
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
                    if arch_key(child) not in self._seen:
                        cands.append(child)
                if not cands:
                    cands = self.space.sample(self._seed(), 1)
                scores = self.predictor.predict(features(self.space, cands))
                arch = cands[int(np.argmax(scores))]
            self._seen.add(arch_key(arch))
            out.append(arch)
        return out

    def tell(self, archs: Sequence[Any], scores: Sequence[float]) -> None:
        """Ages the population; (re)fits the predictor on every told cell when due."""
        c = self.config
        for a, s in zip(archs, scores):
            self._told[arch_key(a)] = (a, float(s))
            self.population.append((a, float(s)))
            self.population = self.population[-c.population:]
        due = self.predictor is None and len(self._told) >= c.warmup
        due |= self.predictor is not None and len(self._told) - self._fitted_at >= c.retrain_every
        if due:
            c0 = compile_seconds()
            a, y = zip(*self._told.values())
            self.predictor = train_predictor(jax.random.fold_in(self._key, len(self._told)),
                                             features(self.space, a), y,
                                             epochs=c.epochs, lr=c.lr, loss=c.loss)
            self._fitted_at = len(self._told)
            self.compile_s += compile_seconds() - c0


def make_renas(space: Any, key: Any, config: ReNASConfig | None = None) -> ReNASSearcher:
    """Method factory (``jnas.registry``): ``ReNASSearcher(space, key, config)``."""
    return ReNASSearcher(space, key, config)


def make_renas_rea(space: Any, key: Any, config: PGEConfig | None = None
                   ) -> PredictorGuidedEvolution:
    """Method factory (``jnas.registry``): ``PredictorGuidedEvolution(space, key, config)``."""
    return PredictorGuidedEvolution(space, key, config)
