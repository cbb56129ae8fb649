"""The Parquet dataset: schema, atomic files, journal."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.store.schema import COLUMNS
from harness.store.writer import RunWriter, read_journal

pytestmark = pytest.mark.unit


def _row(i, engine="mnn"):
    return {"run_id": "r1", "date": "2026-01-02", "engine": engine, "model": f"m{i}",
            "status": "ok", "latency_ms": [1.0, 2.0, 3.0 + i], "threads": 1,
            "started_at": 1700000000.0 + i, "host": "local", "series": f"s{i}", "process": 0}


def test_partitioned_files_load_with_pandas(tmp_path):
    w = RunWriter(tmp_path, "r1")
    for i in range(3):
        w.add(_row(i))
    w.add(_row(9, engine="ncnn"))
    w.close()
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert files == ["date=2026-01-02/engine=mnn/part-r1.parquet",
                     "date=2026-01-02/engine=ncnn/part-r1.parquet"]
    df = pd.read_parquet(tmp_path)
    assert len(df) == 4
    assert list(df.sort_values("model")["latency_ms"].iloc[0]) == [1.0, 2.0, 3.0]
    assert {c for c, _ in COLUMNS} <= set(df.columns)
    assert str(df["engine"].dtype) == "category"
    # nothing but the data files and the journal: no temp files left behind
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]


def test_journal_survives_torn_last_line(tmp_path):
    w = RunWriter(tmp_path, "r2")
    w.add(_row(0))
    w.add(_row(1))
    w.journal.file.write(b'{"run_id": "r2", "mod')  # a crash mid-write
    w.journal.file.flush()
    rows = read_journal(tmp_path, "r2")
    assert [r["model"] for r in rows] == ["m0", "m1"]
