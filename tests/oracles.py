"""Scalar reference implementations the vectorized statistics are tested against.

harness.compare.stats computes every pair at once (one sort, bincounts); these compute one
pair the direct way: the Mann–Whitney U test of two samples (exact null distribution for small
samples without ties, else the normal approximation) and the hierarchical bootstrap of the
median ratio from a list of per-process sample arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.compare.stats import bootstrap_medians_flat, bootstrap_ratio_ci_flat, mwu_normal_p


def exact_u_sf(u: int, m: int, n: int) -> float:
    """P(U >= u) under H0 for samples of sizes m and n without ties: coefficients of the
    Gaussian binomial [m+n choose m]_q, built with Python integers (exact)."""
    size = m * n + 1
    poly = [0] * size
    poly[0] = 1
    for i in range(1, m + 1):
        step = n + i  # multiply by (1 - q^(n+i))
        for k in range(size - 1, step - 1, -1):
            poly[k] -= poly[k - step]
        for k in range(i, size):  # divide by (1 - q^i)
            poly[k] += poly[k - i]
    total = math.comb(m + n, m)
    return sum(poly[max(u, 0):]) / total


@dataclass(frozen=True)
class MWUResult:
    u: float            # U of the second sample (y): pairs (x_i, y_j) with y_j > x_i, ties 1/2
    p_greater: float    # one-sided: y tends to be larger than x
    p_less: float       # one-sided: y tends to be smaller than x
    method: str         # "exact", "normal", or "none" (an empty sample)


def mann_whitney_u(x, y, exact_max: int = 25) -> MWUResult:
    """Mann–Whitney U test of y against x (one-sided p-values both ways); non-finite values
    are dropped.

    Exact null distribution when there are no ties and both samples have at most `exact_max`
    values; otherwise the normal approximation with tie and continuity correction."""
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return MWUResult(float("nan"), 1.0, 1.0, "none")
    pooled = np.concatenate([x, y])
    order = np.argsort(pooled, kind="stable")
    s = pooled[order]
    change = np.flatnonzero(np.diff(s) != 0) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(s)]])
    avg = (starts + ends - 1) / 2.0 + 1.0
    ranks = np.empty(len(s))
    ranks[order] = np.repeat(avg, ends - starts)
    u = float(ranks[n1:].sum() - n2 * (n2 + 1) / 2.0)
    t = (ends - starts).astype(float)
    tie_term = float((t ** 3 - t).sum())
    if tie_term == 0 and max(n1, n2) <= exact_max:
        u_int = int(round(u))
        p_greater = exact_u_sf(u_int, n1, n2)                  # P(U >= u)
        p_less = exact_u_sf(n1 * n2 - u_int, n1, n2)           # P(U <= u), by symmetry
        return MWUResult(u, min(p_greater, 1.0), min(p_less, 1.0), "exact")
    pg, pl = mwu_normal_p([u], [n1], [n2], [tie_term])
    return MWUResult(u, float(pg[0]), float(pl[0]), "normal")


def flat_groups(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-process sample arrays as (all samples concatenated, samples per process)."""
    groups = [np.asarray(g, dtype=float).ravel() for g in groups]
    lens = np.array([len(g) for g in groups], dtype=np.int64)
    return (np.concatenate(groups) if groups else np.empty(0)), lens


def bootstrap_medians(groups: list[np.ndarray], resamples: int, rng: np.random.Generator,
                      **opts) -> np.ndarray:
    """stats.bootstrap_medians_flat with the processes given as a list of sample arrays."""
    return bootstrap_medians_flat(*flat_groups(groups), resamples, rng, **opts)


def bootstrap_ratio_ci(base_groups: list[np.ndarray], head_groups: list[np.ndarray],
                       resamples: int = 2000, level: float = 0.95,
                       rng: np.random.Generator | None = None) -> tuple[float, float]:
    """Percentile CI of median(head) / median(base) from independent hierarchical bootstraps
    of both sides (groups: one sample array per process)."""
    return bootstrap_ratio_ci_flat(flat_groups(base_groups), flat_groups(head_groups),
                                   resamples, level, rng)
