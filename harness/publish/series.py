"""The configuration series of a dataset, each with its runs in time order: what the trend site
shows.

A series is a configuration across sweeps, keyed as `harness history` keys it
(harness.compare.history.HISTORY_KEY: model, input shape, engine, backend, precision,
threads, cores, host and the requested engine version). Per run: the median latency (the
median of the rows' medians, as `history`), its spread (p10 and p90 of every latency sample of
the run's measured rows, harness.stats.quantile), the steady-state peak RSS (median over the
rows), and the change points that `history` flags in each of the two metrics.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..compare.history import HISTORY_KEY, history
from ..compare.pairing import effective
from ..results import load
from ..stats import quantile
from ..status import MEASURED

LATENCY = "median_ms"
RSS = "rss_steady_peak_kb"
SPREAD_Q = (0.1, 0.9)
_COLUMNS = sorted(set(HISTORY_KEY) | {
    LATENCY, RSS, "latency_ms", "run_id", "sweep_tag", "started_at", "engine_version",
    "backend_requested", "precision_requested", "status"})


@dataclass
class RunPoint:
    """One run of a series. Times in ms, memory in KiB; None where the run has no value."""
    run_id: str
    sweep_tag: str | None
    started_at: pd.Timestamp
    engine_version: str | None
    rows: int
    median_ms: float | None
    p10_ms: float | None
    p90_ms: float | None
    rss_kb: float | None
    latency_change: float | None = None  # relative shift when a latency change point starts here
    rss_change: float | None = None
    report: str | None = None  # site-relative path of the run's sweep report


@dataclass
class Series:
    key: dict[str, object]
    slug: str
    runs: list[RunPoint] = field(default_factory=list)

    @property
    def label(self) -> str:
        k = self.key
        parts = [k.get("model"), k.get("engine"), k.get("engine_version_requested"),
                 k.get("backend"), k.get("precision"), _threads(k.get("threads")),
                 k.get("host")]
        return " ".join(str(p) for p in parts if _present(p))

    @property
    def change_points(self) -> int:
        return sum(1 for r in self.runs
                   if r.latency_change is not None or r.rss_change is not None)


def _present(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _threads(v) -> str | None:
    return f"{int(v)}t" if _present(v) else None


def _norm(v) -> str:
    """A key value as text for matching and hashing (None and NaN are '')."""
    if not _present(v):
        return ""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def slug(key: dict[str, object]) -> str:
    """A file name for a series: readable parts and a hash of the whole key (unique, stable)."""
    text = "|".join(f"{k}={_norm(v)}" for k, v in key.items())
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    parts = [_norm(key.get(k)) for k in ("model", "engine", "backend", "precision")]
    parts.append(_threads(key.get("threads")) or "")
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(p for p in parts if p))[:60]
    return f"{readable}-{digest}" if readable else digest


def _spread(df: pd.DataFrame, key: list[str]) -> dict[tuple, tuple]:
    """(key values..., run_id) -> (p10, p90) over the pooled samples of the measured rows."""
    d = df[df["status"].isin(MEASURED).to_numpy(dtype=bool)]
    keys = [effective(d, c).astype(object).map(_norm).to_numpy() for c in key]
    runs = d["run_id"].astype(object).to_numpy()
    pooled: dict[tuple, list[float]] = {}
    for i, lat in enumerate(d["latency_ms"].to_numpy(object)):
        if lat is None or (isinstance(lat, float) and math.isnan(lat)):
            continue
        k = tuple(col[i] for col in keys) + (str(runs[i]),)
        pooled.setdefault(k, []).extend(float(x) for x in lat)
    return {k: (quantile(v, SPREAD_Q[0]), quantile(v, SPREAD_Q[1])) for k, v in pooled.items()}


def _float(v) -> float | None:
    return float(v) if _present(v) and math.isfinite(float(v)) else None


def build_series(df: pd.DataFrame, **cp_opts) -> list[Series]:
    """The series of the rows in `df` (a dataset frame with at least _COLUMNS), each with its
    runs in start order and the change points `history` finds (cp_opts: its options)."""
    lat = history(df, LATENCY, **cp_opts)
    key = [c for c in lat.attrs.get("key", HISTORY_KEY)]
    rss = history(df, RSS, **cp_opts) if df[RSS].notna().any() else None
    rss_at: dict[tuple, tuple[float, float | None]] = {}
    if rss is not None:
        for rec in rss.to_dict("records"):
            k = tuple(_norm(rec[c]) for c in key) + (str(rec["run_id"]),)
            rss_at[k] = (rec["value"], rec["shift"] if rec["change_point"] else None)
    spread = _spread(df, key)
    series: dict[tuple, Series] = {}
    for rec in lat.to_dict("records"):
        skey = tuple(_norm(rec[c]) for c in key)
        if skey not in series:
            kv = {c: rec[c] for c in key}
            series[skey] = Series(kv, slug(kv))
        k = skey + (str(rec["run_id"]),)
        p10, p90 = spread.get(k, (None, None))
        r_val, r_shift = rss_at.get(k, (None, None))
        series[skey].runs.append(RunPoint(
            run_id=str(rec["run_id"]), sweep_tag=rec["sweep_tag"] if _present(
                rec["sweep_tag"]) else None,
            started_at=pd.Timestamp(rec["started_at"]),
            engine_version=str(rec["engine_version"]) if _present(rec["engine_version"])
            else None, rows=int(rec["n"]), median_ms=_float(rec["value"]),
            p10_ms=_float(p10), p90_ms=_float(p90), rss_kb=_float(r_val),
            latency_change=_float(rec["shift"]) if rec["change_point"] else None,
            rss_change=_float(r_shift)))
    return sorted(series.values(), key=lambda s: [_norm(s.key.get(c)) for c in key])


def load_series(data: str | Path, filters: dict[str, list[str]] | None = None,
                **cp_opts) -> list[Series]:
    """build_series over the dataset at `data` (rows matching `filters`). Raises DatasetError
    for a missing or empty dataset."""
    return build_series(load(data, columns=_COLUMNS, **(filters or {})), **cp_opts)


__all__ = ["LATENCY", "RSS", "RunPoint", "Series", "build_series", "load_series", "slug"]
