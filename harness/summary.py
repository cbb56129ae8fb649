"""The end-of-run table: one line per configuration as requested (its processes pooled)."""

from __future__ import annotations

import pandas as pd

from .stats import quantile
from .status import worst
from .terminal import terminal_safe

# One line per requested configuration: an fp16 request that ran in fp32 stays its own line,
# shown as "fp16>fp32", never pooled with the fp32 request.
KEYS = ["model", "engine", "engine_version", "backend_requested", "precision_requested",
        "threads", "cores_requested"]


def _ran_as(requested: str, ran: pd.Series) -> str:
    """'fp16' when it ran as requested, 'fp16>fp32' when not, 'fp16?' when unknown."""
    seen = sorted({str(v) for v in ran.dropna()})
    if not seen:
        return f"{requested}?"
    return requested if seen == [requested] else f"{requested}>{'/'.join(seen)}"


def summarize(rows: list[dict]) -> pd.DataFrame:
    """One row per configuration: processes (n), median and p90 latency (ms) over every
    sample, steady-phase peak RSS (MiB, median over processes), the model's theory (weights +
    activation lower bound, MiB), overhead, statuses and the worst verdict."""
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    for k in KEYS + ["backend", "precision", "engine_version_requested", "cpu_mask",
                     "throttle_ratio"]:
        if k not in df:
            df[k] = None
    df["cores_requested"] = df["cores_requested"].fillna("all")
    df["engine_version"] = df["engine_version"].fillna(df["engine_version_requested"])
    if "engine_build" in df and df["engine_build"].notna().any():
        # a source build is known by its label; the engine's own version string beside it
        built = df["engine_build"].notna()
        df.loc[built, "engine_version"] = [
            b if v in (b, None) or v != v else f"{b} ({v})"
            for b, v in zip(df.loc[built, "engine_build"], df.loc[built, "engine_version"])]
    out = []
    for key, g in df.groupby(KEYS, dropna=False, sort=True):
        samples = [s for lst in g.get("latency_ms", []) if isinstance(lst, list) for s in lst]
        steady = g["rss_steady_peak_kb"].dropna() if "rss_steady_peak_kb" in g else []
        statuses = sorted(set(g["status"]))
        theory = None
        if "model_weight_bytes" in g and g["model_weight_bytes"].notna().any():
            theory = (g["model_weight_bytes"].dropna().iloc[0]
                      + g["model_activation_lower_bound_bytes"].dropna().iloc[0]) / 2**20
        base = g["rss_process_start_peak_kb"].dropna() if "rss_process_start_peak_kb" in g else []
        req = dict(zip(KEYS, key))
        out.append({
            "model": req["model"], "engine": req["engine"],
            "engine_version": req["engine_version"],
            "backend": _ran_as(str(req["backend_requested"]), g["backend"]),
            "precision": _ran_as(str(req["precision_requested"]), g["precision"]),
            "threads": req["threads"],
            "cores": _cores(req["cores_requested"], g["cpu_mask"]),
            "n": len(g),
            "median_ms": quantile(samples, 0.5),
            "p90_ms": quantile(samples, 0.9),
            "steady_peak_mib": (steady.median() / 1024.0) if len(steady) else None,
            "theory_mib": theory,
            # what the engine added over the bare interpreter, against what the model needs
            "mem_overhead": ((steady.median() - base.median()) / 1024.0 / theory
                             if theory and len(steady) and len(base) else None),
            "status": ",".join(statuses),
            "verdict": worst(g["verdict"]),
            "throttle": g["throttle_ratio"].dropna().median() if g["throttle_ratio"].notna().any()
            else None,
        })
    return pd.DataFrame(out)


def _cores(requested: str, masks: pd.Series) -> str:
    """'all', or the request and the mask the agent read back: 'big=4-7', '0=0'."""
    seen = sorted({str(m) for m in masks.dropna()})
    if requested == "all":
        return "all"
    return f"{requested}={'/'.join(seen) or '?'}"


def render(df: pd.DataFrame) -> str:
    if df.empty:
        return "(no rows)"
    show = df.copy()
    # columns that say nothing unless some configuration is pinned or sustained
    if (show["cores"] == "all").all():
        show = show.drop(columns=["cores"])
    if show["throttle"].isna().all():
        show = show.drop(columns=["throttle"])
    else:
        show["throttle"] = show["throttle"].map(lambda v: f"{v:.3f}" if pd.notna(v) else "-")
    for c in show.columns:  # escaped before the widths are measured, so columns line up
        if show[c].dtype == object:
            show[c] = show[c].map(lambda v: terminal_safe(v) if isinstance(v, str) else v)
    for c in ("median_ms", "p90_ms"):
        show[c] = show[c].map(lambda v: f"{v:.2f}" if pd.notna(v) else "-")
    for c in ("steady_peak_mib", "theory_mib"):
        show[c] = show[c].map(lambda v: f"{v:.1f}" if pd.notna(v) else "-")
    show["mem_overhead"] = show["mem_overhead"].map(lambda v: f"{v:.1f}x" if pd.notna(v) else "-")
    show = show.rename(columns={"engine_version": "version", "n": "procs",
                                "steady_peak_mib": "steady_MiB",
                                "theory_mib": "theory_MiB", "mem_overhead": "overhead"})
    return show.to_string(index=False)
