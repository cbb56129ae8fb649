"""Side tables beside the measurement dataset, under names starting with '_' so dataset readers
skip them: `_diagnoses/` (one Parquet file per diagnosis), `_transfers/` (one JSON-lines file
per run), `_models/models.parquet` (written by harness.analysis.models_table)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from .atomic import atomic_write_text
from .partitions import partition_path, write_parquet
from .schema import diagnosis_schema

DIAGNOSES_DIR = "_diagnoses"
TRANSFERS_DIR = "_transfers"
MODELS_DIR = "_models"


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


__all__ = ["DIAGNOSES_DIR", "MODELS_DIR", "TRANSFERS_DIR", "write_diagnosis_rows",
           "write_transfers"]
