"""Ranking metrics for architecture predictors: Kendall tau, Spearman rho, precision@k.

Shared by the predictor-based methods (ReNAS, Xu et al., CVPR 2021, arXiv 1910.01523; BONAS;
GA-NAS). Host side in NumPy/SciPy; inputs are 1-D sequences of scores where higher is
better. Ties are handled as SciPy does (Kendall tau-b, Spearman on average ranks).
:func:`kendall_tau_jax` is the jit-able Kendall tau-b used inside training loops.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

__all__ = ["kendall_tau", "spearman_rho", "precision_at_k", "kendall_tau_jax"]


def _pair(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray,
          min_len: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validates two score vectors: 1-D, same length, finite, at least ``min_len`` items."""
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"expected 1-D score vectors, got shapes {a.shape} and {b.shape}; "
                         "flatten them first")
    if a.shape != b.shape:
        raise ValueError(f"y_true and y_pred differ in length ({a.size} vs {b.size}); pass one "
                         "prediction per true score")
    if a.size < min_len:
        raise ValueError(f"need at least {min_len} scores, got {a.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("scores contain NaN or inf; drop or fix those entries first")
    return a, b


def kendall_tau(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
                ) -> float:
    """Kendall rank correlation (tau-b) between true and predicted scores.

    Returns 0.0 (not NaN) when either vector is constant, so a degenerate predictor scores as
    "no ranking information".
    """
    a, b = _pair(y_true, y_pred)
    tau = stats.kendalltau(a, b).statistic
    return 0.0 if not np.isfinite(tau) else float(tau)


def spearman_rho(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
                 ) -> float:
    """Spearman rank correlation (average ranks for ties); 0.0 when a vector is constant."""
    a, b = _pair(y_true, y_pred)
    if np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    rho = stats.spearmanr(a, b).statistic
    return 0.0 if not np.isfinite(rho) else float(rho)


def precision_at_k(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray,
                   k: int) -> float:
    """Fraction of the true top-``k`` items that are among the predicted top-``k``.

    Ties are broken by position (stable sort on the negated score), identically for both
    vectors.
    """
    a, b = _pair(y_true, y_pred, min_len=1)
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= a.size:
        raise ValueError(f"k must be an integer in [1, {a.size}], got {k!r}")
    top_true = np.argsort(-a, kind="stable")[:k]
    top_pred = np.argsort(-b, kind="stable")[:k]
    return float(np.intersect1d(top_true, top_pred).size) / float(k)


def kendall_tau_jax(y: jax.Array, pred: jax.Array) -> jax.Array:
    """Kendall tau-b in JAX (jit-able; 0 when either vector is constant)."""
    sa = jnp.sign(y[:, None] - y[None, :])
    sb = jnp.sign(pred[:, None] - pred[None, :])
    den = jnp.sqrt(jnp.sum(sa * sa) * jnp.sum(sb * sb))
    return jnp.where(den > 0, jnp.sum(sa * sb) / jnp.where(den > 0, den, 1.0), 0.0)
