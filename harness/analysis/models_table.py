"""The Parquet "models" table: one row per (model_sha256, input_shape), merged atomically."""

from __future__ import annotations

import fcntl
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..store.partitions import write_parquet
from ..store.schema import MODEL_SCHEMA, file_version
from .errors import AnalysisError
from .report import MODELS_COLUMNS

KEY = ["model_sha256", "input_shape"]
FILENAME = "models.parquet"


def write_models_table(rows: Iterable[Mapping[str, Any]], dir: str | Path) -> Path:
    """Merge `rows` into dir/models.parquet; a new row replaces an old one with the same key.

    Written atomically (harness.store.atomic), so readers never see a half-written file,
    with `harness.schema_version` metadata; an existing file newer than this harness reads is
    refused (InputError) rather than merged. A lock file serialises concurrent writers on this
    host so none of their rows are lost.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    out_dir = Path(dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / FILENAME
    new = pd.DataFrame([dict(r) for r in rows])
    missing = [c for c in MODELS_COLUMNS if c not in new.columns] if len(new) else []
    if missing:
        raise AnalysisError(str(target), f"rows lack column(s) {', '.join(missing)}", "rows from models_table_row()")
    with open(out_dir / (FILENAME + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        frames = []
        if target.exists():
            try:
                file_version(pq.read_schema(target).metadata, str(target))
                frames.append(pd.read_parquet(target))
            except InputError:
                raise  # newer than this harness: merging would drop its columns
            except Exception as exc:
                raise AnalysisError(str(target), f"exists but cannot be read ({type(exc).__name__})",
                                    "a Parquet file written by this tool") from exc
        frames.append(new)
        merged = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
            else pd.DataFrame(columns=list(MODELS_COLUMNS))
        merged = merged.drop_duplicates(subset=KEY, keep="last").sort_values(KEY).reset_index(drop=True)
        write_parquet(target, _typed_table(merged))
    return target


def _typed_table(frame):
    """The merged frame as Arrow with the store's column types (extra columns inferred)."""
    import pyarrow as pa
    fields = [MODEL_SCHEMA.field(c) if c in MODEL_SCHEMA.names
              else pa.Schema.from_pandas(frame[[c]], preserve_index=False).field(c)
              for c in frame.columns]
    return pa.Table.from_pandas(frame, schema=pa.schema(fields), preserve_index=False)
