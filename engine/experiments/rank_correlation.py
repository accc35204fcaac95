"""Spearman rank correlation between a measure and the test error across architectures, with a
bootstrap interval over the replicates (splits, seeds).

measure and error are (A, U): A architectures, U replicates. The estimate is Spearman's rho between the
architectures' means over the U replicates; the bootstrap draws U replicates with replacement `draws`
times, recomputes both means and rho, and reports the 2.5% and 97.5% percentiles of the draws where rho
is defined (draws in which the resampled means of either quantity tie everywhere have none). That interval
holds only the replicates' variation; `p_value` is the other half: the two-sided permutation test of rho
across the architectures (`scipy.stats.permutation_test`, pairings; exact for up to 7 architectures).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import permutation_test, rankdata

PERMUTATIONS = 9999


def spearman_interval(measure: np.ndarray, error: np.ndarray, *, draws: int, seed: int,
                      level: float = 0.95) -> dict[str, Any]:
    """{"rho", "low", "high", "p_value", "architectures", "replicates", "defined_draws"} (module docstring);
    rho, low, high and p_value are None when rho is undefined (fewer than 3 architectures, or a constant
    quantity)."""
    a, b = np.asarray(measure, dtype=np.float64), np.asarray(error, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"measure and error must both be (architectures, replicates), got {a.shape}, {b.shape}")
    n_arch, n_rep = a.shape
    out: dict[str, Any] = {"rho": None, "low": None, "high": None, "p_value": None, "architectures": n_arch,
                           "replicates": n_rep, "defined_draws": 0}
    if n_arch < 3:
        return out
    rho = _spearman(a.mean(axis=1, keepdims=True), b.mean(axis=1, keepdims=True))[0]
    if not np.isfinite(rho):
        return out
    picks = np.random.default_rng(seed).integers(0, n_rep, size=(draws, n_rep))
    counts = np.stack([np.bincount(p, minlength=n_rep) for p in picks], axis=1) / n_rep  # (U, draws)
    rhos = _spearman(a @ counts, b @ counts)
    rhos = rhos[np.isfinite(rhos)]
    tail = 100 * (1 - level) / 2
    b_mean = b.mean(axis=1)

    def statistic(x: np.ndarray, axis: int = -1) -> np.ndarray:
        return _statistic(x, np.broadcast_to(np.moveaxis(b_mean.reshape(-1, *([1] * (x.ndim - 1))), 0, axis), x.shape),
                          axis)

    # one sample permuted against the other fixed: n! pairings, all of them when n! <= PERMUTATIONS
    test = permutation_test((a.mean(axis=1),), statistic, permutation_type="pairings", vectorized=True,
                            n_resamples=PERMUTATIONS, random_state=seed)
    out.update(rho=float(rho), p_value=float(test.pvalue), defined_draws=int(rhos.size))
    if rhos.size:
        out.update(low=float(np.percentile(rhos, tail)), high=float(np.percentile(rhos, 100 - tail)))
    return out


def _statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho along `axis` of paired samples (`permutation_test`'s vectorised form)."""
    return _spearman(np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1),
                     np.moveaxis(y, axis, 0).reshape(y.shape[axis], -1)).reshape(np.delete(x.shape, axis % x.ndim))


def _spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho of each column pair of a, b (A, K) -> (K,) (NaN for a constant column): the Pearson
    correlation of the columns' ranks (average ranks for ties), as `scipy.stats.spearmanr`."""
    ra, rb = rankdata(a, axis=0), rankdata(b, axis=0)
    ra, rb = ra - ra.mean(axis=0), rb - rb.mean(axis=0)
    denom = np.sqrt(np.sum(ra * ra, axis=0) * np.sum(rb * rb, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, np.sum(ra * rb, axis=0) / np.where(denom > 0, denom, 1.0), np.nan)
