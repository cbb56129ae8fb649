"""For the `sweep` command: compare a run with the previous run of the same tag, write reports."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..results import DatasetError, load
from ..store.atomic import atomic_write_text
from .core import compare
from .result import CompareResult


def runs(data_dir, tag: str | None = None) -> pd.DataFrame:
    """Runs in the dataset (of `tag`; tag=None: all runs): run_id, sweep_tag, suite, started_at
    (earliest row), rows; ordered by started_at then run_id."""
    filters = {} if tag is None else {"sweep_tag": tag}
    df = load(data_dir, columns=["run_id", "sweep_tag", "suite", "started_at"], **filters)
    df = df.astype({"run_id": object, "sweep_tag": object, "suite": object})
    out = df.groupby("run_id", sort=False, dropna=False).agg(
        sweep_tag=("sweep_tag", "first"), suite=("suite", "first"),
        started_at=("started_at", "min"), rows=("suite", "size")).reset_index()
    return out.sort_values(["started_at", "run_id"], kind="stable").reset_index(drop=True)


def previous_run(data_dir, tag: str | None, run_id: str) -> str | None:
    """The run of the same tag (tag None: untagged runs of the same suite) that started last
    before `run_id`; None if there is none."""
    all_runs = runs(data_dir)
    me = all_runs[all_runs["run_id"] == run_id]
    if me.empty:
        raise DatasetError(f"run {run_id!r}", f"has no rows in {data_dir}")
    start = me["started_at"].iloc[0]
    if tag is None:
        same = all_runs[all_runs["sweep_tag"].isna() & (all_runs["suite"] == me["suite"].iloc[0])]
    else:
        same = all_runs[all_runs["sweep_tag"] == tag]
    before = same[(same["run_id"] != run_id) & ((same["started_at"] < start) | (
        (same["started_at"] == start) & (same["run_id"] < run_id)))]
    return None if before.empty else str(before["run_id"].iloc[-1])


def compare_with_previous(data_dir, tag: str | None, run_id: str,
                          **opts) -> CompareResult | None:
    """Compare run `run_id` (head) with the previous run of the same sweep tag (base), every
    configuration dimension held equal (dimension run_id). None when there is no previous run.
    `opts` are Thresholds overrides."""
    prev = previous_run(data_dir, tag, run_id)
    if prev is None:
        return None
    df = load(data_dir, run_id=[prev, run_id])
    res = compare(df, "run_id", prev, run_id, **opts)
    res.info["sweep_tag"] = tag
    return res


def write_report(result: CompareResult, path_without_ext, gate=None,
                 extra_html: str = "") -> dict[str, Path]:
    """Write <path>.html, <path>.md and <path>.json (with the gate's result and reasons when
    `gate` is given); returns {"html": path, ...}. ``extra_html``: sections appended to the
    HTML page's body (the sustained runs)."""
    base = Path(path_without_ext)
    base.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    page = result.to_html()
    if extra_html:
        at = page.rfind("</body>")
        page = page[:at] + extra_html + page[at:]
    for ext, text in (("html", page), ("md", result.to_markdown()),
                      ("json", result.to_json(gate=gate))):
        out[ext] = atomic_write_text(base.parent / f"{base.name}.{ext}", text)
    return out
