"""Hive-partitioned Parquet files: `ROOT/date=YYYY-MM-DD/engine=NAME/part-RUNID.parquet`.

One file per run and partition, rewritten atomically with everything the run has so far, so a
reader always sees a whole file. Each file carries `harness.schema_version` in its metadata.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_write
from .schema import PARTITIONS, to_table, with_version


def partition_path(root: str | Path, part_id: str, partitions: dict[str, str]) -> Path:
    """ROOT/k1=v1/k2=v2/part-PART_ID.parquet, the partitions in the order given."""
    path = Path(root)
    for key, value in partitions.items():
        path = path / f"{key}={value}"
    return path / f"part-{part_id}.parquet"


def write_parquet(path: str | Path, table: pa.Table) -> Path:
    """Write `table` to `path` atomically (zstd), with `harness.schema_version` metadata."""
    table = table.replace_schema_metadata(with_version(table.schema).metadata)
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def write_partitions(root: str | Path, run_id: str, rows: list[dict]) -> list[Path]:
    """Write `rows` (each with `date` and `engine` keys) as one file per partition of run
    `run_id` under `root`, replacing the run's earlier files there. Returns the paths."""
    parts: dict[tuple[str, ...], list[dict]] = {}
    for r in rows:
        parts.setdefault(tuple(r[p] for p in PARTITIONS), []).append(r)
    return [write_parquet(partition_path(root, run_id, dict(zip(PARTITIONS, key))),
                          to_table(rs))
            for key, rs in sorted(parts.items())]


class PartitionWriter:
    """The Parquet files of one run under `root`; `write(rows)` rewrites them all."""

    def __init__(self, root: str | Path, run_id: str):
        self.root, self.run_id = Path(root), run_id
        self.files: set[Path] = set()

    def write(self, rows: list[dict]) -> None:
        """Replace the run's files with `rows` (all of the run's rows so far)."""
        self.files.update(write_partitions(self.root, self.run_id, rows))
