"""Tests for jnas.metrics: against SciPy and brute force on random data."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from jnas.metrics import kendall_tau, precision_at_k, spearman_rho


def _brute_kendall_no_ties(a, b):
    conc = disc = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        s = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
        conc += s > 0
        disc += s < 0
    return (conc - disc) / (len(a) * (len(a) - 1) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kendall_and_spearman_match_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=50)
    b = a + rng.normal(scale=1.0, size=50)
    assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)
    assert spearman_rho(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert kendall_tau(a, b) == pytest.approx(_brute_kendall_no_ties(a, b), abs=1e-12)
    # With ties (tau-b).
    at, bt = np.round(a), np.round(b)
    assert kendall_tau(at, bt) == pytest.approx(stats.kendalltau(at, bt).statistic, abs=1e-12)


def test_perfect_reversed_and_constant():
    x = np.arange(10.0)
    assert kendall_tau(x, 2 * x + 1) == pytest.approx(1.0)
    assert kendall_tau(x, -x) == pytest.approx(-1.0)
    assert spearman_rho(x, x ** 3) == pytest.approx(1.0)
    assert kendall_tau(x, np.zeros(10)) == 0.0
    assert spearman_rho(x, np.zeros(10)) == 0.0


def test_precision_at_k():
    y = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    p = np.array([4.0, 5.0, 0.0, 3.0, 1.0])   # predicted top-2 = {0, 1}; top-3 = {0, 1, 3}
    assert precision_at_k(y, p, 2) == 1.0
    assert precision_at_k(y, p, 3) == pytest.approx(2 / 3)
    assert precision_at_k(y, -y, 1) == 0.0
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(size=30)
    k = 7
    expect = len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k])) / k
    assert precision_at_k(a, b, k) == pytest.approx(expect)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="differ in length"):
        kendall_tau([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        spearman_rho([1, 2, np.nan], [1, 2, 3])
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k([1, 2, 3], [1, 2, 3], 4)
    with pytest.raises(ValueError, match="1-D"):
        kendall_tau(np.zeros((2, 2)), np.zeros((2, 2)))
