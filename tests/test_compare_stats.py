"""harness.compare.stats and change-point detection: the numbers themselves."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from harness.compare.history import change_points, history
from harness.compare.stats import grouped_latency, mwu_normal_p, norm_sf
from harness.compare.synthetic import T0, frame, rows_for
from tests.oracles import bootstrap_medians, bootstrap_ratio_ci, mann_whitney_u

pytestmark = pytest.mark.unit


# ---- Mann–Whitney U -----------------------------------------------------------------------------

def _brute_force_p(x, y):
    """P(U >= u) and P(U <= u) over all splits of the pooled sample (no ties)."""
    pooled = np.concatenate([x, y])
    n, n2 = len(pooled), len(y)
    u_obs = sum(b > a for a in x for b in y)
    us = []
    for comb in itertools.combinations(range(n), n2):
        yy = pooled[list(comb)]
        xx = np.delete(pooled, list(comb))
        us.append(sum(b > a for a in xx for b in yy))
    us = np.array(us)
    return u_obs, (us >= u_obs).mean(), (us <= u_obs).mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mwu_exact_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=5), rng.normal(size=4) + 0.7
    u, pg, pl = _brute_force_p(x, y)
    r = mann_whitney_u(x, y)
    assert r.method == "exact" and r.u == u
    assert r.p_greater == pytest.approx(pg) and r.p_less == pytest.approx(pl)


def test_mwu_known_values():
    r = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert r.u == 9 and r.p_greater == pytest.approx(1 / 20) and r.p_less == 1.0
    assert mann_whitney_u([1, 1, 1], [1, 1, 1]).p_greater == 1.0  # all tied


def test_mwu_normal_close_to_exact():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=25), rng.normal(size=25) + 0.4
    exact = mann_whitney_u(x, y)
    normal = mann_whitney_u(x, y, exact_max=0)
    assert exact.method == "exact" and normal.method == "normal"
    assert abs(exact.p_greater - normal.p_greater) < 0.01


def test_mwu_tie_correction():
    # with heavy ties the corrected variance is smaller -> smaller p than uncorrected
    x = np.array([1, 1, 2, 2, 2, 3, 3] * 5, float)
    y = x + np.array([0, 1] * 17 + [0], float)
    r = mann_whitney_u(x, y)
    n1 = n2 = len(x)
    pg_uncorrected, _ = mwu_normal_p([r.u], [n1], [n2], [0.0])
    assert r.method == "normal" and r.p_greater < pg_uncorrected[0]


def test_norm_sf():
    np.testing.assert_allclose(norm_sf([0.0, 1.6448536269514722, -1.959963984540054]),
                               [0.5, 0.05, 0.975], rtol=1e-12)
    assert norm_sf([np.inf])[0] == 0.0 and norm_sf([-np.inf])[0] == 1.0


# ---- all pairs at once ------------------------------------------------------------------------

def test_grouped_latency_matches_per_pair():
    rng = np.random.default_rng(11)
    vals, pair, side, groups = [], [], [], {}
    for p in range(40):
        for s in (0, 1):
            n = int(rng.integers(1, 60))
            v = np.round(rng.lognormal(0, 0.1, n) * (1.05 if s and p % 3 == 0 else 1.0), 2)
            groups[p, s] = v
            vals.append(v), pair.append(np.full(n, p)), side.append(np.full(n, s))
    g = grouped_latency(np.concatenate(vals), np.concatenate(pair), np.concatenate(side), 40)
    for p in range(40):
        xb, xh = groups[p, 0], groups[p, 1]
        r = mann_whitney_u(xb, xh, exact_max=0)
        assert g.p_slower[p] == pytest.approx(r.p_greater, abs=1e-12)
        assert g.p_faster[p] == pytest.approx(r.p_less, abs=1e-12)
        assert g.u_head[p] == pytest.approx(r.u)
        for sd, x in ((0, xb), (1, xh)):
            assert g.n[sd, p] == len(x)
            assert g.median[sd, p] == pytest.approx(np.median(x), rel=1e-12)
            assert g.p10[sd, p] == pytest.approx(np.quantile(x, 0.1), rel=1e-12)
            assert g.p90[sd, p] == pytest.approx(np.quantile(x, 0.9), rel=1e-12)
            if len(x) > 1:
                assert g.std[sd, p] == pytest.approx(np.std(x, ddof=1), rel=1e-9)


def test_grouped_latency_empty_side_and_robust_cv():
    v = np.array([1.0, 2.0, 3.0])
    g = grouped_latency(v, np.zeros(3, int), np.zeros(3, int), 2)
    assert g.n[1, 0] == 0 and math.isnan(g.median[1, 0]) and g.p_slower[0] == 1.0
    rng = np.random.default_rng(0)
    x = rng.normal(100, 3, 20000)
    g = grouped_latency(x, np.zeros(len(x), int), np.zeros(len(x), int), 1)
    assert g.cv("robust")[0, 0] == pytest.approx(0.03, rel=0.05)
    assert g.cv("classic")[0, 0] == pytest.approx(0.03, rel=0.05)


# ---- bootstrap ----------------------------------------------------------------------------------

def test_bootstrap_ci_covers_ratio_and_is_seeded():
    rng = np.random.default_rng(2)
    base = [10 * math.exp(rng.normal(0, 0.01)) * np.exp(rng.normal(0, 0.03, 40)) for _ in range(5)]
    head = [1.1 * g for g in base]
    lo, hi = bootstrap_ratio_ci(base, head, 2000, rng=np.random.default_rng(0))
    assert lo < 1.1 < hi and hi - lo < 0.1
    again = bootstrap_ratio_ci(base, head, 2000, rng=np.random.default_rng(0))
    assert again == (lo, hi)


def test_bootstrap_unequal_process_lengths():
    rng = np.random.default_rng(4)
    groups = [rng.lognormal(0, 0.02, n) for n in (5, 17, 40)]
    meds = bootstrap_medians(groups, 300, np.random.default_rng(1))
    pooled = np.concatenate(groups)
    assert meds.shape == (300,) and np.isfinite(meds).all()
    assert pooled.min() <= meds.min() and meds.max() <= pooled.max()
    assert abs(np.median(meds) - np.median(pooled)) < 0.02


def test_bootstrap_reflects_process_variance():
    """Process offsets widen the hierarchical CI (samples alone would understate it)."""
    rng = np.random.default_rng(9)
    tight = [np.exp(rng.normal(0, 0.01, 40)) for _ in range(5)]
    spread = [math.exp(o) * np.exp(rng.normal(0, 0.01, 40)) for o in (-.05, -.02, 0, .02, .05)]
    w_tight = np.diff(bootstrap_ratio_ci(tight, tight, 1000))[0]
    w_spread = np.diff(bootstrap_ratio_ci(spread, spread, 1000))[0]
    assert w_spread > 3 * w_tight


# ---- change points -----------------------------------------------------------------------------

def _noisy(n, rng, sigma=0.03, level=10.0):
    return level * np.exp(rng.normal(0, sigma, n))


@pytest.mark.parametrize("seed", range(5))
def test_step_gives_exactly_one_change_point(seed):
    rng = np.random.default_rng(seed)
    x = _noisy(24, rng)
    x[14:] *= 1.15
    assert change_points(x) == [14]


@pytest.mark.parametrize("seed", range(5))
def test_single_spike_gives_none(seed):
    rng = np.random.default_rng(seed)
    x = _noisy(24, rng)
    x[11] *= 2.5
    assert change_points(x) == []
    x[11] = x[10] * 0.4  # a dip as well
    assert change_points(x) == []


@pytest.mark.parametrize("seed", range(10))
def test_flat_noisy_series_gives_none(seed):
    assert change_points(_noisy(40, np.random.default_rng(seed), sigma=0.05)) == []


def test_two_steps_and_too_short_tail():
    rng = np.random.default_rng(7)
    x = _noisy(36, rng, sigma=0.02)
    x[12:] *= 1.2
    x[24:] *= 0.8
    assert change_points(x) == [12, 24]
    y = _noisy(20, rng, sigma=0.02)
    y[18:] *= 1.3            # only 2 points at the new level: not persistent yet
    assert change_points(y) == []
    y = np.r_[y, y[18:19]]   # the third point: now flagged, at the start of the shift
    assert change_points(y) == [18]


def test_exact_constant_series_and_nans():
    x = np.r_[np.full(8, 100.0), np.full(8, 110.0)]
    assert change_points(x) == [8]
    assert change_points(np.full(10, 5.0)) == []
    x = np.r_[np.full(8, 100.0), np.full(8, 110.0)]
    x[3] = np.nan
    assert change_points(x) == [8]
    assert change_points([1.0, 2.0]) == []


def test_history_flags_the_sweep_where_the_shift_starts():
    rng = np.random.default_rng(1)
    rows = []
    for i in range(12):
        level = 10.0 if i < 7 else 11.5
        run = f"2026{i:02d}-nightly"
        for model, lvl in (("a", level), ("b", 20.0)):
            rows += rows_for(model=model, run_id=run, sweep_tag="nightly", median_ms=lvl,
                             processes=2, samples=10, t0=T0 + 86400 * i, rng=rng,
                             engine_version="3.4.0" if i < 7 else "3.6.1")
    rows += rows_for(model="a", run_id="other", sweep_tag="adhoc", median_ms=50.0, rng=rng,
                     t0=T0 + 86400 * 3.5)
    h = history(frame(rows), metric="median_ms", tag="nightly")
    assert len(h) == 24 and h["run_id"].nunique() == 12
    a = h[h["model"] == "a"].sort_values("step")
    assert list(a["step"]) == list(range(12))
    assert a["started_at"].is_monotonic_increasing
    cps = a[a["change_point"]]
    assert list(cps["run_id"]) == ["202607-nightly"] and list(cps["engine_version"]) == ["3.6.1"]
    assert cps["shift"].iloc[0] == pytest.approx(0.15, abs=0.02)
    assert not h[h["model"] == "b"]["change_point"].any()
    # without the tag the ad-hoc spike run joins the series but is not a change point
    h_all = history(frame(rows), metric="median_ms")
    a_all = h_all[h_all["model"] == "a"]
    assert len(a_all) == 13 and list(a_all[a_all["change_point"]]["run_id"]) == ["202607-nightly"]


def test_history_other_metric_and_by():
    rng = np.random.default_rng(2)
    rows = []
    for i in range(8):
        rows += rows_for(model="a", run_id=f"r{i}", t0=T0 + 1000 * i, rng=rng, processes=1,
                         rss_kb=(5e4, 9e4, 1e5 if i < 4 else 1.2e5), rss_jitter_kb=0)
    h = history(frame(rows), metric="rss_steady_peak_kb", by=["model"])
    assert list(h.columns[:1]) == ["model"] and len(h) == 8
    assert list(h[h["change_point"]]["run_id"]) == ["r4"]
    assert isinstance(h, pd.DataFrame)
