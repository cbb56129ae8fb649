"""Synthetic measurement rows with the real schema (tests, benchmarks, demos).

`rows_for(...)` makes the rows of one configuration: `processes` processes of `samples` timed
iterations each, lognormal noise around `median_ms` with a per-process offset (processes on a
real device differ: placement, frequency, cache state), per-phase peak RSS and output metrics.
`write_dataset(rows, root)` writes them the way RunWriter does:
root/date=YYYY-MM-DD/engine=NAME/part-RUNID.parquet.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..store.partitions import write_partitions
from ..store.schema import COLUMNS, to_table
from ..rows import latency_stats
from ..verdict import output_verdict
from ..status import MEASURED

T0 = 1_780_000_000.0  # 2026-05-28, a fixed epoch for reproducible rows
# max |reference| of the synthetic outputs: a row given only out_rel_err gets the max abs
# error it implies (rel_err x REF_SCALE), so the two never contradict each other
REF_SCALE = 1.0

DEFAULTS = {
    "run_id": "20260528T000000Z-000001", "sweep_kind": "suite", "sweep_tag": None,
    "suite": "synthetic", "host": "local", "device_id": "dev0", "hostname": "vm",
    "arch": "x86_64", "cpu_model": "Synthetic CPU", "cores": 4, "mem_total_kb": 16_000_000,
    "kernel": "6.1", "os": "Debian GNU/Linux 12", "python_version": "3.11.7",
    "harness_version": "0.1.0", "model": "m", "input_shape": "x:1x3x224x224",
    "engine": "mnn", "engine_version": "3.4.0", "engine_version_requested": "3.4.0",
    "backend": "cpu", "backend_requested": "cpu", "precision": "fp32",
    "precision_requested": "fp32", "threads": 1, "cores_requested": "all", "status": "ok",
    "phase": "done",
    "warmup_iterations": 2, "min_iterations": 30, "min_seconds": 1.0,
    "out_nan": 0, "out_inf": 0, "out_rel_err": 1e-5, "out_cosine": 0.9999999,
    "out_max_abs_err": 1e-5, "has_reference": True, "out_deterministic": True,
    "out_sha256": "a" * 64,
}


def rows_for(*, processes: int = 5, samples: int = 40, median_ms: float = 10.0,
             sigma: float = 0.03, process_sigma: float = 0.01, rng=None, t0: float = T0,
             rss_kb: tuple[float, float, float] = (50_000, 90_000, 100_000), rss_jitter_kb=200.0,
             bimodal: tuple[float, float] | None = None, **fields) -> list[dict]:
    """Rows of one configuration. `bimodal=(fraction, factor)` moves that fraction of samples
    by `factor` (a second mode); `fields` override any column (model, engine_version, ...).
    A field given as a list is taken per process (e.g. out_sha256=[...])."""
    rng = rng if rng is not None else np.random.default_rng(0)
    rows = []
    for p in range(processes):
        offset = float(np.exp(rng.normal(0.0, process_sigma))) if process_sigma else 1.0
        lat = median_ms * offset * np.exp(rng.normal(0.0, sigma, samples))
        if bimodal is not None:
            frac, factor = bimodal
            lat[rng.random(samples) < frac] *= factor
        row = dict(DEFAULTS)
        row.update({k: (v[p] if isinstance(v, list) else v) for k, v in fields.items()})
        if "out_max_abs_err" not in fields and row.get("out_rel_err") is not None:
            row["out_max_abs_err"] = float(row["out_rel_err"]) * REF_SCALE
        started = t0 + 10.0 * p
        row.update(process=p, started_at=started, ended_at=started + 5.0,
                   date=datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d"))
        if row.get("status") in MEASURED:
            row["latency_ms"] = [float(x) for x in lat]
            row.update(latency_stats(row["latency_ms"]))
            row["iterations"] = samples
            for ph, kb in zip(("load", "first", "steady"), rss_kb):
                if f"rss_{ph}_peak_kb" not in fields:
                    row[f"rss_{ph}_peak_kb"] = int(kb + rng.normal(0.0, rss_jitter_kb))
        else:
            for k in ("latency_ms", "out_sha256", "out_rel_err", "out_cosine", "out_max_abs_err",
                      "out_nan", "out_inf", "has_reference"):
                if k not in fields:
                    row[k] = None
        row["verdict"] = output_verdict(row)
        rows.append(row)
    return rows


def write_dataset(rows: list[dict], root: str | Path) -> list[Path]:
    """Write rows like RunWriter: one Parquet file per (date, engine, run_id)."""
    runs: dict[str, list[dict]] = {}
    for r in rows:
        runs.setdefault(r["run_id"], []).append(r)
    return sorted(p for run_id, rs in runs.items() for p in write_partitions(root, run_id, rs))


def frame(rows: list[dict]) -> pd.DataFrame:
    """The DataFrame `results.load()` would return for these rows, without the disk trip."""
    from ..store.read import DIMENSIONS, to_pandas
    table = to_table(rows)
    for p in ("date", "engine"):
        table = table.append_column(p, pa.array([r.get(p) for r in rows], type=pa.string()))
    for i, name in enumerate(table.column_names):
        if name in DIMENSIONS:
            table = table.set_column(i, name, table.column(i).dictionary_encode())
    return to_pandas(table)


__all__ = ["COLUMNS", "DEFAULTS", "frame", "rows_for", "write_dataset"]
