"""The static trend site: HTML pages with inline CSS and SVG, no scripts, no network references,
so the site opens from disk (file://) in any browser.

Layout of SITE:
  index.html             every series (a row each: key, runs, last median, change points,
                         a sparkline), then every change point, newest first
  series/SLUG.html       one series: latency (median, p10-p90 whisker) and peak RSS per run in
                         time order, change points marked, a table of the runs with links to
                         their sweep reports
  reports/NAME.html      the sweep reports of DATA/_reports, copied (links stay in the site)
  .harness-site          marks a directory this module wrote (only such a directory is
                         replaced)
"""

from __future__ import annotations

import math
import shutil
from html import escape
from pathlib import Path

from ..compare.html import CSS
from ..compare.svg import PALETTE, Chart
from ..errors import InputError
from ..store.atomic import atomic_write_text
from .series import Series

MARKER = ".harness-site"
LAT_COLOR, RSS_COLOR, CHANGE_COLOR = PALETTE[0], PALETTE[2], "#d62728"
EXTRA_CSS = ".spark{border:none;vertical-align:middle}td.num{text-align:right}"
KEY_LABELS = (("model", "model"), ("input_shape", "input"), ("engine", "engine"),
              ("engine_version_requested", "version"), ("backend", "backend"),
              ("precision", "precision"), ("threads", "threads"), ("cores", "cores"),
              ("host", "host"))


def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return escape(str(v))


def _key_text(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return escape(str(v))


def _shift(s: float | None) -> str:
    return "-" if s is None else f"{100 * s:+.1f}%"


def _page(title: str, body: str, up: str = "") -> str:
    back = f' - <a href="{up}index.html">index</a>' if up else ""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}{EXTRA_CSS}</style></head><body>"
            f"{body}<p class=\"note\">written by harness publish; no scripts, opens from disk"
            f"{back}</p></body></html>")


# -- charts ---------------------------------------------------------------------------------------
def _run_axis(s: Series) -> tuple[list[str] | None, tuple[float, float]]:
    """Categorical x labels (run dates) for up to 24 runs; beyond that a numeric run index."""
    n = len(s.runs)
    if n <= 24:
        return [f"{r.started_at:%Y-%m-%d %H:%M}" for r in s.runs], (0.0, 1.0)
    return None, (0.0, float(n - 1))


def _mark_changes(ch: Chart, s: Series, attr: str) -> None:
    """A dashed vertical line at each change point of `attr`, labelled with the shift."""
    for i, r in enumerate(s.runs):
        shift = getattr(r, attr)
        if shift is None:
            continue
        x = ch.px(i)
        ch.items.append(f'<line class="cp" x1="{x:.1f}" x2="{x:.1f}" y1="{ch.mt}" '
                        f'y2="{ch.h - ch.mb}" stroke="{CHANGE_COLOR}" stroke-dasharray="5 3">'
                        f'<title>change point: {_shift(shift)}</title></line>')
        ch.items.append(f'<text x="{x + 3:.1f}" y="{ch.mt + 10}" class="lab" '
                        f'fill="{CHANGE_COLOR}">{escape(_shift(shift))}</text>')


def latency_chart(s: Series, width: int = 760, height: int = 300) -> Chart:
    """Median latency per run with its p10-p90 whisker; change points marked."""
    cats, xlim = _run_axis(s)
    vals = [v for r in s.runs for v in (r.median_ms, r.p10_ms, r.p90_ms) if v is not None]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    ch = Chart(f"latency: {s.label}", "run (start time)", "latency (ms)", x_categories=cats,
               xlim=xlim, ylim=(min(0.0, lo), hi * 1.08 or 1.0), width=width, height=height,
               rotate_x=cats is not None)
    for i, r in enumerate(s.runs):
        ch.whisker(i, r.p10_ms, r.p90_ms, LAT_COLOR)
        ch.point(i, r.median_ms, LAT_COLOR, f"{r.run_id}: median {_fmt(r.median_ms)} ms, "
                 f"p10-p90 {_fmt(r.p10_ms)}-{_fmt(r.p90_ms)} ms", series="latency")
    ch.line([(i, r.median_ms) for i, r in enumerate(s.runs)], LAT_COLOR)
    _mark_changes(ch, s, "latency_change")
    ch.legend("median", LAT_COLOR)
    ch.legend("p10-p90 of all samples", LAT_COLOR, "line")
    ch.legend("change point", CHANGE_COLOR, "dash")
    return ch


def rss_chart(s: Series, width: int = 760, height: int = 260) -> Chart | None:
    """Steady-state peak RSS (MiB, median over the run's rows) per run; None without RSS."""
    vals = [r.rss_kb / 1024 for r in s.runs if r.rss_kb is not None]
    if not vals:
        return None
    cats, xlim = _run_axis(s)
    ch = Chart(f"peak RSS: {s.label}", "run (start time)", "steady peak RSS (MiB)",
               x_categories=cats, xlim=xlim, ylim=(0.0, max(vals) * 1.08 or 1.0),
               width=width, height=height, rotate_x=cats is not None)
    pts = [(i, None if r.rss_kb is None else r.rss_kb / 1024) for i, r in enumerate(s.runs)]
    for i, y in pts:
        ch.point(i, y, RSS_COLOR, f"{s.runs[i].run_id}: {_fmt(y)} MiB", series="rss")
    ch.line(pts, RSS_COLOR)
    _mark_changes(ch, s, "rss_change")
    ch.legend("median steady-state peak RSS", RSS_COLOR)
    ch.legend("change point", CHANGE_COLOR, "dash")
    return ch


def sparkline(s: Series) -> str:
    """A small latency chart for the index (no axes text): median per run, change points red."""
    vals = [r.median_ms for r in s.runs if r.median_ms is not None]
    w, h, pad = 200, 40, 4
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or (abs(hi) * 0.1 or 1.0)
    n = max(len(s.runs) - 1, 1)

    def xy(i, v):
        return (pad + i / n * (w - 2 * pad), h - pad - (v - lo) / span * (h - 2 * pad))
    pts = [xy(i, r.median_ms) for i, r in enumerate(s.runs) if r.median_ms is not None]
    d = "M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in pts)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{3 if r.latency_change is not None else 1.8}" '
        f'fill="{CHANGE_COLOR if r.latency_change is not None else LAT_COLOR}"/>'
        for (x, y), r in zip(pts, [r for r in s.runs if r.median_ms is not None]))
    return (f'<svg class="chart spark" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'role="img" aria-label="median latency per run"><rect width="{w}" height="{h}" '
            f'fill="#fafafa"/><path d="{d}" stroke="{LAT_COLOR}" stroke-width="1.5" '
            f'fill="none"/>{dots}</svg>')


# -- pages ----------------------------------------------------------------------------------------
def series_page(s: Series) -> str:
    """The page of one series (links relative to SITE/series/)."""
    key = " ".join(f"{lab} <b>{_key_text(s.key.get(k))}</b>" for k, lab in KEY_LABELS
                   if k in s.key)
    charts = [latency_chart(s).svg()]
    rc = rss_chart(s)
    charts.append(rc.svg() if rc is not None else '<p class="note">no peak RSS recorded</p>')
    head = ("<tr><th>run</th><th>started (UTC)</th><th>tag</th><th>engine version</th>"
            "<th>rows</th><th>median ms</th><th>p10 ms</th><th>p90 ms</th><th>RSS MiB</th>"
            "<th>latency change</th><th>RSS change</th><th>sweep report</th></tr>")
    rows = []
    for r in reversed(s.runs):
        report = (f'<a href="../{escape(r.report)}">report</a>' if r.report else "-")
        rows.append(
            f"<tr><td>{escape(r.run_id)}</td><td>{r.started_at:%Y-%m-%d %H:%M:%S}</td>"
            f"<td>{_fmt(r.sweep_tag)}</td><td>{_fmt(r.engine_version)}</td>"
            f"<td class=num>{r.rows}</td><td class=num>{_fmt(r.median_ms)}</td>"
            f"<td class=num>{_fmt(r.p10_ms)}</td><td class=num>{_fmt(r.p90_ms)}</td>"
            f"<td class=num>{_fmt(None if r.rss_kb is None else r.rss_kb / 1024)}</td>"
            f"<td>{_shift(r.latency_change)}</td><td>{_shift(r.rss_change)}</td>"
            f"<td>{report}</td></tr>")
    body = (f'<p><a href="../index.html">&larr; all series</a></p><h1>{escape(s.label)}</h1>'
            f'<p class="sub">{key}</p><p class="note">latency: median of the run\'s row medians, '
            f"whisker p10-p90 of all its samples; RSS: median of the rows' steady-state peak; "
            f"change points as <code>harness history</code> finds them (robust binary "
            f"segmentation)</p>"
            f'<div class="grid">{"".join(charts)}</div><h2>runs (newest first)</h2>'
            f"<table>{head}{''.join(rows)}</table>")
    return _page(f"harness trend: {s.label}", body, up="../")


def index_page(series: list[Series], data_label: str) -> str:
    """The index: every series, then every change point (newest first)."""
    head = ("<tr><th>series</th>" + "".join(f"<th>{lab}</th>" for _, lab in KEY_LABELS)
            + "<th>runs</th><th>last median ms</th><th>change points</th>"
              "<th>median latency per run</th></tr>")
    rows = []
    changes = []
    for s in series:
        last = next((r.median_ms for r in reversed(s.runs) if r.median_ms is not None), None)
        href = f"series/{s.slug}.html"
        rows.append(f'<tr><td><a href="{href}">{escape(s.label)}</a></td>'
                    + "".join(f"<td>{_key_text(s.key.get(k))}</td>" for k, _ in KEY_LABELS)
                    + f"<td class=num>{len(s.runs)}</td><td class=num>{_fmt(last)}</td>"
                      f"<td class=num>{s.change_points}</td><td>{sparkline(s)}</td></tr>")
        for r in s.runs:
            for metric, shift in (("latency", r.latency_change), ("peak RSS", r.rss_change)):
                if shift is not None:
                    changes.append((r.started_at, s, r, metric, shift))
    changes.sort(key=lambda c: c[0], reverse=True)
    ch_rows = "".join(
        f'<tr><td>{t:%Y-%m-%d %H:%M}</td><td><a href="series/{s.slug}.html">'
        f"{escape(s.label)}</a></td><td>{escape(r.run_id)}</td><td>{metric}</td>"
        f"<td class=num>{_shift(shift)}</td></tr>" for t, s, r, metric, shift in changes)
    ch_table = (f"<table><tr><th>started (UTC)</th><th>series</th><th>run</th><th>metric</th>"
                f"<th>shift</th></tr>{ch_rows}</table>" if changes
                else '<p class="note">no change points</p>')
    runs = {r.run_id for s in series for r in s.runs}
    body = (f"<h1>harness trends</h1><p class=\"sub\">{len(series)} configuration series over "
            f"{len(runs)} runs of {escape(data_label)}</p><table>{head}{''.join(rows)}</table>"
            f"<h2>change points (newest first)</h2>{ch_table}")
    return _page("harness trends", body)


# -- the site -------------------------------------------------------------------------------------
def _prepare(out: Path) -> None:
    """Empty `out` for a new site: it must be missing, empty, or a site written before."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out}", "is a file", "a directory for the site")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise InputError(f"--output {out}", "is a non-empty directory that harness "
                             "publish did not write", "a new or empty directory")
        for sub in ("series", "reports"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by harness publish; replaced on the next publish\n")


def _copy_reports(data: Path, out: Path, series: list[Series]) -> int:
    """Copy DATA/_reports/*.html into SITE/reports/ and point each run at the report of its
    sweep (TAG-RUN_ID.html, see `harness sweep`). Returns how many were copied."""
    src = data / "_reports"
    found = {p.stem: p for p in sorted(src.glob("*.html"))} if src.is_dir() else {}
    if not found:
        return 0
    dst = out / "reports"
    dst.mkdir(parents=True, exist_ok=True)
    for p in found.values():
        shutil.copyfile(p, dst / p.name)
    for s in series:
        for r in s.runs:
            name = f"{r.sweep_tag}-{r.run_id}" if r.sweep_tag else None
            if name in found:
                r.report = f"reports/{name}.html"
    return len(found)


def write_site(series: list[Series], data: str | Path, out: str | Path) -> dict[str, int]:
    """Write the site of `series` (from the dataset at `data`) to the directory `out`.
    Returns counts: {"series", "pages", "reports"}. Raises InputError for an `out` that is a
    file or a non-empty directory this module did not write."""
    data, out = Path(data), Path(out)
    _prepare(out)
    reports = _copy_reports(data, out, series)
    for s in series:
        atomic_write_text(out / "series" / f"{s.slug}.html", series_page(s))
    atomic_write_text(out / "index.html", index_page(series, str(data)))
    return {"series": len(series), "pages": len(series) + 1, "reports": reports}


__all__ = ["MARKER", "index_page", "latency_chart", "rss_chart", "series_page", "write_site"]
