"""The Parquet "models" table: one row per (model_sha256, input_shape), merged atomically."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import AnalysisError
from .report import MODELS_COLUMNS

KEY = ["model_sha256", "input_shape"]
FILENAME = "models.parquet"


def write_models_table(rows: Iterable[Mapping[str, Any]], dir: str | Path) -> Path:
    """Merge `rows` into dir/models.parquet; a new row replaces an old one with the same key.

    Written to a temp file in the same directory then os.replace'd, so readers never see a
    half-written file; a lock file serialises concurrent writers on this host so none of
    their rows are lost.
    """
    import pandas as pd

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
                frames.append(pd.read_parquet(target))
            except Exception as exc:
                raise AnalysisError(str(target), f"exists but cannot be read ({type(exc).__name__})",
                                    "a Parquet file written by this tool") from exc
        frames.append(new)
        merged = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
            else pd.DataFrame(columns=list(MODELS_COLUMNS))
        merged = merged.drop_duplicates(subset=KEY, keep="last").sort_values(KEY).reset_index(drop=True)
        fd, tmp = tempfile.mkstemp(prefix=".models.", suffix=".parquet.tmp", dir=out_dir)
        os.close(fd)
        try:
            merged.to_parquet(tmp, index=False)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target
