"""Reading the results dataset back: one DataFrame, dimension columns categorical.

`load(path, **filters)` reads results/date=.../engine=.../part-*.parquet (files and directories
starting with '.' or '_' are skipped, e.g. `_journal/`) with pyarrow, pushing the filters down
to the Parquet reader (partition pruning for date/engine, row-group statistics for the rest).
Dimension columns come back as pandas Categorical (read dictionary-encoded, never materialized
as one Python string per row) and `latency_ms` as a list column (`pd.ArrowDtype(list<double>)`,
so a million rows load without building a million Python objects). `long_form(df)` turns it
into one row per latency sample.

Versions: a file whose `harness.schema_version` is newer than this harness's SCHEMA_VERSION is
refused (one line naming the file); older files, and files without a version, are read whole
and upgraded through `schema.MIGRATIONS` before the filters apply.

Filters: `load("results", engine="mnn", engine_version=["3.4.0", "3.6.1"], threads=2)`; a list,
tuple or set means "any of", None means "is null". `where=` takes any extra pyarrow expression.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ..errors import InputError
from ..status import MEASURED
from .schema import DIMENSIONS, PARTITIONS, SCHEMA, SCHEMA_VERSION, file_version, migrate

_DICT = pa.dictionary(pa.int32(), pa.string())


class DatasetError(InputError):
    """The dataset is missing, empty, or nothing in it matches the filters (exit code 2)."""


def _schema() -> pa.Schema:
    fields = [pa.field(f.name, _DICT if f.name in DIMENSIONS else f.type) for f in SCHEMA]
    fields += [pa.field(p, pa.string()) for p in PARTITIONS]  # from directory names
    return pa.schema(fields)


FULL_SCHEMA = _schema()
ALL_COLUMNS = tuple(FULL_SCHEMA.names)


def _coerce(name: str, value, typ: pa.DataType):
    """A filter value as the column's type ('2' -> 2 for int columns, as the CLI passes text)."""
    if value is None or isinstance(value, pa.Scalar):
        return value
    try:
        if pa.types.is_integer(typ):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if pa.types.is_floating(typ):
            return float(value)
        if pa.types.is_boolean(typ):
            if isinstance(value, str):
                return {"true": True, "false": False, "1": True, "0": False}[value.lower()]
            return bool(value)
        if pa.types.is_timestamp(typ):
            ts = pd.Timestamp(value)
            return pa.scalar(ts.tz_localize("UTC") if ts.tz is None else ts, type=typ)
    except (ValueError, KeyError, TypeError):
        raise InputError(f"filter {name}={value!r}", "has the wrong type", str(typ)) from None
    return str(value)


def filter_expression(filters: dict) -> ds.Expression | None:
    """`{column: value | [values] | None}` -> one pyarrow expression (AND of all of them)."""
    expr = None
    for name, value in filters.items():
        if name not in ALL_COLUMNS:
            raise InputError(f"filter {name!r}", "is not a dataset column",
                             "a column of harness.store.schema.COLUMNS, date or engine")
        typ = FULL_SCHEMA.field(name).type
        typ = typ.value_type if pa.types.is_dictionary(typ) else typ
        field = pc.field(name)
        if isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Index, pd.Series)):
            vals = [_coerce(name, v, typ) for v in value]
            non_null = [v for v in vals if v is not None]
            e = field.isin(pa.array(non_null, type=typ)) if non_null else None
            if len(non_null) < len(vals):
                e = field.is_null() if e is None else (e | field.is_null())
            if e is None:  # an empty list matches nothing
                e = pc.scalar(False)
        elif value is None:
            e = field.is_null()
        else:
            e = field == pc.scalar(_coerce(name, value, typ))
        expr = e if expr is None else (expr & e)
    return expr


def _describe(filters: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in filters.items()) or "no filters"


def dataset(path: str | Path = "results") -> ds.Dataset:
    """The pyarrow Dataset over `path`, every file in the current layout (older files
    upgraded). Raises DatasetError when there is nothing to read or a file is unreadable or
    newer than this harness reads."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(str(root), "no results dataset here",
                           "a directory written by `harness run`")
    fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(
        dictionary_columns=[c for c in DIMENSIONS if c not in PARTITIONS]))
    part = ds.partitioning(pa.schema([(p, pa.string()) for p in PARTITIONS]), flavor="hive")
    try:
        data = ds.dataset(str(root), schema=FULL_SCHEMA, format=fmt, partitioning=part,
                          ignore_prefixes=[".", "_"])
        if any(not f.endswith(".parquet") for f in data.files):
            # A report or JUnit file saved beside the data is not a results file; a damaged
            # .parquet file still is, and is reported below rather than skipped.
            data = ds.dataset([f for f in data.files if f.endswith(".parquet")],
                              schema=FULL_SCHEMA, format=fmt, partitioning=part,
                              partition_base_dir=str(root))
    except (pa.ArrowInvalid, OSError) as e:
        raise DatasetError(str(root), f"unreadable results dataset ({_first_line(e)})") from None
    if not data.files:
        raise DatasetError(str(root), "contains no Parquet files",
                           "results/date=YYYY-MM-DD/engine=NAME/part-RUNID.parquet")
    return _upgraded(data, fmt)


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _upgraded(data: ds.FileSystemDataset, fmt: ds.FileFormat) -> ds.Dataset:
    """`data` itself when every file is in the current layout; otherwise the current files
    plus the older ones read and migrated in memory."""
    current, old = [], []
    for frag in data.get_fragments():
        try:
            metadata = frag.physical_schema.metadata
        except (pa.ArrowInvalid, OSError) as e:
            raise DatasetError(frag.path, f"unreadable Parquet file ({_first_line(e)})") from None
        try:
            version = file_version(metadata, frag.path)
        except InputError as e:
            raise DatasetError(e.where, e.what, e.expected) from None
        (current if version == SCHEMA_VERSION else old).append((frag, version))
    if not old:
        return data
    tables = []
    for frag, version in old:
        try:
            table = migrate(frag.to_table(schema=frag.physical_schema), version)
            tables.append(_conform(table, ds.get_partition_keys(frag.partition_expression)))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as e:
            raise DatasetError(frag.path, f"cannot upgrade from schema_version {version} "
                               f"({_first_line(e)})") from None
    parts = [ds.InMemoryDataset(pa.concat_tables(tables), schema=FULL_SCHEMA)]
    if current:
        parts.append(ds.FileSystemDataset.from_paths(
            [f.path for f, _ in current], schema=FULL_SCHEMA, format=fmt,
            filesystem=data.filesystem, partitions=[f.partition_expression for f, _ in current]))
    return ds.dataset(parts)


def _conform(table: pa.Table, partition_keys: dict) -> pa.Table:
    """A migrated file's table in FULL_SCHEMA: partition columns from its path, columns it
    lacks as nulls, dimension columns dictionary-encoded."""
    n = table.num_rows
    cols = []
    for f in FULL_SCHEMA:
        if f.name in PARTITIONS:
            col = pa.array([partition_keys.get(f.name)] * n, type=pa.string())
        elif f.name in table.column_names:
            col = table.column(f.name)
            if pa.types.is_dictionary(f.type) and not pa.types.is_dictionary(col.type):
                col = col.cast(pa.string()).dictionary_encode()
            col = col.cast(f.type)
        else:
            col = pa.nulls(n, f.type)
        cols.append(col)
    return pa.table(cols, schema=FULL_SCHEMA)


def to_pandas(table: pa.Table) -> pd.DataFrame:
    table = table.unify_dictionaries()
    df = table.to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None)
    for c in df.columns:  # dictionary columns are Categorical already; make sure the rest are too
        if c in DIMENSIONS and not isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype("category")
    return df


def load(path: str | Path = "results", columns: Iterable[str] | None = None, *,
         where: ds.Expression | None = None, allow_empty: bool = False, **filters) -> pd.DataFrame:
    """Rows of the dataset at `path` matching `filters` (column=value or column=[values]).

    `columns` picks columns (default all, with date and engine); `where` is an extra pyarrow
    expression ANDed with the filters. Raises DatasetError when the directory is missing or
    holds no Parquet files, and (unless allow_empty) when no row matches.
    """
    data = dataset(path)
    expr = filter_expression(filters)
    if where is not None:
        expr = where if expr is None else (expr & where)
    cols = None
    if columns is not None:
        cols = list(dict.fromkeys(columns))
        unknown = [c for c in cols if c not in ALL_COLUMNS]
        if unknown:
            raise InputError(f"columns {unknown}", "are not dataset columns",
                             "names from harness.store.schema.COLUMNS, date or engine")
    try:
        table = data.to_table(columns=cols, filter=expr)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as e:
        raise DatasetError(str(path), f"cannot read results ({_first_line(e)})") from None
    if table.num_rows == 0 and not allow_empty:
        what = _describe(filters) if filters else ""
        if where is not None:
            what = f"{what} and the extra condition" if what else "the extra condition"
        raise DatasetError(str(path), f"no rows match {what or 'no filters'}")
    return to_pandas(table)


def latency_arrays(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A latency list column -> (all samples concatenated, samples per row).

    Works for the ArrowDtype list column `load()` returns and for object columns holding
    lists/arrays (synthetic frames); missing lists count as zero samples.
    """
    if isinstance(series.dtype, pd.ArrowDtype) and pa.types.is_list(series.dtype.pyarrow_dtype):
        arr = pa.array(series.array)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
        values = pc.list_flatten(arr).to_numpy(zero_copy_only=False).astype(float, copy=False)
        return values, lengths.astype(np.int64)
    lists = [np.asarray(v, dtype=float).ravel() if v is not None and not (
        np.isscalar(v) and pd.isna(v)) else np.empty(0) for v in series.to_numpy(dtype=object)]
    lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
    values = np.concatenate(lists) if lists else np.empty(0)
    return values, lengths


def long_form(df: pd.DataFrame, column: str = "latency_ms") -> pd.DataFrame:
    """One row per latency sample: the row's other columns repeated, `sample` = 0..n-1, and
    `column` a float. Rows without samples disappear."""
    values, lengths = latency_arrays(df[column])
    idx = np.repeat(np.arange(len(df)), lengths)
    out = df.drop(columns=[column]).iloc[idx].reset_index(drop=True)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    out["sample"] = np.arange(len(values)) - starts
    out[column] = values
    return out


def measured(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose status is ok or fallback (the only ones with latency and memory numbers)."""
    return df[df["status"].isin(MEASURED)]
