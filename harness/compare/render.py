"""Text outputs of a CompareResult: terminal table, Markdown, JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from .verdicts import PHASES

from ..status import SEVERITY, severity_rank
from ..store.schema import SCHEMA_VERSION


def _num(v):
    """A JSON-safe scalar: NaN/inf -> None, numpy scalars -> Python."""
    if v is None:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def fmt_g(v, digits: int = 3) -> str:
    """A number for people: `digits` significant digits; `inf`/`-inf` and `NaN` said as such
    (an infinite error is a finding, not a missing value); `-` for None or a non-number."""
    if v is None or isinstance(v, bool):
        return "-" if v is None else str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "-"
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f"{f:.{digits}g}"


def fmt_ms(v) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:.1f}"
    return f"{v:.2f}" if a >= 1 else f"{v:.3f}" if a >= 0.01 else f"{v:.2e}"


def fmt_p(v) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return f"{v:.1e}" if v < 1e-3 else f"{v:.3f}"


def fmt_ratio(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.3f}"


def fmt_ci(lo, hi) -> str:
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "-"
    return f"[{lo:.3f}, {hi:.3f}]"


def fmt_mib_delta(kb) -> str:
    if kb is None or not np.isfinite(kb):
        return "-"
    return f"{kb / 1024.0:+.1f}"


def severity_order(pairs: pd.DataFrame) -> np.ndarray:
    """Row order: worst verdict (over latency, memory, correctness) first, stable."""
    if not len(pairs):
        return np.empty(0, dtype=np.int64)
    score = np.full(len(pairs), len(SEVERITY), dtype=np.int64)
    for a in ("latency", "memory", "correctness"):
        score = np.minimum(score, pairs[a].map(severity_rank).to_numpy())
    return np.argsort(score, kind="stable")


def split_key(res) -> tuple[dict, list[str]]:
    """Key columns constant over all pairs (shown once) and the varying ones (table columns)."""
    const, vary = {}, []
    for c in res.key:
        vals = pd.unique(res.pairs[c].astype(object)) if len(res.pairs) else []
        if len(vals) == 1:
            const[c] = vals[0]
        else:
            vary.append(c)
    return const, vary


def summary_line(res) -> str:
    parts = []
    for aspect, counts in res.counts().items():
        if aspect == "missing":
            parts.append(f"missing: {counts['pairs']}")
            continue
        order = sorted(counts, key=severity_rank)
        parts.append(f"{aspect}: " + (", ".join(f"{counts[v]} {v}" for v in order) or "-"))
    return " | ".join(parts)


def display_frame(res, max_rows: int | None = None) -> tuple[pd.DataFrame, dict, int]:
    """The table shown in terminal/Markdown: (frame, constant key values, rows left out)."""
    const, vary = split_key(res)
    p = res.pairs.iloc[severity_order(res.pairs)] if len(res.pairs) else res.pairs
    left_out = 0
    if max_rows is not None and len(p) > max_rows:
        left_out = len(p) - max_rows
        p = p.iloc[:max_rows]
    show = pd.DataFrame({c: p[c].astype(object).map(lambda v: "-" if _num(v) is None else str(v))
                         for c in vary})
    show[f"{res.base} ms"] = [fmt_ms(v) for v in p["median_base"]]
    show[f"{res.head} ms"] = [fmt_ms(v) for v in p["median_head"]]
    show["ratio"] = [fmt_ratio(v) for v in p["ratio"]]
    show[f"{100 * res.thresholds.ci_level:g}% CI"] = [
        ("~" if m == "normal" else "") + fmt_ci(lo, hi) if np.isfinite(lo) else "-"
        for lo, hi, m in zip(p["ci_low"], p["ci_high"], p["ci_method"])]
    show["p"] = [fmt_p(ps if r >= 1 else pf) if np.isfinite(r) else "-"
                 for ps, pf, r in zip(p["p_slower"], p["p_faster"], p["ratio"])]
    show["latency"] = list(p["latency"])
    show["steady MiB Δ"] = [fmt_mib_delta(v) for v in p["rss_steady_delta_kb"]]
    show["memory"] = list(p["memory"])
    show["correctness"] = list(p["correctness"])
    if res.dimension == "precision":
        # accuracy beside speed: the head's errors against the fp32 reference
        h = res.head
        def acc(values, digits=3):  # NaN: no reference (or no classifier output) -> "-"
            return ["-" if isinstance(v, float) and math.isnan(v) else fmt_g(v, digits)
                    for v in values]
        show[f"{h} cosine"] = acc(p["cosine_head"], 6)
        show[f"{h} max abs"] = acc(p["max_abs_err_head"])
        show[f"{h} top-1"] = acc(p["top1_head"])
    notes = []
    for ln, cn, ph in zip(p["latency_note"], p["correctness_note"],
                          zip(*[p[f"rss_{x}"] for x in PHASES])):
        bits = [b for b in (ln, cn) if b]
        bits += [f"{x} {v}" for x, v in zip(PHASES, ph) if v in ("larger", "smaller")]
        notes.append("; ".join(bits))
    show["note"] = notes
    return show.reset_index(drop=True), const, left_out


def _text_table(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    cells = [[str(v) for v in frame[c]] for c in cols]
    widths = [max([len(c)] + [len(v) for v in col]) for c, col in zip(cols, cells)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for i in range(len(frame)):
        lines.append("  ".join(col[i].ljust(w) for col, w in zip(cells, widths)).rstrip())
    return "\n".join(lines)


def _header(res, const: dict) -> list[str]:
    held = " ".join(f"{k}={v}" for k, v in const.items())
    return [f"compare {res.dimension}: {res.base} (base) → {res.head} (head)",
            f"held equal: {held}" if held else "held equal: (varies, see columns)",
            summary_line(res)]


def to_table(res, max_rows: int | None = None) -> str:
    show, const, left_out = display_frame(res, max_rows)
    out = _header(res, const) + [""]
    out.append(_text_table(show) if len(show) else
               "(no matched pairs: no configuration has measured rows on both sides)")
    if left_out:
        out.append(f"... {left_out} more pair(s) not shown")
    if len(res.missing):
        out += ["", f"missing on one side ({len(res.missing)}):",
                _text_table(missing_frame(res))]
    return "\n".join(out)


def missing_frame(res) -> pd.DataFrame:
    m = res.missing
    present = [c for c in res.key if c in m.columns]
    cols = [c for c in present if m[c].astype(object).nunique(dropna=False) > 1] or present[:1]
    show = pd.DataFrame({c: m[c].astype(object).map(lambda v: "-" if _num(v) is None else str(v))
                         for c in cols})
    show[f"base {res.base}"] = m["base"].to_numpy()
    show[f"head {res.head}"] = m["head"].to_numpy()
    return show


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _md_table(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(_md_escape(c) for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_md_escape(v) for v in row) + " |")
    return "\n".join(lines)


def to_markdown(res, max_rows: int | None = None) -> str:
    show, const, left_out = display_frame(res, max_rows)
    title, held, summary = _header(res, const)
    out = [f"## {_md_escape(title)}", "", f"{_md_escape(held)}", "", f"**{_md_escape(summary)}**",
           ""]
    out.append(_md_table(show) if len(show) else "_no matched pairs_")
    if left_out:
        out.append(f"\n_{left_out} more pair(s) not shown_")
    if len(res.missing):
        out += ["", f"### Missing on one side ({len(res.missing)})", "",
                _md_table(missing_frame(res))]
    out += ["", f"_{legend(res.thresholds)}_"]
    return "\n".join(out) + "\n"


def legend(th) -> str:
    """The rules `th` (Thresholds) applied, in one paragraph of plain text: what every table
    of a comparison (Markdown, HTML) prints under it."""
    return (f"slower/faster: one-sided Mann–Whitney p < {th.alpha:g}, ratio of medians ≥ "
            f"{th.min_ratio:g} (≤ 1/{th.min_ratio:g}) and the {100 * th.ci_level:g}% "
            f"hierarchical bootstrap CI beyond {1 + th.ci_margin:g} (1/{1 + th.ci_margin:g}); "
            f"CI marked ~: normal approximation from the process-level spread (pairs with > 50 "
            f"processes per side). Unstable: {th.cv_kind} CV > {100 * th.max_cv:g}%, a governor "
            f"change, a temperature rise > {th.temp_rise_c:g} °C, throttling, CPU contention > "
            f"{100 * th.max_contention:g}%, or (threads > 1) the core-to-core latency changed by "
            f"more than ×{th.max_core_latency_change:g}. Insufficient: fewer than "
            f"{th.min_samples} samples or {th.min_processes} processes a side. Memory, per "
            f"phase: larger/smaller when the sides do not overlap and the median moved by more "
            f"than max({th.rss_abs_kb / 1024:g} MiB, {100 * th.rss_rel:g}%, the larger "
            f"within-side range); insufficient under {th.rss_min_processes} processes a side "
            f"or where such a change was seen under CPU contention.")


def to_dict(res, gate=None) -> dict:
    """The JSON document of a comparison; `gate` (harness.compare.gate.Gate) adds the CI
    gate's result and reasons under "gate"."""
    pairs = []
    p = res.pairs
    for i in range(len(p)):
        r = p.iloc[i]
        item = {"key": {c: _num(r[c]) for c in res.key}}
        item["latency"] = {
            "verdict": r["latency"], "ratio": _num(r["ratio"]),
            "ci": [_num(r["ci_low"]), _num(r["ci_high"])], "ci_method": r["ci_method"],
            "resamples": _num(r["resamples"]),
            "p_slower": _num(r["p_slower"]), "p_faster": _num(r["p_faster"]),
            "base": {"n": _num(r["n_base"]), "rows": _num(r["rows_base"]),
                     "median_ms": _num(r["median_base"]), "p10_ms": _num(r["p10_base"]),
                     "p90_ms": _num(r["p90_base"]), "cv": _num(r["cv_base"])},
            "head": {"n": _num(r["n_head"]), "rows": _num(r["rows_head"]),
                     "median_ms": _num(r["median_head"]), "p10_ms": _num(r["p10_head"]),
                     "p90_ms": _num(r["p90_head"]), "cv": _num(r["cv_head"])},
            "note": r["latency_note"],
        }
        item["memory"] = {"verdict": r["memory"]}
        for ph in PHASES:
            item["memory"][ph] = {"verdict": r[f"rss_{ph}"],
                                  "base_peak_kb": _num(r[f"rss_{ph}_base"]),
                                  "head_peak_kb": _num(r[f"rss_{ph}_head"]),
                                  "delta_kb": _num(r[f"rss_{ph}_delta_kb"])}
        item["correctness"] = {
            "verdict": r["correctness"], "note": r["correctness_note"],
            **{side: {"rel_err": _num(r[f"rel_err_{side}"]), "cosine": _num(r[f"cosine_{side}"]),
                      "max_abs_err": _num(r.get(f"max_abs_err_{side}")),
                      "top1_agree": _num(r.get(f"top1_{side}")),
                      "nan_inf": _num(r[f"nan_inf_{side}"])} for side in ("base", "head")},
        }
        pairs.append(item)
    missing = [{"key": {c: _num(r[c]) for c in res.key if c in res.missing.columns},
                "base": r["base"], "head": r["head"], "missing_on": r["missing_on"]}
               for _, r in res.missing.iterrows()]
    return {"schema_version": SCHEMA_VERSION,
            "dimension": res.dimension, "base": res.base, "head": res.head, "key": res.key,
            "thresholds": res.thresholds.as_dict(), "counts": res.counts(),
            "info": {k: _num(v) for k, v in res.info.items()},
            "pairs": pairs, "missing": missing,
            **({"gate": gate.as_dict()} if gate is not None else {})}


def to_json(res, indent: int | None = 2, gate=None) -> str:
    return json.dumps(to_dict(res, gate), indent=indent, ensure_ascii=False, default=_num)


# -- history ---------------------------------------------------------------------------------

HISTORY_FORMATS = ("table", "markdown", "json")


def _history_frame(hist: pd.DataFrame, show_all: bool) -> pd.DataFrame:
    from .pairing import SERIES_KEY
    key = hist.attrs.get("key", list(SERIES_KEY))
    rows = []
    groups = hist.groupby([hist[c].astype(object).fillna("-") for c in key], sort=True,
                          dropna=False)
    for kv, g in groups:
        g = g.sort_values("step")
        cps = g[g["change_point"].astype(bool)]
        if cps.empty and not show_all:
            continue
        kv = kv if isinstance(kv, tuple) else (kv,)
        desc = "; ".join(f"{r.run_id} ({r.engine_version}) {100 * r.shift:+.1f}%"
                         for r in cps.itertuples()) or "-"
        rows.append({**{c: str(v) for c, v in zip(key, kv)}, "runs": len(g),
                     "first": f"{g['value'].iloc[0]:.4g}", "last": f"{g['value'].iloc[-1]:.4g}",
                     "change points": desc})
    frame = pd.DataFrame(rows)
    if len(frame):  # drop key columns that are the same everywhere
        frame = frame[[c for c in frame.columns if c not in key or frame[c].nunique() > 1]
                      or list(frame.columns)]
    return frame


def render_history(hist: pd.DataFrame, metric: str, tag: str | None = None,
                   fmt: str = "table", show_all: bool = False) -> str:
    """A history (from compare.history.history) as text: `fmt` "table" or "markdown" lists the
    series with change points (every series with `show_all`), "json" every step as records."""
    from .pairing import SERIES_KEY
    if fmt == "json":
        out = hist.copy()
        out["started_at"] = out["started_at"].astype(str)
        out["schema_version"] = SCHEMA_VERSION  # per record: the JSON is a list of records
        return out.to_json(orient="records", indent=2)
    frame = _history_frame(hist, show_all)
    hkey = hist.attrs.get("key", list(SERIES_KEY))
    n_series = (hist.groupby([hist[c].astype(object).fillna("-") for c in hkey]).ngroups
                if len(hist) else 0)
    n_cp = int(hist["change_point"].astype(bool).sum()) if len(hist) else 0
    head = (f"history of {metric}" + (f" (tag {tag})" if tag else "")
            + f": {n_series} series, {n_cp} change point(s)")
    if fmt == "markdown":
        return f"## {head}\n\n" + (_md_table(frame) if len(frame) else "_none_") + "\n"
    return head + "\n\n" + (_text_table(frame) if len(frame) else "(none)")
