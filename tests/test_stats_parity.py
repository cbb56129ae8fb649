"""The hand-written statistics against reference libraries (scipy, ruptures) and against
straightforward numpy versions: Mann–Whitney U p-values, the bootstrap CI of the median ratio,
and change-point locations. Skipped only where the reference library is not installed."""

from __future__ import annotations

import numpy as np
import pytest

from harness.compare.history import change_points
from harness.compare.stats import (GRID_POINTS, MAX_TWO_LEVEL, bootstrap_medians_flat,
                                   bootstrap_ratio_ci_flat, grouped_latency)
from tests.oracles import flat_groups, mann_whitney_u

pytestmark = pytest.mark.unit


# ---- Mann–Whitney U against scipy.stats.mannwhitneyu ---------------------------------------------
# Our U is that of the head sample (y); scipy's statistic is that of its first argument, and
# alternative="greater" means the first argument tends to be larger. So p_greater (head slower)
# is mannwhitneyu(head, base, alternative="greater").

@pytest.mark.parametrize("m,n,seed", [(1, 1, 0), (2, 3, 1), (5, 4, 2), (7, 9, 3), (12, 10, 4),
                                      (25, 25, 5), (25, 3, 6)])
def test_mwu_exact_matches_scipy_exact(m, n, seed):
    ss = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=m), rng.normal(size=n) + 0.5  # continuous: no ties
    r = mann_whitney_u(x, y)
    assert r.method == "exact"
    greater = ss.mannwhitneyu(y, x, alternative="greater", method="exact")
    less = ss.mannwhitneyu(y, x, alternative="less", method="exact")
    assert r.u == greater.statistic
    assert r.p_greater == pytest.approx(greater.pvalue, rel=1e-9, abs=1e-15)
    assert r.p_less == pytest.approx(less.pvalue, rel=1e-9, abs=1e-15)


def _tied_pairs(rng, n_pairs):
    """Per pair (base, head): sizes 2..80, values rounded to 0.1 (many ties), some shifted."""
    pairs = []
    for p in range(n_pairs):
        nb, nh = (int(v) for v in rng.integers(2, 80, size=2))
        shift = (0.0, 0.3, -0.3, 1.0)[p % 4]
        base = np.round(10 + rng.normal(0, 1, nb), 1)
        head = np.round(10 + shift + rng.normal(0, 1, nh), 1)
        pairs.append((base, head))
    return pairs


def test_mwu_normal_approximation_matches_scipy_asymptotic():
    """The vectorized path (grouped_latency -> mwu_normal_p, what compare() uses) and the scalar
    oracle's normal branch: tie-corrected variance, continuity correction, one-sided."""
    ss = pytest.importorskip("scipy.stats")
    pairs = _tied_pairs(np.random.default_rng(8), 60)
    vals = np.concatenate([np.r_[b, h] for b, h in pairs])
    pair = np.concatenate([np.full(len(b) + len(h), i) for i, (b, h) in enumerate(pairs)])
    side = np.concatenate([np.r_[np.zeros(len(b), int), np.ones(len(h), int)] for b, h in pairs])
    g = grouped_latency(vals, pair, side, len(pairs))
    for i, (base, head) in enumerate(pairs):
        greater = ss.mannwhitneyu(head, base, alternative="greater", method="asymptotic",
                                  use_continuity=True)
        less = ss.mannwhitneyu(head, base, alternative="less", method="asymptotic",
                               use_continuity=True)
        assert g.u_head[i] == pytest.approx(greater.statistic, abs=1e-9)
        assert g.p_slower[i] == pytest.approx(greater.pvalue, rel=1e-9, abs=1e-15)
        assert g.p_faster[i] == pytest.approx(less.pvalue, rel=1e-9, abs=1e-15)
        r = mann_whitney_u(base, head, exact_max=0)
        assert r.method == "normal"
        assert r.p_greater == pytest.approx(greater.pvalue, rel=1e-9, abs=1e-15)
        assert r.p_less == pytest.approx(less.pvalue, rel=1e-9, abs=1e-15)


# ---- bootstrap CI of the median ratio ------------------------------------------------------------
# Monte Carlo error: with 4000 replicates an endpoint's standard deviation is about 1 % of the
# CI width, so two independent bootstraps agree to within CI_TOL x width (several sd's).

CI_TOL = 0.06
RESAMPLES = 4000


def _lognormal_processes(rng, level, counts, process_sigma=0.02, sigma=0.05):
    return [level * np.exp(rng.normal(0, process_sigma)) * np.exp(rng.normal(0, sigma, c))
            for c in counts]


def _assert_close_ci(ours, ref):
    width = ref[1] - ref[0]
    assert width > 0
    assert abs(ours[0] - ref[0]) <= CI_TOL * width, (ours, ref)
    assert abs(ours[1] - ref[1]) <= CI_TOL * width, (ours, ref)


def test_bootstrap_ci_one_process_matches_scipy_percentile_bootstrap():
    """With one process per side the hierarchical bootstrap is the ordinary one: each sample
    resampled on its own, the percentile CI of the ratio of medians (scipy.stats.bootstrap,
    method="percentile", independent samples)."""
    ss = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    base = 10.0 * np.exp(rng.normal(0, 0.05, 60))
    head = 10.5 * np.exp(rng.normal(0, 0.05, 60))
    ours = bootstrap_ratio_ci_flat((base, np.array([60])), (head, np.array([60])), RESAMPLES,
                                   0.95, np.random.default_rng(0))

    def ratio(h, b, axis=-1):
        return np.median(h, axis=axis) / np.median(b, axis=axis)

    ref = ss.bootstrap((head, base), ratio, n_resamples=RESAMPLES, method="percentile",
                       confidence_level=0.95, vectorized=True,
                       rng=np.random.default_rng(1)).confidence_interval
    _assert_close_ci(ours, (ref.low, ref.high))


def _plain_medians(groups, resamples, rng, two_level):
    """The hierarchical bootstrap written out: draw processes with replacement, then (two
    levels) each drawn process's samples with replacement; the median of all that is drawn."""
    k = len(groups)
    picks = rng.integers(0, k, size=(resamples, k))
    out = np.empty(resamples)
    for b in range(resamples):
        drawn = [groups[i] for i in picks[b]]
        if two_level:
            drawn = [g[rng.integers(0, len(g), size=len(g))] for g in drawn]
        out[b] = np.median(np.concatenate(drawn))
    return out


def _plain_ratio_ci(base, head, resamples, rng, two_level, level=0.95):
    ratio = (_plain_medians(head, resamples, rng, two_level)
             / _plain_medians(base, resamples, rng, two_level))
    a = (1 - level) / 2
    return tuple(np.quantile(ratio, [a, 1 - a]))


def test_bootstrap_ci_two_level_matches_plain_numpy_bootstrap():
    rng = np.random.default_rng(5)
    base = _lognormal_processes(rng, 10.0, [30, 45, 12, 40, 25])
    head = _lognormal_processes(rng, 10.4, [35, 20, 40, 40, 28, 33])
    ours = bootstrap_ratio_ci_flat(flat_groups(base), flat_groups(head), RESAMPLES, 0.95,
                                   np.random.default_rng(0))
    ref = _plain_ratio_ci(base, head, RESAMPLES, np.random.default_rng(1), two_level=True)
    _assert_close_ci(ours, ref)


def test_bootstrap_cluster_grid_matches_plain_cluster_bootstrap():
    """More than MAX_TWO_LEVEL processes: processes resampled only, each replicate's median
    read off a CDF grid. Same draws as the plain version: every replicate within the grid's
    resolution; independent draws: the CIs agree."""
    rng = np.random.default_rng(6)
    base = _lognormal_processes(rng, 10.0, rng.integers(10, 40, size=80), process_sigma=0.03)
    head = _lognormal_processes(rng, 10.3, rng.integers(10, 40, size=70), process_sigma=0.03)
    assert min(len(base), len(head)) > MAX_TWO_LEVEL
    flat, lens = flat_groups(base)
    grid = bootstrap_medians_flat(flat, lens, 500, np.random.default_rng(2))
    exact = _plain_medians(base, 500, np.random.default_rng(2), two_level=False)
    cell = np.diff(np.quantile(flat, np.linspace(0.25, 0.75, GRID_POINTS))).max()
    assert np.abs(grid - exact).max() <= cell
    ours = bootstrap_ratio_ci_flat((flat, lens), flat_groups(head), RESAMPLES, 0.95,
                                   np.random.default_rng(0))
    ref = _plain_ratio_ci(base, head, RESAMPLES, np.random.default_rng(1), two_level=False)
    _assert_close_ci(ours, ref)


# ---- change points against ruptures --------------------------------------------------------------
# change_points() splits where the two-level L1 fit is best (ruptures' CostL1: sum of absolute
# deviations from each part's median) and recurses, like ruptures.Binseg(model="l1") with the
# same minimum segment length and every index admissible (jump=1); it then keeps a split only if
# it is significant, where Binseg is told how many to find.

MIN_SEG = 3


def _binseg(x, n_bkps):
    rpt = pytest.importorskip("ruptures")
    algo = rpt.Binseg(model="l1", min_size=MIN_SEG, jump=1).fit(np.asarray(x, float))
    return algo.predict(n_bkps=n_bkps)[:-1]  # the last entry is len(x)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n,shifts", [
    (24, {14: 1.15}),
    (36, {12: 1.2, 24: 0.8}),
    (48, {10: 1.25, 22: 0.85, 37: 1.2}),
    (30, {5: 0.85}),
])
def test_change_points_match_ruptures_binseg_l1(seed, n, shifts):
    rng = np.random.default_rng(seed)
    x = 10.0 * np.exp(rng.normal(0, 0.02, n))
    for at, factor in shifts.items():
        x[at:] *= factor
    truth = sorted(shifts)
    found = change_points(x, min_seg=MIN_SEG)
    assert found == _binseg(x, len(truth))
    # binary segmentation is greedy: a noisy point next to a shift can move a split by one
    assert len(found) == len(truth) and all(abs(f - t) <= 1 for f, t in zip(found, truth))


@pytest.mark.parametrize("seed", range(20))
def test_first_split_is_ruptures_best_l1_split(seed):
    """Where a noisy shift is placed (right or wrong): a split of minimal L1 cost by ruptures'
    CostL1, the same index as ruptures' best single split unless several splits tie (the L1
    cost is piecewise linear, so ties happen; change_points() takes the earliest)."""
    rpt = pytest.importorskip("ruptures")
    rng = np.random.default_rng(100 + seed)
    n = 30
    x = 10.0 * np.exp(rng.normal(0, 0.05, n))
    x[int(rng.integers(6, 24)):] *= 1.0 + float(rng.uniform(0.08, 0.2))
    found = change_points(x, min_seg=MIN_SEG, z_min=0.0, min_sigma=0.0, min_rel=0.0,
                          max_points=1)
    (ref,) = _binseg(x, 1)
    cost = rpt.costs.CostL1().fit(x)
    costs = {t: cost.error(0, t) + cost.error(t, n) for t in range(MIN_SEG, n - MIN_SEG + 1)}
    best = min(costs.values())
    assert len(found) == 1 and costs[found[0]] == pytest.approx(best, rel=1e-12)
    assert costs[ref] == pytest.approx(best, rel=1e-12)
    optimal = [t for t, c in costs.items() if c <= best * (1 + 1e-12)]
    assert found[0] == min(optimal)
    if len(optimal) == 1:
        assert found[0] == ref
