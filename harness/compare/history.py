"""A metric across sweeps, per series, and change points in it.

history(df, metric="median_ms") -> one row per (series key, run) ordered by the run's start
time: the median of the metric over that run's measured rows, plus the change-point marks.

change_points(x) is robust binary segmentation:
  * noise sigma = 1.4826 * MAD(first differences) / sqrt(2), which a level shift (one large
    difference) or a spike (two) barely moves;
  * for a segment, the split t (both parts >= min_seg long) is the one of the best two-level
    L1 fit (sum of absolute deviations from each part's median: sharp and robust to spikes);
  * it is a change point when the difference of the part medians d has
    z = |d| / (1.2533 sigma sqrt(1/n1 + 1/n2)) >= z_min (1.2533: a median's standard error
    relative to a mean's) AND |d| >= min_sigma x sigma (an effect threshold relative to the
    noise) AND |d| >= min_rel x |median of the segment| AND each part has at least min_seg
    points on its own side of the midpoint between the two levels (persistence);
  * then both parts are searched again.
A single spike moves neither part's median, so it is never flagged; a shift that has not yet
lasted min_seg points is not flagged until it has (then it is flagged once, at its start).
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import pandas as pd

from ..errors import InputError
from ..status import MEASURED
from .pairing import SERIES_KEY, effective, factorize_rows

_MEDIAN_SE = math.sqrt(math.pi / 2)  # 1.2533
# a series across sweeps: the configuration, with the *requested* engine version, so nightly
# runs of "installed" stay one series when the installed version changes (the effective
# version is reported per run), while a sweep over explicit versions gives one series each
HISTORY_KEY = list(SERIES_KEY[:3]) + ["engine_version_requested"] + list(SERIES_KEY[3:])


def robust_sigma(x: np.ndarray) -> float:
    d = np.diff(np.asarray(x, float))
    if len(d) == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0))


def _running_medians(x: np.ndarray) -> np.ndarray:
    """Median of x[:t] for t = 1..len(x) (sorted insertion; O(n log n) compares)."""
    out = np.empty(len(x))
    buf: list[float] = []
    for t, val in enumerate(x.tolist(), start=1):
        bisect.insort(buf, val)
        out[t - 1] = buf[t // 2] if t % 2 else 0.5 * (buf[t // 2 - 1] + buf[t // 2])
    return out


def _split_medians(seg: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(median(seg[:t]), median(seg[t:])) for every t in ts."""
    prefix = _running_medians(seg)                  # prefix[t - 1] = median(seg[:t])
    suffix = _running_medians(seg[::-1])[::-1]      # suffix[t] = median(seg[t:])
    return prefix[ts - 1], suffix[ts]


def change_points(x, *, min_seg: int = 3, z_min: float = 4.5, min_sigma: float = 1.5,
                  min_rel: float = 0.02, max_points: int | None = None) -> list[int]:
    """Indices i where a new level starts (x[i] is the first point after the shift).
    NaN points are ignored (indices still refer to the input)."""
    x = np.asarray(x, dtype=float)
    idx = np.flatnonzero(np.isfinite(x))
    v = x[idx]
    n = len(v)
    if n < 2 * min_seg:
        return []
    sigma = robust_sigma(v)
    scale = float(np.median(np.abs(v))) or 1.0
    sigma = max(sigma, 1e-9 * scale)
    found: list[int] = []

    def best(lo: int, hi: int):
        m = hi - lo
        if m < 2 * min_seg:
            return None
        seg = v[lo:hi]
        ts = np.arange(min_seg, m - min_seg + 1)
        left, right = _split_medians(seg, ts)
        # where: the split of the best two-level L1 fit (sharp, and robust to spikes)
        cols = np.arange(m)[None, :]
        in_left = cols < ts[:, None]
        fit = np.where(in_left, left[:, None], right[:, None])
        cost = np.abs(seg[None, :] - fit).sum(axis=1)
        i = int(np.argmin(cost))
        # whether: the medians' difference against the noise
        d = right[i] - left[i]
        t = int(ts[i])
        z = abs(d) / (_MEDIAN_SE * sigma * math.sqrt(1.0 / t + 1.0 / (m - t)))
        level = abs(float(np.median(seg))) or scale
        ok = z >= z_min and abs(d) >= min_sigma * sigma and abs(d) >= min_rel * level
        if ok:  # persistence: at least min_seg points of each part on its own side of the mid
            mid = (left[i] + right[i]) / 2.0
            sign = 1.0 if d > 0 else -1.0
            ok = (int((sign * (seg[t:] - mid) > 0).sum()) >= min_seg
                  and int((sign * (seg[:t] - mid) < 0).sum()) >= min_seg)
        return (lo + t) if ok else None

    stack = [(0, n)]
    while stack:
        lo, hi = stack.pop()
        t = best(lo, hi)
        if t is None:
            continue
        found.append(t)
        if max_points is not None and len(found) >= max_points:
            break
        stack += [(lo, t), (t, hi)]
    return sorted(int(idx[t]) for t in found)


def history(df: pd.DataFrame, metric: str = "median_ms", by=None, tag: str | None = None, *,
            detect: bool = True, **cp_opts) -> pd.DataFrame:
    """The metric per series key and run, ordered by the run's start time.

    by: the key columns (default HISTORY_KEY: SERIES_KEY plus engine_version_requested);
    tag: only runs with this sweep_tag; cp_opts: change_points() options.

    Columns: the key columns, run_id, sweep_tag, started_at (first row of the run), engine_version
    (effective, joined if several), n (rows), value (median of the metric over the run's
    measured rows), step (0.. per series), change_point (True at the first run of a new
    level), shift (relative change of the median level at a change point)."""
    if metric not in df.columns:
        raise InputError(f"--metric {metric!r}", "is not a column of the data",
                         "a numeric column such as median_ms, p90_ms, rss_steady_peak_kb")
    if not (pd.api.types.is_numeric_dtype(df[metric].dtype)):
        raise InputError(f"--metric {metric!r}", "is not numeric", "a numeric column")
    key = list(by) if by is not None else HISTORY_KEY
    missing = [c for c in key if c not in df.columns]
    if by is None:  # the default key's optional column
        key = [c for c in key if c in df.columns or c != "engine_version_requested"]
        missing = [c for c in key if c not in df.columns]
    if missing:
        raise InputError(f"--by {missing[0]!r}", "is not a column of the data")
    d = df
    if tag is not None:
        d = d[(d["sweep_tag"].astype(object) == tag).to_numpy(dtype=bool)]
    d = d[d["status"].isin(MEASURED).to_numpy(dtype=bool)]
    d = d[d[metric].notna().to_numpy(dtype=bool)]
    cols = key + ["run_id", "sweep_tag", "started_at", "engine_version", metric]
    if d.empty:
        return pd.DataFrame(columns=cols + ["n", "value", "step", "change_point", "shift"])
    gid, keys = factorize_rows({c: effective(d, c) for c in key})
    frame = pd.DataFrame({"_g": gid, "run_id": d["run_id"].astype(object).to_numpy(),
                          "sweep_tag": (d["sweep_tag"].astype(object).to_numpy()
                                        if "sweep_tag" in d.columns else None),
                          "started_at": d["started_at"].to_numpy(),
                          "engine_version": effective(d, "engine_version").astype(object)
                          .to_numpy(),
                          "v": pd.to_numeric(d[metric], errors="coerce").to_numpy(float)})
    grouped = frame.groupby(["_g", "run_id"], sort=False, dropna=False)
    agg = grouped.agg(
        sweep_tag=("sweep_tag", "first"), started_at=("started_at", "min"),
        engine_version=("engine_version", "first"), _nv=("engine_version", "nunique"),
        n=("v", "size"), value=("v", "median")).reset_index()
    if (agg["_nv"] > 1).any():  # several effective versions in one run: list them all
        joined = grouped["engine_version"].agg(
            lambda s: ",".join(sorted({str(x) for x in s if x is not None})))
        multi = agg["_nv"].to_numpy() > 1
        idx = pd.MultiIndex.from_frame(agg.loc[multi, ["_g", "run_id"]])
        agg.loc[multi, "engine_version"] = joined.reindex(idx).to_numpy()
    agg = agg.sort_values(["_g", "started_at", "run_id"], kind="stable").reset_index(drop=True)
    agg["step"] = agg.groupby("_g").cumcount()
    agg["change_point"] = False
    agg["shift"] = np.nan
    if detect:
        for g, sub in agg.groupby("_g", sort=False):
            vals = sub["value"].to_numpy(float)
            cps = change_points(vals, **cp_opts)
            bounds = [0] + cps + [len(vals)]
            for j, c in enumerate(cps):
                before = np.median(vals[bounds[j]:c])
                after = np.median(vals[c:bounds[j + 2]])
                row = sub.index[c]
                agg.loc[row, "change_point"] = True
                agg.loc[row, "shift"] = (after - before) / before if before else np.nan
    out = keys.iloc[agg["_g"].to_numpy()].reset_index(drop=True)
    for c in ("run_id", "sweep_tag", "started_at", "engine_version", "n", "value", "step",
              "change_point", "shift"):
        out[c] = agg[c].to_numpy()
    out.attrs["metric"] = metric
    out.attrs["key"] = key
    return out
