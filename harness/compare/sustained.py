"""The sustained-run section of a report: per series, latency over time with the hottest
thermal zone and the CPU frequency beside it, and the throttling factor (inline SVG).

The data is the `_sustained/RUNID.parquet` side table (harness.store.tables); the throttling
factor is the row's `throttle_ratio`.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from ..store.atomic import atomic_write_text
from ..store.tables import SUSTAINED_KEY, read_sustained
from .svg import PALETTE, Chart

LAT_COLOR, TEMP_COLOR, FMIN_COLOR, FMAX_COLOR = PALETTE[0], PALETTE[3], PALETTE[2], PALETTE[4]


def _lim(values: np.ndarray) -> tuple[float, float] | None:
    v = values[np.isfinite(values)]
    if not len(v):
        return None
    lo, hi = float(v.min()), float(v.max())
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    return lo - pad, hi + pad


def _chart(title: str, ylabel: str, t: np.ndarray, series: list[tuple[str, str, np.ndarray]],
           unit: str, floor_zero: bool = False) -> str | None:
    """One time chart of ``series`` (label, color, values); None when nothing is finite."""
    lim = _lim(np.concatenate([v for _, _, v in series]))
    if lim is None:
        return None
    lo, hi = lim
    ch = Chart(title, "time (s)", ylabel, xlim=(0.0, float(np.nanmax(t)) if len(t) else 1.0),
               ylim=(max(0.0, lo) if floor_zero else lo, hi), width=380)
    for label, color, vals in series:
        ch.line(list(zip(t.tolist(), vals.tolist())), color)
        for x, y in zip(t.tolist(), vals.tolist()):
            ch.point(x, y, color, f"{label} at {x:.1f} s: {y:.4g} {unit}", r=1.6,
                     series=label)
        if len(series) > 1:
            ch.legend(label, color, "line")
    return ch.svg()


def _title(g: pd.DataFrame) -> str:
    r = g.iloc[0]
    parts = [r["model"], f"{r['engine']} {r['engine_version'] or ''}".strip(),
             f"{r['threads']}t", f"cores {r['cores_requested']} (mask {r['cpu_mask'] or '-'})",
             r["host"], f"process {r['process']}"]
    return " · ".join(str(p) for p in parts if p is not None)


def section(windows: pd.DataFrame, ratios: dict | None = None) -> str:
    """HTML (a heading and one row of charts per series) for the side-table rows
    ``windows``; ``ratios``: key (run_id, host, series, process) -> (throttle_ratio, window
    s) from the dataset rows. '' when there are no windows."""
    if windows is None or windows.empty:
        return ""
    out = ["<h2>Sustained runs</h2>",
           "<p class=\"note\">Latency: the median of each window of at least one second; "
           "throttling factor: the last minute's median over the first minute's (the last and "
           "first quarter for runs under 120 s).</p>"]
    for key, g in windows.groupby(list(SUSTAINED_KEY), sort=True, dropna=False):
        g = g.sort_values("t_s")
        t = g["t_s"].to_numpy(float)
        title = _title(g)
        ratio, span = (ratios or {}).get(tuple(key), (None, None))
        have_ratio = ratio is not None and math.isfinite(ratio)
        factor = (f"throttling factor {ratio:.3f} (windows of {span:g} s)" if have_ratio
                  else "throttling factor not available")
        out.append(f"<h3>{escape(title)}</h3><p class=\"sub\">{escape(factor)} · "
                   f"{int(g['iterations'].sum())} runs in {t.max():.0f} s</p>")
        out.append("<div class=\"grid\">")
        charts = [_chart(f"latency: {g.iloc[0]['model']} ({g.iloc[0]['engine']})",
                         "latency (ms)", t,
                         [("median latency", LAT_COLOR, g["latency_ms"].to_numpy(float))],
                         "ms", floor_zero=True),
                  _chart("hottest thermal zone", "temperature (°C)", t,
                         [("temperature", TEMP_COLOR, g["temp_max_c"].to_numpy(float))], "°C"),
                  _chart("CPU frequency", "frequency (MHz)", t,
                         [("lowest core", FMIN_COLOR, g["freq_cur_mhz_min"].to_numpy(float)),
                          ("highest core", FMAX_COLOR, g["freq_cur_mhz_max"].to_numpy(float))],
                         "MHz")]
        missing = ("no thermal zone was readable", "no cpufreq was readable")
        out.append(charts[0] or "<p class=\"note\">no latency windows</p>")
        for ch, why in zip(charts[1:], missing):
            out.append(ch or f"<p class=\"note\">{why} on this host: nothing to plot</p>")
        out.append("</div>")
    return "\n".join(out)


def throttle_ratios(data_dir, run_id: str) -> dict:
    """key (run_id, host, series, process) -> (throttle_ratio, throttle_window_s) of the
    run's sustained rows."""
    from ..results import load
    cols = [*SUSTAINED_KEY, "throttle_ratio", "throttle_window_s"]
    df = load(data_dir, columns=cols, run_id=run_id)
    df = df[df["throttle_ratio"].notna()]
    return {tuple(str(r[k]) if k != "process" else int(r[k]) for k in SUSTAINED_KEY):
            (float(r["throttle_ratio"]), float(r["throttle_window_s"]))
            for _, r in df.iterrows()}


def run_section(data_dir, run_id: str) -> str:
    """The sustained section of run ``run_id`` in dataset ``data_dir`` ('' without series)."""
    windows = read_sustained(data_dir, run_id)
    if windows.empty:
        return ""
    return section(windows, throttle_ratios(data_dir, run_id))


def write_page(data_dir, run_id: str) -> Path | None:
    """DATA/_reports/sustained-RUN_ID.html, a self-contained page of the run's sustained
    series; None when the run has none."""
    from .html import CSS
    body = run_section(data_dir, run_id)
    if not body:
        return None
    title = f"harness sustained runs — {run_id}"
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1>{body}<p class=\"note\">Generated by harness. "
            "Self-contained: no scripts, no external resources.</p></body></html>")
    return atomic_write_text(Path(data_dir) / "_reports" / f"sustained-{run_id}.html", page)
