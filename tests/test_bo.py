"""Tests of jnas.bo: the BLR surrogate (closed form vs numpyro NUTS), the accuracy-space
mapping, UCB/EI, the samplers and the BONAS searcher (Shi et al., arXiv 1911.09336)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from jnas.bo import (BONASConfig, BONASSearcher, ea_candidates, expected_improvement,
                     evolutionary_candidates, fit_blr, logit, random_candidates, select_top_k,
                     to_accuracy_space, ucb)
from jnas.spaces import NB201


def _linear_data(n: int, d: int, seed: int, noise: float = 0.3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d)
    w = rng.normal(size=d)
    z = x @ w + 0.7 + noise * rng.normal(size=n)
    return x, z


def test_blr_closed_form_recovers_noise_and_matches_numpyro_nuts():
    x, z = _linear_data(80, 4, 0)
    x_test, _ = _linear_data(20, 4, 1)
    x_test = np.concatenate([x_test, x_test * 3.0])  # include extrapolation (bigger variance)
    ev = fit_blr(x, z, method="evidence", features="standardised")
    assert 1.0 / math.sqrt(ev.beta) == pytest.approx(0.3, rel=0.3)  # noise sd recovered
    nuts = fit_blr(x, z, method="nuts", key=0, num_warmup=400, num_samples=800,
                   features="standardised")
    m1, v1 = ev.predict(x_test)
    m2, v2 = nuts.predict(x_test)
    sd = np.sqrt(v1)
    assert np.max(np.abs(m1 - m2) / sd) < 0.15
    np.testing.assert_allclose(v2, v1, rtol=0.35)
    # extrapolated points are more uncertain than interpolated ones, in both fits
    assert v1[20:].mean() > v1[:20].mean() and v2[20:].mean() > v2[:20].mean()


def test_blr_raw_features_no_intercept_as_official_code():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 5))
    z = x @ rng.normal(size=5) + 0.2 * rng.normal(size=60)  # no intercept in the data
    post = fit_blr(x, z)  # default: raw features, no intercept, evidence from 1e-5
    assert not post.intercept and post.mean.shape == (5,)
    assert 1.0 / math.sqrt(post.beta) == pytest.approx(0.2, rel=0.3)
    # posterior mean = ridge solution with lambda = alpha / beta (Bishop PRML 3.53-3.54)
    ridge = np.linalg.solve(post.alpha / post.beta * np.eye(5) + x.T @ x, x.T @ z)
    np.testing.assert_allclose(post.mean, ridge, rtol=1e-6, atol=1e-9)
    mu, var = post.predict(np.zeros((1, 5)))  # no intercept: the origin predicts 0
    assert mu[0] == 0.0 and var[0] == pytest.approx(1.0 / post.beta)
    with pytest.raises(ValueError, match="'raw', 'standardised'"):
        fit_blr(x, z, features="whitened")


def test_blr_rejects_bad_input():
    with pytest.raises(ValueError, match="x\\[n, d\\]"):
        fit_blr(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        fit_blr(np.full((5, 2), np.nan), np.zeros(5))
    with pytest.raises(ValueError, match="valid"):
        fit_blr(np.ones((5, 2)), np.zeros(5), method="mcmc")


def test_accuracy_space_mapping_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu = np.array([-1.0, 0.0, 2.0, 3.0])
    var = np.array([0.01, 1.0, 0.5, 2.0])
    m, v = to_accuracy_space(mu, var)
    zs = mu + np.sqrt(var) * rng.normal(size=(200_000, 4))
    t = 1.0 / (1.0 + np.exp(-zs))
    np.testing.assert_allclose(m, t.mean(0), atol=0.02)
    np.testing.assert_allclose(np.sqrt(v), t.std(0), rtol=0.1, atol=0.003)
    m0, v0 = to_accuracy_space(np.array([1.5]), np.array([0.0]))
    assert m0[0] == pytest.approx(stats.norm.cdf(math.sqrt(math.pi / 8) * 1.5))
    assert v0[0] == pytest.approx(0.0, abs=1e-12)
    assert logit([0.5])[0] == 0.0 and np.isfinite(logit([0.0, 1.0])).all()


def test_ucb_and_ei_formulas():
    mean, var = np.array([0.9, 0.8]), np.array([0.0004, 0.04])
    np.testing.assert_allclose(ucb(mean, var), [0.9 + 0.5 * 0.02, 0.8 + 0.5 * 0.2])
    np.testing.assert_allclose(ucb(mean, var, coef=2.0), [0.94, 1.2])
    best = 0.85
    s = np.sqrt(var)
    u = (mean - best) / s
    ref = (mean - best) * stats.norm.cdf(u) + s * stats.norm.pdf(u)
    np.testing.assert_allclose(expected_improvement(mean, var, best), ref)
    assert (expected_improvement(mean, var, best) >= 0).all()
    # zero variance: EI = max(mean - best, 0)
    np.testing.assert_allclose(expected_improvement(np.array([0.9, 0.8]), np.zeros(2), best),
                               [0.05, 0.0], atol=1e-9)


def test_samplers_and_top_k():
    cands = random_candidates(NB201, 0, 500)
    assert len(cands) == 500 and len({c.to_string() for c in cands}) > 450
    archs = NB201.sample(1, 40)
    scores = np.arange(40.0)
    ev = evolutionary_candidates(NB201, 2, archs, scores, 200, population=30, tournament=10)
    for c in ev:  # every candidate is one mutation away from a population member
        dists = [sum(x != y for x, y in zip(c.ops, archs[i].ops)) for i in range(10, 40)]
        assert min(dists) == 1
    assert len(ev) == 200
    picked = select_top_k(archs, scores, 5, exclude={archs[39].to_string()})
    assert [a.to_string() for a in picked] == [archs[i].to_string() for i in (38, 37, 36, 35, 34)]


def test_ea_candidates_are_all_mutations_of_the_tournament_winner():
    pop = NB201.sample(4, 10)
    scores = np.arange(10.0)
    cands = ea_candidates(NB201, 0, pop, scores, tournament=10, exclude=set(), min_new=10)
    # a tournament over the whole population: the best cell wins, the pool is its 24 neighbours
    assert {c.to_string() for c in cands} == {c.to_string() for c in NB201.neighbours(pop[9])}
    # all of them already tried: further tournaments (of 3) add other winners' neighbourhoods
    tried = {c.to_string() for c in cands}
    more = ea_candidates(NB201, 0, pop, scores, tournament=3, exclude=tried, min_new=10)
    assert sum(c.to_string() not in tried for c in more) >= 10
    cfg = BONASConfig()
    assert (cfg.sampler, cfg.blr_features, cfg.population, cfg.tournament, cfg.ucb_coef) == \
        ("evolution", "raw", 30, 10, 0.5)


def _run(searcher, signal, budget, batch):
    seen = []
    while len(seen) < budget:
        archs = searcher.ask(min(batch, budget - len(seen)))
        seen.extend(a.to_string() for a in archs)
        searcher.tell(archs, [signal(a) for a in archs])
    return seen


def test_bonas_searcher_budget_uniqueness_determinism_and_quality():
    # synthetic landscape on NB201: reward conv3x3 everywhere, penalise 'none'
    def signal(a):
        ids = np.array(a.op_ids)
        return float(50 + 6 * np.sum(ids == 3) + 2 * np.sum(ids == 2) - 5 * np.sum(ids == 0))

    cfg = BONASConfig(n_init=10, k=5, gcn_epochs=30, n_candidates=600)
    s1 = BONASSearcher(NB201, 0, cfg)
    seen1 = _run(s1, signal, 30, batch=5)
    assert len(seen1) == 30 and len(set(seen1)) == 30  # budget, never re-proposed
    assert len(s1.round_log) == 4 and all(r["n_candidates"] > 0 for r in s1.round_log)
    seen2 = _run(BONASSearcher(NB201, 0, cfg), signal, 30, batch=1)  # ask(1) at a time
    assert seen2 == seen1  # determinism by key, independent of the ask batch size
    seen3 = _run(BONASSearcher(NB201, 1, cfg), signal, 30, batch=5)
    assert seen3 != seen1
    # the BO rounds find better cells than the random warm-up
    best = lambda ss: max(signal(NB201.parse(x)) for x in ss)  # noqa: E731
    bo_scores = [signal(NB201.parse(x)) for x in seen1[10:]]
    init_scores = [signal(NB201.parse(x)) for x in seen1[:10]]
    assert np.mean(bo_scores) > np.mean(init_scores) + 5
    assert best(seen1) >= 80


def test_bonas_config_errors_and_registry():
    with pytest.raises(ValueError, match="BONASConfig.acquisition"):
        BONASConfig(acquisition="pi")
    with pytest.raises(ValueError, match="BONASConfig.sampler"):
        BONASConfig(sampler="grid")
    with pytest.raises(ValueError, match="BONASConfig.blr_features"):
        BONASConfig(blr_features="centred")
    with pytest.raises(ValueError, match="BONASConfig.n_init"):
        BONASConfig(n_init=1)
    from jnas.registry import get_method
    spec = get_method("bonas")
    assert spec.kind == "sample" and spec.config_cls() is BONASConfig and "nb201" in spec.spaces
    s = spec.load()("nb201", 0, BONASConfig(n_init=3))  # a space name works too
    assert len(s.ask(3)) == 3
