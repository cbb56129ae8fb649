"""Writing a run: every row journaled as it arrives, the Parquet files rewritten from time to
time, and recovery of runs whose coordinator died.

A crash loses no finished row (the journal is fsync'd per row) and never leaves a half-written
file that reads as data (files are replaced atomically). Files and directories starting with
'.' or '_' are ignored by Parquet dataset readers.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from ..errors import InputError
from .journal import Journal, journal_dir, read_journal, row_key
from .partitions import PartitionWriter, partition_path
from .schema import PARTITIONS


def check_writable(out_dir: Path) -> None:
    """Create `out_dir` if needed; raises InputError when this user cannot write there."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(str(out_dir), f"results directory is not writable ({e.strerror})",
                         "a directory this user can write") from None


class RunWriter:
    """Collects one run's rows: a journal line per row, the Parquet files at most every
    `flush_every_s` seconds and at close. `initial_rows` (kept rows of a resumed run) go to
    the Parquet files, not again to the journal."""

    def __init__(self, out_dir: Path, run_id: str, flush_every_s: float = 1.0,
                 initial_rows: list[dict] | None = None):
        self.out_dir, self.run_id = Path(out_dir), run_id
        self.rows: list[dict] = list(initial_rows or [])
        self.flush_every_s = flush_every_s
        self._last_flush = time.monotonic()
        self.journal = Journal(self.out_dir, run_id)
        self.partitions = PartitionWriter(self.out_dir, run_id)

    @property
    def files(self) -> set[Path]:
        """The Parquet files written so far."""
        return self.partitions.files

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.journal.append(row)
        if time.monotonic() - self._last_flush > self.flush_every_s:
            self.flush()

    def update(self, row: dict) -> None:
        """Replace the row of the same configuration and process (row_key) with ``row``; the
        journal gets it too (its last row per key wins)."""
        key = row_key(row)
        self.rows = [row if row_key(r) == key else r for r in self.rows]
        self.journal.append(row)

    def flush(self) -> None:
        self.partitions.write(self.rows)
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
        self.journal.close(done=True)


def _with_stored_rows(out_dir: Path, run_id: str, journaled: list[dict]) -> list[dict]:
    """The journal's rows plus the run's rows already in its Parquet files that the journal
    lacks (a damaged journal): a recovery never writes fewer finished rows than were there."""
    import pyarrow.parquet as pq
    rows = {row_key(r): r for r in journaled}
    pattern = str(partition_path(".", run_id, {k: "*" for k in PARTITIONS}))
    for f in sorted(Path(out_dir).glob(pattern)):
        try:
            stored = pq.read_table(f).to_pylist()
        except Exception:  # noqa: BLE001 - an unreadable file has nothing to keep
            continue
        # the partition values live in the path: DIR/date=D/engine=E/part-RUN.parquet
        values = dict(part.name.partition("=")[::2]
                      for part in list(f.parents)[:len(PARTITIONS)])
        for r in stored:
            for k, v in values.items():
                r.setdefault(k, v)
            for k in ("started_at", "ended_at"):  # back to epoch seconds, as journaled
                if hasattr(r.get(k), "timestamp"):
                    r[k] = r[k].timestamp()
            rows.setdefault(row_key(r), r)
    return list(rows.values())


def recover_orphans(out_dir: Path) -> list[str]:
    """Rewrite the Parquet files of runs whose coordinator died (journal without .done and
    not held by a live writer), so every journaled row is in the dataset. Returns run ids."""
    jdir = journal_dir(out_dir)
    done = []
    for j in sorted(jdir.glob("*.jsonl")) if jdir.exists() else []:
        run_id = j.stem
        if (jdir / f"{run_id}.done").exists():
            continue
        with open(j, "a") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live coordinator owns it
            rows = _with_stored_rows(out_dir, run_id, read_journal(out_dir, run_id))
            if rows:
                PartitionWriter(out_dir, run_id).write(rows)
            (jdir / f"{run_id}.done").write_text("recovered\n")
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        done.append(run_id)
    return done
