"""The results dataset: Parquet files partitioned by date and engine, one file per run.

Rows are journaled (JSON lines, fsync'd) as they arrive and the run's Parquet files are
rewritten atomically (temp name, then rename) at intervals and at the end, so a crash loses no
finished row and never leaves a half-written file that reads as data. Files and directories
starting with '.' or '_' are ignored by Parquet dataset readers.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError

S, I, F, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
TS = pa.timestamp("us", tz="UTC")

# Column order is the documented schema (README). Partition columns (date, engine) live in the
# directory names, not in the files.
COLUMNS: list[tuple[str, pa.DataType]] = [
    ("run_id", S), ("sweep_kind", S), ("sweep_tag", S), ("suite", S), ("series", S),
    ("started_at", TS), ("ended_at", TS),
    ("host", S), ("device_id", S), ("hostname", S), ("arch", S), ("cpu_model", S), ("cores", I),
    ("mem_total_kb", I), ("kernel", S), ("os", S), ("python_version", S),
    ("harness_version", S),
    ("model", S), ("model_sha256", S), ("artifact_sha256", S), ("converter", S),
    ("input_shape", S), ("input_key", S),
    ("model_weight_bytes", I), ("model_activation_lower_bound_bytes", I),
    ("engine_version_requested", S), ("engine_version", S),
    ("backend_requested", S), ("backend", S), ("precision_requested", S), ("precision", S),
    ("threads", I), ("process", I), ("gpu_device", S), ("gpu_type", S), ("engine_options", S),
    ("status", S), ("error", S), ("phase", S), ("notes", S),
    ("warmup_iterations", I), ("min_iterations", I), ("min_seconds", F),
    ("load_ms", F), ("first_ms", F), ("warmup_ms", F), ("latency_ms", pa.list_(F)),
    ("iterations", I), ("timed_s", F), ("median_ms", F), ("p90_ms", F), ("mean_ms", F),
    ("min_ms", F), ("cv", F),
    ("rss_process_start_peak_kb", I), ("rss_process_peak_kb", I), ("rss_last_peak_kb", I),
] + [(f"rss_{ph}_{k}_kb", I) for ph in ("load", "first", "steady")
     for k in ("peak", "rss", "anon", "file")] + [
    ("out_sha256", S), ("out_nan", I), ("out_inf", I), ("out_max_abs_err", F),
    ("out_rel_err", F), ("out_cosine", F), ("has_reference", B), ("out_deterministic", B),
    ("outputs_json", S), ("verdict", S),
    ("governor_start", S), ("governor_end", S), ("temp_max_c_start", F), ("temp_max_c_end", F),
    ("freq_cur_mhz_min_start", F), ("freq_cur_mhz_max_start", F),
    ("freq_cur_mhz_min_end", F), ("freq_cur_mhz_max_end", F), ("freq_max_mhz_start", F),
    ("extra_json", S),
]
SCHEMA = pa.schema(COLUMNS)
PARTITIONS = ("date", "engine")


def check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(str(out_dir), f"results directory is not writable ({e.strerror})",
                         "a directory this user can write") from None


def to_table(rows: list[dict]) -> pa.Table:
    cols = {}
    for name, typ in COLUMNS:
        vals = [r.get(name) for r in rows]
        if typ == TS:
            vals = [None if v is None else datetime.fromtimestamp(float(v), timezone.utc)
                    for v in vals]
        cols[name] = pa.array(vals, type=typ)
    return pa.table(cols, schema=SCHEMA)


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunWriter:
    """Collects one run's rows; journal per row, Parquet per (date, engine) partition."""

    def __init__(self, out_dir: Path, run_id: str, flush_every_s: float = 1.0,
                 initial_rows: list[dict] | None = None):
        self.out_dir, self.run_id = Path(out_dir), run_id
        self.rows: list[dict] = list(initial_rows or [])
        self.flush_every_s = flush_every_s
        self._last_flush = time.monotonic()
        jdir = self.out_dir / "_journal"
        jdir.mkdir(parents=True, exist_ok=True)
        self.journal_path = jdir / f"{run_id}.jsonl"
        self._journal = open(self.journal_path, "a")
        # Held while the run is alive, so recovery never rewrites a live run's files.
        fcntl.flock(self._journal.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        (jdir / f"{run_id}.done").unlink(missing_ok=True)
        self.files: set[Path] = set()

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self._journal.write(json.dumps(row, default=str) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        if time.monotonic() - self._last_flush > self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        parts: dict[tuple[str, str], list[dict]] = {}
        for r in self.rows:
            parts.setdefault((r["date"], r["engine"]), []).append(r)
        for (date, engine), rows in parts.items():
            path = self.out_dir / f"date={date}" / f"engine={engine}" / f"part-{self.run_id}.parquet"
            _atomic_parquet(to_table(rows), path)
            self.files.add(path)
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
        (self.journal_path.parent / f"{self.run_id}.done").write_text("")
        self._journal.close()


def read_journal(out_dir: Path, run_id: str) -> list[dict]:
    """The run's rows; where a configuration was measured again (resume), the last row wins."""
    path = Path(out_dir) / "_journal" / f"{run_id}.jsonl"
    rows: dict[tuple, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                break  # a torn last line from a crash
            rows[(r.get("host"), r.get("series"), r.get("process"))] = r
    return list(rows.values())


def recover_orphans(out_dir: Path) -> list[str]:
    """Rewrite the Parquet files of runs whose coordinator died (journal without .done and
    not held by a live writer), so every journaled row is in the dataset. Returns run ids."""
    jdir = Path(out_dir) / "_journal"
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
            w = RunWriter.__new__(RunWriter)
            w.out_dir, w.run_id, w.files = Path(out_dir), run_id, set()
            w.rows = read_journal(out_dir, run_id)
            if w.rows:
                w.flush()
            (jdir / f"{run_id}.done").write_text("recovered\n")
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        done.append(run_id)
    return done
