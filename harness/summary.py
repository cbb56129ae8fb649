"""The end-of-run table: one line per configuration (processes pooled)."""

from __future__ import annotations

import pandas as pd

from .stats import quantile
from .status import worst

KEYS = ["model", "engine", "engine_version", "backend", "precision", "threads"]


def summarize(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    for k in KEYS:
        if k not in df:
            df[k] = None
    df["engine_version"] = df["engine_version"].fillna(df["engine_version_requested"])
    df["backend"] = df["backend"].fillna(df["backend_requested"] + "?")
    df["precision"] = df["precision"].fillna(df["precision_requested"] + "?")
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
        out.append({
            **dict(zip(KEYS, key)),
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
        })
    return pd.DataFrame(out)


def render(df: pd.DataFrame) -> str:
    if df.empty:
        return "(no rows)"
    show = df.copy()
    for c in ("median_ms", "p90_ms"):
        show[c] = show[c].map(lambda v: f"{v:.2f}" if pd.notna(v) else "-")
    for c in ("steady_peak_mib", "theory_mib"):
        show[c] = show[c].map(lambda v: f"{v:.1f}" if pd.notna(v) else "-")
    show["mem_overhead"] = show["mem_overhead"].map(lambda v: f"{v:.1f}x" if pd.notna(v) else "-")
    show = show.rename(columns={"engine_version": "version", "steady_peak_mib": "steady_MiB",
                                "theory_mib": "theory_MiB", "mem_overhead": "overhead"})
    return show.to_string(index=False)
