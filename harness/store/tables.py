"""Side tables beside the measurement dataset, under names starting with '_' so dataset readers
skip them: `_diagnoses/` (one Parquet file per diagnosis), `_transfers/` (one JSON-lines file
per run), `_sustained/` (one Parquet file per run: the time series of sustained runs),
`_models/models.parquet` (written by harness.analysis.models_table)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from .atomic import atomic_write_text
from .partitions import partition_path, write_parquet
from .schema import SUSTAINED_SCHEMA, diagnosis_schema

DIAGNOSES_DIR = "_diagnoses"
TRANSFERS_DIR = "_transfers"
MODELS_DIR = "_models"
SUSTAINED_DIR = "_sustained"
# the row fields that key a sustained series and describe its configuration
SUSTAINED_KEY = ("run_id", "host", "series", "process")


def write_diagnosis_rows(out_dir: str | Path, diagnosis_id: str, created_at: float,
                         rows: list[dict]) -> Path:
    """OUT/_diagnoses/date=YYYY-MM-DD/part-<diagnosis_id>.parquet (date of `created_at`, epoch
    seconds), written atomically. `rows` have the keys of schema.diagnosis_schema(); their
    `created_at` is epoch seconds."""
    schema = diagnosis_schema()
    cols = {}
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if f.name == "created_at":
            vals = [datetime.fromtimestamp(v, timezone.utc) for v in vals]
        elif pa.types.is_floating(f.type):
            vals = [None if v is None else float(v) for v in vals]
        cols[f.name] = pa.array(vals, type=f.type)
    date = datetime.fromtimestamp(created_at, timezone.utc).strftime("%Y-%m-%d")
    path = partition_path(Path(out_dir) / DIAGNOSES_DIR, diagnosis_id, {"date": date})
    return write_parquet(path, pa.table(cols, schema=schema))


def write_transfers(out_dir: str | Path, run_id: str, transfers: list[dict]) -> Path:
    """OUT/_transfers/RUNID.jsonl, one JSON object per line, written atomically."""
    path = Path(out_dir) / TRANSFERS_DIR / f"{run_id}.jsonl"
    return atomic_write_text(path, "".join(json.dumps(t) + "\n" for t in transfers))


def sustained_path(out_dir: str | Path, run_id: str) -> Path:
    return Path(out_dir) / SUSTAINED_DIR / f"{run_id}.parquet"


def sustained_records(row: dict, windows: list[dict]) -> list[dict]:
    """The side-table rows of one sustained run: each window (t_s, latency_ms, iterations,
    temp_max_c, freq_cur_mhz_min/max) with the measurement row's key and configuration."""
    fixed = {f.name: row.get(f.name) for f in SUSTAINED_SCHEMA if f.name in row}
    fixed["engine_version"] = row.get("engine_version") or row.get("engine_version_requested")
    return [{**fixed, **{k: w.get(k) for k in ("t_s", "latency_ms", "iterations", "temp_max_c",
                                                "freq_cur_mhz_min", "freq_cur_mhz_max")}}
            for w in windows]


def read_sustained(out_dir: str | Path, run_id: str | None = None):
    """The sustained side table of run ``run_id`` (None: every run) as a pandas DataFrame;
    empty (with the columns) when there is none."""
    import pandas as pd
    import pyarrow.parquet as pq
    root = Path(out_dir) / SUSTAINED_DIR
    paths = [sustained_path(out_dir, run_id)] if run_id else sorted(root.glob("*.parquet"))
    tables = [pq.read_table(p, schema=SUSTAINED_SCHEMA) for p in paths if p.is_file()]
    if not tables:
        return SUSTAINED_SCHEMA.empty_table().to_pandas()
    return pa.concat_tables(tables).to_pandas()


class SustainedWriter:
    """The sustained side table of one run, rewritten atomically as each series arrives (a
    sustained run lasts minutes, so the rewrite costs nothing beside it). A resumed run keeps
    the series already in its file; a series measured again replaces its old windows."""

    def __init__(self, out_dir: str | Path, run_id: str):
        self.path = sustained_path(out_dir, run_id)
        self.records: list[dict] = []
        if self.path.is_file():
            self.records = read_sustained(out_dir, run_id).to_dict("records")

    def add(self, row: dict, windows: list[dict]) -> Path:
        """Store ``windows`` (the agent's `sustained` list) keyed by ``row``; the file."""
        key = tuple(row.get(k) for k in SUSTAINED_KEY)
        self.records = [r for r in self.records
                        if tuple(r.get(k) for k in SUSTAINED_KEY) != key]
        self.records += sustained_records(row, windows)
        cols = {}
        for f in SUSTAINED_SCHEMA:
            vals = [r.get(f.name) for r in self.records]
            if pa.types.is_floating(f.type):
                vals = [None if v is None else float(v) for v in vals]
            cols[f.name] = pa.array(vals, type=f.type)
        return write_parquet(self.path, pa.table(cols, schema=SUSTAINED_SCHEMA))


__all__ = ["DIAGNOSES_DIR", "MODELS_DIR", "SUSTAINED_DIR", "SustainedWriter", "TRANSFERS_DIR",
           "read_sustained", "sustained_path", "write_diagnosis_rows", "write_transfers"]
