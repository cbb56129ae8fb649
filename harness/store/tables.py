"""Side tables beside the measurement dataset, under names starting with '_' so dataset readers
skip them: `_diagnoses/` (one Parquet file per diagnosis), `_profiles/` (one Parquet file per
profile run), `_transfers/` (one JSON-lines file per run), `_models/models.parquet` (written by
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
from .schema import SCHEMA_VERSION, diagnosis_schema, file_version, profile_schema

DIAGNOSES_DIR = "_diagnoses"
PROFILES_DIR = "_profiles"
TRANSFERS_DIR = "_transfers"
MODELS_DIR = "_models"


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


__all__ = ["DIAGNOSES_DIR", "MODELS_DIR", "PROFILES_DIR", "TRANSFERS_DIR", "read_profile_rows",
           "write_diagnosis_rows", "write_profile_rows", "write_transfers"]
