"""A run's journal: `_journal/RUNID.jsonl`, one fsync'd JSON line per row as it arrives.

The journal is the durable record of a run; the Parquet files are rebuilt from it. While a
coordinator is alive it holds an exclusive lock on the journal; `RUNID.done` beside it marks a
run whose Parquet files are complete.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

JOURNAL_DIR = "_journal"


def journal_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / JOURNAL_DIR


class Journal:
    """The open, locked journal of run `run_id` under `out_dir` (appends; creates the file).

    `file` is the journal opened for appending, unbuffered (a row is on disk or not there at
    all). Raises OSError (BlockingIOError) when another live process holds the journal."""

    def __init__(self, out_dir: str | Path, run_id: str):
        jdir = journal_dir(out_dir)
        jdir.mkdir(parents=True, exist_ok=True)
        self.path = jdir / f"{run_id}.jsonl"
        self.done_path = jdir / f"{run_id}.done"
        self.file = open(self.path, "ab", buffering=0)
        try:
            # Held while the run is alive, so recovery never rewrites a live run's files.
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.close()
            raise
        self.done_path.unlink(missing_ok=True)
        # a resumed run starts on a line of its own: a torn last line (full disk, power loss)
        # must not swallow the first new row
        if self.file.tell() > 0:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    self._write(b"\n")

    def append(self, row: dict) -> None:
        """Write one row and fsync it before returning. Raises OSError (a full disk) with the
        journal as it was: a row that did not fit is cut off again, never left torn."""
        self._write((json.dumps(row, default=str) + "\n").encode())
        os.fsync(self.file.fileno())

    def _write(self, data: bytes) -> None:
        fd = self.file.fileno()
        before = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:  # a write to a nearly full disk may write part of it
                view = view[os.write(fd, view):]
        except OSError:
            try:
                os.ftruncate(fd, before)  # frees what was written: works on a full disk
            except OSError:
                pass  # the reader skips a torn line
            raise

    def close(self, done: bool = True) -> None:
        """Mark the run's Parquet files complete (`done`) and release the lock."""
        if done:
            self.done_path.write_text("")
        self.file.close()


def in_use(out_dir: str | Path, run_id: str) -> bool:
    """Whether a live coordinator holds run ``run_id``'s journal (it is still running)."""
    path = journal_dir(out_dir) / f"{run_id}.jsonl"
    if not path.exists():
        return False
    with open(path, "a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return False


def row_key(row: dict) -> tuple:
    """What identifies one configuration's process in a run: (host, series, process)."""
    return row.get("host"), row.get("series"), row.get("process")


def read_journal(out_dir: str | Path, run_id: str) -> list[dict]:
    """The run's rows; where a configuration was measured again (resume), the last row wins.

    A line that is not a row (torn by a crash, a full disk, power loss) is skipped, logged as a
    warning with its line number, and never hides the rows after it."""
    path = journal_dir(out_dir) / f"{run_id}.jsonl"
    rows: dict[tuple, dict] = {}
    bad = []
    if path.exists():
        with open(path, errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                except ValueError:
                    bad.append(n)
                    continue
                if isinstance(r, dict):
                    rows[row_key(r)] = r
                else:
                    bad.append(n)
    if bad:
        log.warning("%s: skipped %d damaged line(s) (line %s)", path, len(bad),
                    ", ".join(map(str, bad[:10])))
    return list(rows.values())
