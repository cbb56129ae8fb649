"""A run's journal: `_journal/RUNID.jsonl`, one fsync'd JSON line per row as it arrives.

The journal is the durable record of a run; the Parquet files are rebuilt from it. While a
coordinator is alive it holds an exclusive lock on the journal; `RUNID.done` beside it marks a
run whose Parquet files are complete.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

JOURNAL_DIR = "_journal"


def journal_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / JOURNAL_DIR


class Journal:
    """The open, locked journal of run `run_id` under `out_dir` (appends; creates the file).

    `file` is the journal opened for appending. Raises OSError (BlockingIOError) when another
    live process holds the journal."""

    def __init__(self, out_dir: str | Path, run_id: str):
        jdir = journal_dir(out_dir)
        jdir.mkdir(parents=True, exist_ok=True)
        self.path = jdir / f"{run_id}.jsonl"
        self.done_path = jdir / f"{run_id}.done"
        self.file = open(self.path, "a")
        try:
            # Held while the run is alive, so recovery never rewrites a live run's files.
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.close()
            raise
        self.done_path.unlink(missing_ok=True)

    def append(self, row: dict) -> None:
        """Write one row and fsync it before returning."""
        self.file.write(json.dumps(row, default=str) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self, done: bool = True) -> None:
        """Mark the run's Parquet files complete (`done`) and release the lock."""
        if done:
            self.done_path.write_text("")
        self.file.close()


def read_journal(out_dir: str | Path, run_id: str) -> list[dict]:
    """The run's rows; where a configuration was measured again (resume), the last row wins."""
    path = journal_dir(out_dir) / f"{run_id}.jsonl"
    rows: dict[tuple, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                break  # a torn last line from a crash
            rows[(r.get("host"), r.get("series"), r.get("process"))] = r
    return list(rows.values())
