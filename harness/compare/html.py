"""A self-contained HTML report of a CompareResult: one file, inline CSS and SVG, no scripts,
no network references, readable offline.

Contents: summary and thresholds, the pairs table (worst first), missing pairs, then per host:
latency vs threads (median with p10–p90 whiskers, base and head) and peak RSS per phase vs
threads; for a precision comparison, speed-up against accuracy cost (1 - cosine) per pair;
finally output error (rel_err and 1 - cosine, log scale) per backend/precision with the
tolerance lines from harness.verdict.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np
import pandas as pd

from ..verdict import tolerance_for
from ..status import severity_rank
from .render import display_frame, legend, split_key, summary_line
from .svg import PALETTE, Chart
from .verdicts import PHASES

BASE_COLOR, HEAD_COLOR = PALETTE[0], PALETTE[1]
PHASE_COLORS = {"load": PALETTE[2], "first": PALETTE[4], "steady": PALETTE[5]}
VERDICT_COLORS = {"slower": "#d62728", "larger": "#d62728", "wrong": "#d62728",
                  "drift": "#e67e22", "unstable": "#9467bd", "insufficient": "#7f7f7f",
                  "faster": "#2ca02c", "smaller": "#2ca02c", "identical": "#2ca02c",
                  "ok": "#2ca02c", "same": "#555555", "no-ref": "#7f7f7f"}

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;
 margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}.sub{color:#555;margin:2px 0}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;white-space:nowrap}
td.wrap{white-space:normal;overflow-wrap:anywhere;min-width:8em;max-width:32em}
.tw{max-width:100%;overflow-x:auto}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fbfbfb}
.v{font-weight:600}.badge{display:inline-block;border-radius:10px;padding:1px 8px;margin:2px;
 color:#fff;font-size:12px}
.grid{display:flex;flex-wrap:wrap;gap:10px}.chart{border:1px solid #eee;background:#fff}
.tick{font-size:10px;fill:#555}.axis{font-size:11px;fill:#333}.title{font-size:12px;
 font-weight:600;fill:#222}.leg{font-size:10px;fill:#333}.lab{font-size:9px}
.note{color:#666;font-size:12px}
"""


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return str(v)


def _badge(verdict: str, count: int | None = None) -> str:
    color = VERDICT_COLORS.get(verdict, "#555")
    text = f"{count} {verdict}" if count is not None else verdict
    return f'<span class="badge" style="background:{color}">{escape(text)}</span>'


# Free-text columns wrap so the pairs table fits a laptop screen; numbers and verdicts do not.
WRAP_COLUMNS = frozenset({"note", "model", "input_shape", "host", "suite", "run_id"})


def _table(frame: pd.DataFrame, verdict_cols=()) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for c, v in zip(frame.columns, row):
            if c in verdict_cols:
                color = VERDICT_COLORS.get(str(v), "#222")
                cells.append(f'<td class="v" style="color:{color}">{escape(_fmt(v))}</td>')
            elif c in WRAP_COLUMNS:
                cells.append(f'<td class="wrap">{escape(_fmt(v))}</td>')
            else:
                cells.append(f"<td>{escape(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="tw"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _threads_sorted(values) -> list:
    vals = list(pd.unique(pd.Series(list(values), dtype=object)))
    try:
        return sorted(vals, key=lambda v: float(v))
    except (TypeError, ValueError):
        return sorted(vals, key=str)


def _panels(pairs: pd.DataFrame, cols: list[str]):
    """Group pairs into panels by `cols`, worst verdict first."""
    if not cols:
        groups = [((), pairs)]
    else:
        keyframe = pairs[cols].astype(object).fillna("-")
        groups = list(pairs.groupby([keyframe[c] for c in cols], sort=False, dropna=False))
    scored = []
    for k, g in groups:
        score = min(min(severity_rank(v) for v in g[a]) for a in ("latency", "memory",
                                                                  "correctness"))
        scored.append((score, k if isinstance(k, tuple) else (k,), g))
    scored.sort(key=lambda t: t[0])
    return scored


def _panel_title(cols, key_vals, const: dict) -> str:
    parts = [str(v) for c, v in zip(cols, key_vals) if c not in const]
    return " · ".join(parts) or " · ".join(str(const.get(c, "")) for c in cols
                                            if c in ("model",)) or "all"


def side_label(res, g: pd.DataFrame, sd: str) -> str:
    """A side's name in a chart: its value, with the engine in front when the engine is not
    what is compared (`mnn 3.4.0`, not a bare `3.4.0`)."""
    value = res.base if sd == "base" else res.head
    if res.dimension == "engine" or "engine" not in g:
        return str(value)
    engines = pd.unique(g["engine"].astype(object))
    return f"{engines[0]} {value}" if len(engines) == 1 else str(value)


def _with_engine(title: str, res, g: pd.DataFrame) -> str:
    if res.dimension == "engine" or "engine" not in g:
        return title
    engines = [str(e) for e in pd.unique(g["engine"].astype(object))]
    return title if any(e in title.split(" · ") for e in engines) else \
        " · ".join(engines + [title])


# One configuration 10x slower than the rest squeezes every other point into the bottom of a
# linear axis; past this spread (p90 max / p10 min) the latency axis is logarithmic.
LOG_AXIS_SPREAD = 10.0


def latency_chart(res, g: pd.DataFrame, title: str) -> Chart:
    threads = _threads_sorted(g["threads"])
    lo = np.nanmin(np.r_[g["p10_base"].to_numpy(float), g["p10_head"].to_numpy(float)])
    hi = np.nanmax(np.r_[g["p90_base"].to_numpy(float), g["p90_head"].to_numpy(float)])
    if lo > 0 and hi / lo > LOG_AXIS_SPREAD:
        ch = Chart(_with_engine(title, res, g), "threads", "latency (ms, log)",
                   x_categories=threads, ylim=(lo / 1.5, hi * 2.5), ylog=True)
    else:
        pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
        ch = Chart(_with_engine(title, res, g), "threads", "latency (ms)",
                   x_categories=threads, ylim=(max(0.0, lo - pad), hi + pad * 2))
    pos = {t: i for i, t in enumerate(threads)}
    for sd, color, dx in (("base", BASE_COLOR, -7), ("head", HEAD_COLOR, 7)):
        label = side_label(res, g, sd)
        pts = []
        for _, r in g.iterrows():
            x = pos[r["threads"]]
            ch.whisker(x, r[f"p10_{sd}"], r[f"p90_{sd}"], color, dx=dx)
            tip = (f"{label}: {r['threads']} threads, median {r[f'median_{sd}']:.4g} ms, "
                   f"p10 {r[f'p10_{sd}']:.4g}, p90 {r[f'p90_{sd}']:.4g}, n={r[f'n_{sd}']}")
            ch.point(x, r[f"median_{sd}"], color, tip, dx=dx, series=sd)
            pts.append((x, r[f"median_{sd}"]))
            if sd == "head" and np.isfinite(r["ratio"]):
                ch.text(x, r["p90_head"], f"×{r['ratio']:.2f}",
                        VERDICT_COLORS.get(r["latency"], "#555"), dx=dx)
        pts.sort()
        ch.line(pts, color, dx=dx, dash="3 2" if sd == "base" else None)
        ch.legend(f"{label} ({sd})", color)
    return ch


def memory_chart(res, g: pd.DataFrame, title: str) -> Chart | None:
    cols = [f"rss_{ph}_{sd}" for ph in PHASES for sd in ("base", "head")]
    vals = g[cols].to_numpy(float) / 1024.0
    if not np.isfinite(vals).any():
        return None
    theory = (float(np.nanmedian(g["theory_kb"].to_numpy(float))) / 1024.0
              if "theory_kb" in g and np.isfinite(g["theory_kb"].to_numpy(float)).any() else None)
    if theory is not None:
        vals = np.append(vals, theory)
    threads = _threads_sorted(g["threads"])
    lo, hi = np.nanmin(vals), np.nanmax(vals)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    ch = Chart(_with_engine(title, res, g), "threads", "peak RSS (MiB)", x_categories=threads,
               ylim=(max(0.0, lo - pad), hi + pad * 1.5))
    pos = {t: i for i, t in enumerate(threads)}
    for ph in PHASES:
        color = PHASE_COLORS[ph]
        for sd, dx, filled in (("base", -5, False), ("head", 5, True)):
            label = side_label(res, g, sd)
            pts = []
            for _, r in g.iterrows():
                v = r[f"rss_{ph}_{sd}"] / 1024.0
                x = pos[r["threads"]]
                tip = (f"{label}: {ph} peak {v:.1f} MiB at {r['threads']} threads "
                       f"({r[f'rss_{ph}']})")
                ch.point(x, v, color, tip, dx=dx, filled=filled, series=f"{ph}-{sd}")
                pts.append((x, v))
                if sd == "head" and r[f"rss_{ph}"] in ("larger", "smaller"):
                    ch.text(x, v, f"{r[f'rss_{ph}_delta_kb'] / 1024:+.1f}",
                            VERDICT_COLORS[r[f"rss_{ph}"]], dx=dx)
            pts.sort()
            ch.line(pts, color, dx=dx, dash="3 2" if sd == "base" else None)
        ch.legend(ph, color)
    if theory is not None:
        # measured beside what the model needs: weights + liveness lower bound of activations
        ch.hline(theory, "#888", f"theory {theory:.1f} MiB (weights + activation lower bound)")
    ch.legend(f"{side_label(res, g, 'base')} (base, hollow, dashed)", "#555", "hollow")
    ch.legend(f"{side_label(res, g, 'head')} (head, filled)", "#555", "dot")
    return ch


def error_chart(res, g: pd.DataFrame, title: str, precision, host_varies: bool,
                max_categories: int = 48) -> Chart | None:
    g = g.iloc[:max_categories]
    metrics = {}
    for sd in ("base", "head"):
        metrics[("rel", sd)] = g[f"rel_err_{sd}"].to_numpy(float)
        metrics[("cos", sd)] = 1.0 - g[f"cosine_{sd}"].to_numpy(float)
    allv = np.concatenate(list(metrics.values()))
    allv = allv[np.isfinite(allv)]
    if not len(allv):
        return None
    floor = 1e-12
    tol = tolerance_for(precision if isinstance(precision, str) else None)
    tol_vals = [tol.rel_err if tol.rel_err is not None else np.nan, 1.0 - tol.cosine]
    vals = np.r_[np.maximum(allv, floor), [v for v in tol_vals if np.isfinite(v)]]
    cats = []
    for _, r in g.iterrows():
        lab = f"{r['model']}@{r['threads']}t" if "model" in g.columns else f"{r['threads']}t"
        if "engine" in g.columns and g["engine"].nunique() > 1:
            lab += f" {r['engine']}"
        if host_varies and "host" in g.columns:
            lab += f" {r['host']}"
        cats.append(lab)
    ch = Chart(title, "", "error (log)", x_categories=cats, ylim=(vals.min() / 3, vals.max() * 30),
               ylog=True, width=max(360, 26 * len(cats) + 90), height=300, rotate_x=True)
    for (metric, sd), arr in metrics.items():
        color = BASE_COLOR if sd == "base" else HEAD_COLOR
        shape = "circle" if metric == "rel" else "square"
        dx = -5 if sd == "base" else 5
        name = "rel_err" if metric == "rel" else "1-cos"
        for i, v in enumerate(arr):
            verdict = g.iloc[i]["correctness"]
            if np.isfinite(v):
                ch.point(i, max(v, floor), color, f"{cats[i]} {sd}: {name} {v:.3g} ({verdict})",
                         dx=dx, shape=shape, filled=(sd == "head"), series=f"{metric}-{sd}")
            elif metric == "rel" and (np.isinf(v) or (g.iloc[i][f"nan_inf_{sd}"] or 0) > 0):
                # an infinite or NaN error has no place on the axis: drawn at the top, named
                what = "inf" if np.isinf(v) else "NaN"
                ch.point(i, ch.yhi, color, f"{cats[i]} {sd}: {name} {what} ({verdict})",
                         dx=dx, shape=shape, filled=(sd == "head"), series=f"{metric}-{sd}")
                ch.text(i, ch.yhi, what, VERDICT_COLORS.get(verdict, "#d62728"), dx=dx, dy=12)
    if np.isfinite(tol_vals[0]):
        ch.hline(tol_vals[0], "#d62728", f"rel_err tol {tol_vals[0]:g}")
    ch.hline(tol_vals[1], "#9467bd", f"1-cos tol {tol_vals[1]:.0e}", dash="1 3")
    ch.legend(f"rel_err {side_label(res, g, 'base')} (base)", BASE_COLOR, "hollow")
    ch.legend(f"rel_err {side_label(res, g, 'head')} (head)", HEAD_COLOR, "dot")
    ch.legend("1-cos (squares)", "#555", "square")
    return ch


def speed_accuracy_chart(res, pairs: pd.DataFrame, max_points: int = 400) -> Chart | None:
    """Speed-up against accuracy cost, one point per pair (a precision comparison: what int8
    or fp16 buys and what it costs): x = base median / head median (2 = twice as fast),
    y = the head's 1 - cosine against the fp32 reference (log). Colour by engine, a dashed
    line at the head precision's cosine tolerance (harness.verdict). None without a pair that
    has both figures."""
    g = pairs.iloc[:max_points]
    speed = 1.0 / g["ratio"].to_numpy(float)
    cost = 1.0 - g["cosine_head"].to_numpy(float)
    ok = np.isfinite(speed) & np.isfinite(cost) & (speed > 0)
    if not ok.any():
        return None
    floor = 1e-9
    tol = tolerance_for(res.head if res.dimension == "precision" else None)
    ys = np.r_[np.maximum(cost[ok], floor), 1.0 - tol.cosine]
    xs = speed[ok]
    lo, hi = min(xs.min(), 1.0), max(xs.max(), 1.0)  # 1x (no change) always in view
    pad = (hi - lo) * 0.1 or 0.1
    ch = Chart(f"speed-up vs accuracy cost: {res.base} → {res.head}",
               f"speed-up (×, {res.base} median / {res.head} median)",
               "1 - cosine vs reference (log)", xlim=(max(0.0, lo - pad), hi + pad),
               ylim=(ys.min() / 3, ys.max() * 30), ylog=True, width=520, height=320)
    engines = list(pd.unique(g["engine"].astype(object))) if "engine" in g.columns else [""]
    colors = {e: PALETTE[i % len(PALETTE)] for i, e in enumerate(engines)}
    for i in np.flatnonzero(ok):
        r = g.iloc[i]
        e = r["engine"] if "engine" in g.columns else ""
        top1 = r.get("top1_head")
        top1 = f", top-1 agreement {top1:.3f}" if top1 is not None and np.isfinite(top1) else ""
        tip = (f"{r.get('model', '')} {e} {r['threads']} threads: ×{speed[i]:.2f} "
               f"({r['latency']}), 1-cos {cost[i]:.3g}{top1} ({r['correctness']})")
        ch.point(speed[i], max(cost[i], floor), colors[e], tip, series=str(e))
    ch.hline(1.0 - tol.cosine, "#9467bd", f"1-cos tol {1.0 - tol.cosine:.0e}", dash="1 3")
    ch.vline(1.0, "#555", "×1: as fast")
    for e in engines:
        ch.legend(str(e), colors[e])
    return ch


def to_html(res, title: str | None = None, max_panels: int = 36,
            max_table_rows: int = 1000) -> str:
    title = title or f"harness compare — {res.dimension}: {res.base} → {res.head}"
    const, vary = split_key(res)
    pairs = res.pairs
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
           f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{escape(title)}</h1>",
           f"<p class=\"sub\">base <b>{escape(res.base)}</b> → head <b>{escape(res.head)}</b>"
           f" · {len(pairs)} matched pair(s) · {len(res.missing)} missing</p>"]
    held = ", ".join(f"{k}={v}" for k, v in const.items())
    if held:
        out.append(f"<p class=\"sub\">held equal: {escape(held)}</p>")
    badges = []
    for aspect, counts in res.counts().items():
        if aspect == "missing":
            continue
        items = sorted(counts.items(), key=lambda kv: severity_rank(kv[0]))
        badges.append(f"<div><b>{aspect}</b>: " + "".join(_badge(v, n) for v, n in items)
                      + "</div>")
    out.append("".join(badges))
    out.append(f"<p class=\"note\">{escape(legend(res.thresholds))}</p>")
    out.append(f"<p class=\"note\">{escape(summary_line(res))}</p>")

    out.append("<h2>Pairs</h2>")
    show, _, left_out = display_frame(res, max_table_rows)
    out.append(_table(show, verdict_cols=("latency", "memory", "correctness")) if len(show)
               else "<p>No matched pairs.</p>")
    if left_out:
        out.append(f"<p class=\"note\">{left_out} more pair(s) not shown.</p>")
    if len(res.missing):
        from .render import missing_frame
        out.append(f"<h2>Missing on one side ({len(res.missing)})</h2>")
        out.append(_table(missing_frame(res)))

    if len(pairs):
        panel_cols = [c for c in res.key if c not in ("threads", "host")]
        if "host" in res.key:
            hosts = list(pd.unique(pairs["host"].astype(object)))
            sections = [(f"Host {h}", pairs[(pairs["host"].astype(object) == h).to_numpy()])
                        for h in hosts]
        else:
            sections = [(f"{res.dimension}: {res.base} vs {res.head}", pairs)]
        for name, sub in sections:
            out.append(f"<h2>{escape(name)}</h2>")
            panels = _panels(sub, panel_cols)
            shown = panels[:max_panels]
            out.append("<h3>Latency vs threads (median, p10–p90)</h3><div class=\"grid\">")
            for _, kv, g in shown:
                out.append(latency_chart(res, g, _panel_title(panel_cols, kv, const)).svg())
            out.append("</div>")
            out.append("<h3>Peak RSS per phase vs threads</h3><div class=\"grid\">")
            for _, kv, g in shown:
                ch = memory_chart(res, g, _panel_title(panel_cols, kv, const))
                if ch is not None:
                    out.append(ch.svg())
            out.append("</div>")
            if len(panels) > max_panels:
                out.append(f"<p class=\"note\">{len(panels) - max_panels} more panel(s) "
                           f"not drawn (best verdicts); see the table.</p>")

        if res.dimension == "precision":
            ch = speed_accuracy_chart(res, pairs)
            if ch is not None:
                out.append("<h2>Speed-up vs accuracy cost</h2>")
                out.append(ch.svg())
        out.append("<h2>Output error per backend / precision</h2><div class=\"grid\">")
        ecols = [c for c in ("backend", "precision") if c in res.key]
        host_varies = "host" in vary
        for _, kv, g in _panels(pairs, ecols)[:max_panels]:
            kd = dict(zip(ecols, kv))
            precision = kd.get("precision", res.head if res.dimension == "precision" else None)
            label = " · ".join(f"{v}" for v in kd.values()) or f"{res.base} → {res.head}"
            ch = error_chart(res, g, f"output error: {label}", precision, host_varies)
            if ch is not None:
                out.append(ch.svg())
        out.append("</div>")
    out.append("<p class=\"note\">Generated by harness compare. Self-contained: no scripts, "
               "no external resources.</p></body></html>")
    return "\n".join(out)
