"""The rows a comparison or a history reads from a dataset: only the columns they use, and for
a comparison only the rows of its two sides."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..results import DatasetError, load
from .pairing import SERIES_KEY, dimension_column, key_columns, source_prefix


def compare_columns(dimension: str) -> list[str]:
    """The dataset columns `compare` needs when pairing along `dimension`."""
    col = dimension_column(dimension)
    cols = set(key_columns(dimension)) | {col, "engine", "status", "latency_ms",
                                          "engine_version", "engine_version_requested",
                                          "engine_build", "engine_source", "calibration",
                                          "backend_requested", "precision_requested",
                                          "governor_start", "governor_end", "temp_max_c_start",
                                          "temp_max_c_end", "cpu_contention", "core_to_core_ns_start",
                                          "core_to_core_ns_end", "threads", "notes", "extra_json",
                                          "out_sha256",
                                          "out_nan", "out_inf", "out_rel_err", "out_cosine",
                                          "out_max_abs_err", "out_top1_agree",
                                          "has_reference", "median_ms", "model_weight_bytes",
                                          "model_activation_lower_bound_bytes"}
    cols |= {f"rss_{ph}_peak_kb" for ph in ("load", "first", "steady")}
    return sorted(cols)


def load_sides(data: str | Path, dimension: str, base: str, head: str,
               filters: dict[str, list[str]]) -> pd.DataFrame:
    """The rows of either side (`dimension` == base or head) that match `filters`
    (column -> accepted values). For engine_version, backend and precision also the rows that
    failed before the effective value was known (their *_requested column holds the value).

    Raises DatasetError when the dataset is missing or no row has either value."""
    col = dimension_column(dimension)
    where = pc.field(col).isin([base, head])
    if col in ("engine_version", "backend", "precision"):
        where = where | pc.field(f"{col}_requested").isin([base, head])
    prefixes = [p for p in map(source_prefix, (base, head)) if p]
    if col == "engine_version" and prefixes:
        for v in prefixes:  # a source build named by its commit or tarball digest
            for kind in ("git:", "sha256:"):
                source = pc.field("engine_source").cast(pa.string())  # stored dictionary-coded
                where = where | pc.starts_with(source, kind + v)
    try:
        df = load(data, columns=compare_columns(dimension), where=where, **filters)
    except DatasetError as e:
        if "no rows match" not in str(e):
            raise
        extra = ", ".join(f"{k}={v}" for k, v in filters.items())
        raise DatasetError(str(data), f"no rows with {col} {base!r} or {head!r}"
                           + (f" and {extra}" if extra else "")) from None
    have = set(df[col].dropna().astype(str))
    if col in ("engine_version", "backend", "precision"):
        have |= set(df[f"{col}_requested"].dropna().astype(str))
    if col == "engine_version" and "engine_source" in df:
        ids = [str(x).split(":", 1)[-1] for x in df["engine_source"].dropna()]
        have |= {v for v in (base, head)
                 if source_prefix(v) and any(i.startswith(source_prefix(v)) for i in ids)}
    for side, value in (("base", base), ("head", head)):
        if value not in have:  # name every value the dataset holds, not the other side's
            values = sorted(map(str, load(data, columns=[col])[col].dropna().unique()))
            shown = ", ".join(values[:12]) + (" …" if len(values) > 12 else "")
            raise DatasetError(f"{side} {col}={value!r}", "has no rows in the data",
                               f"one of: {shown or 'nothing'}")
    return df


def load_history_rows(data: str | Path, metric: str,
                      filters: dict[str, list[str]]) -> pd.DataFrame:
    """The rows `history` needs for `metric` (a numeric dataset column, see
    harness.results.ALL_COLUMNS), matching `filters`.

    Raises DatasetError for a missing dataset or no matching rows."""
    cols = sorted(set(SERIES_KEY) | {metric, "run_id", "sweep_tag", "started_at",
                                     "engine_version", "engine_version_requested",
                                     "backend_requested", "precision_requested", "status"})
    return load(data, columns=cols, **filters)
