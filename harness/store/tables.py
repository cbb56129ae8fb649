"""Side tables beside the measurement dataset, under names starting with '_' so dataset readers
skip them: `_diagnoses/` (one Parquet file per diagnosis), `_profiles/` (one Parquet file per
profile run), `_transfers/` (one JSON-lines file per run), `_sustained/` (one Parquet file per
run: the time series of sustained runs), `_models/models.parquet` (written by
harness.analysis.models_table)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from .atomic import atomic_write_text
from .partitions import partition_path, write_parquet
from .schema import (SCHEMA_VERSION, SUSTAINED_SCHEMA, diagnosis_schema, file_version,
                     profile_schema)

DIAGNOSES_DIR = "_diagnoses"
PROFILES_DIR = "_profiles"
TRANSFERS_DIR = "_transfers"
MODELS_DIR = "_models"
SUSTAINED_DIR = "_sustained"
# the row fields that key a sustained series and describe its configuration
SUSTAINED_KEY = ("run_id", "host", "series", "process")


def _side_table(schema: pa.Schema, rows: list[dict]) -> pa.Table:
    """`rows` (created_at in epoch seconds) as a table of `schema`; a schema_version column
    is set to SCHEMA_VERSION."""
    cols = {}
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if f.name == "created_at":
            vals = [datetime.fromtimestamp(v, timezone.utc) for v in vals]
        elif f.name == "schema_version":
            vals = [SCHEMA_VERSION] * len(rows)
        elif pa.types.is_floating(f.type):
            vals = [None if v is None else float(v) for v in vals]
        cols[f.name] = pa.array(vals, type=f.type)
    return pa.table(cols, schema=schema)


def _dated(out_dir: str | Path, table_dir: str, part_id: str, created_at: float) -> Path:
    date = datetime.fromtimestamp(created_at, timezone.utc).strftime("%Y-%m-%d")
    return partition_path(Path(out_dir) / table_dir, part_id, {"date": date})


def write_diagnosis_rows(out_dir: str | Path, diagnosis_id: str, created_at: float,
                         rows: list[dict]) -> Path:
    """OUT/_diagnoses/date=YYYY-MM-DD/part-<diagnosis_id>.parquet (date of `created_at`, epoch
    seconds), written atomically. `rows` have the keys of schema.diagnosis_schema(); their
    `created_at` is epoch seconds."""
    return write_parquet(_dated(out_dir, DIAGNOSES_DIR, diagnosis_id, created_at),
                         _side_table(diagnosis_schema(), rows))


def write_profile_rows(out_dir: str | Path, profile_id: str, created_at: float,
                       rows: list[dict]) -> Path:
    """OUT/_profiles/date=YYYY-MM-DD/part-<profile_id>.parquet, one file per profile run,
    written atomically with schema_version (column and file metadata). `rows` have the keys
    of schema.profile_schema(); `created_at` is epoch seconds."""
    return write_parquet(_dated(out_dir, PROFILES_DIR, profile_id, created_at),
                         _side_table(profile_schema(), rows))


def read_profile_rows(path: str | Path) -> list[dict]:
    """The rows of one stored profile file (created_at as epoch seconds). Raises InputError
    for a file that is not a profile, or was written by a newer harness."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise InputError(str(path), f"cannot be read ({str(e).splitlines()[0]})",
                         "a file under _profiles") from None
    file_version(table.schema.metadata, str(path))
    missing = [n for n in ("profile_id", "level", "layer_type") if n not in table.column_names]
    if missing:
        raise InputError(str(path), f"is not a profile (no {missing[0]} column)",
                         "a file under _profiles")
    rows = table.to_pylist()
    for r in rows:
        if r.get("created_at") is not None:
            r["created_at"] = r["created_at"].timestamp()
    return rows


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


__all__ = ["DIAGNOSES_DIR", "MODELS_DIR", "PROFILES_DIR", "SUSTAINED_DIR", "SustainedWriter",
           "TRANSFERS_DIR", "read_profile_rows", "read_sustained", "sustained_path",
           "write_diagnosis_rows", "write_profile_rows", "write_transfers"]
