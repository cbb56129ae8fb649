"""The results store: atomic files, the row schema and its version, partitioned Parquet files,
the run journal, side tables, and reading the dataset back.

Modules: atomic (atomic_write), schema (COLUMNS, DIMENSIONS, SCHEMA_VERSION, MIGRATIONS),
partitions (partition_path, write_parquet, PartitionWriter), journal (Journal, read_journal),
writer (RunWriter, recover_orphans, check_writable), tables (_diagnoses, _transfers), read
(load, long_form; re-exported by harness.results). Only the stdlib-only atomic helpers are
imported here, so `harness.store.atomic` users do not pay for pyarrow.
"""

from .atomic import atomic_write, atomic_write_bytes, atomic_write_text

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text"]
