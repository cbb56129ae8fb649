"""The stored row layout in one place: columns, their types, which are dimensions, the version.

A dimension is a low-cardinality string column that describes a configuration or its
environment (model, engine_version, host, status...): readers return it dictionary-encoded
(pandas Categorical) and compare/history group by such columns. Partition columns (date,
engine) live in the directory names, not in the files.

`SCHEMA_VERSION` numbers the layout. Every row carries it in its `schema_version` column (the
layout the row was written in) and every Parquet file the harness writes carries it in the
key-value metadata under `harness.schema_version`. A file without that key is version 1 (the
layout before versioning). `MIGRATIONS[n]` turns a table in layout n into layout n + 1; a
reader upgrades older files through the chain and refuses newer ones.

Version history:
  1  the original layout (no version anywhere)
  2  `schema_version` column; `harness.schema_version` file metadata
  3  core pinning (`cores_requested`, `cpu_mask`, `cpu_mask_cores`, `core_hint`), thermal
     cool-down (`cooldown`, `cooldown_wait_s`, `cooldown_temp_{before,after}_c`,
     `cooldown_target_c`) and sustained runs (`sustained_s`, `throttle_ratio`,
     `throttle_window_s`); older rows ran on all cores without a cool-down
  4  engines built from source: `engine_build` (the version label of a source build),
     `engine_source` (sha256:<tarball digest> or git:<commit>), `engine_build_options`
     (JSON: backends, extra CMake flags, target); older rows ran wheels, where all are null.
     GPU memory where the engine's API tells it: `gpu_heap_budget_mb` (ncnn's Vulkan heap
     budget) and `engine_memory_mb` (MNN's count of its session's memory).
     int8: `quantizer` (the tool and settings that quantized the model, empty for a model
     used as given), `calibration` (what calibrated it: `random N seed+1.. sha256:…`,
     `npy DIR N files sha256:…`, `none (weights only)`), `int8_ops`/`ops_total` (ops MNN ran
     in int8 by its own op types, the ONNX graph's ops between Q/DQ nodes, or the ncnn
     .param's layers with an int8_scale_term; and all ops),
     `out_top1_agree` (top-1 agreement with the reference for classifier-like outputs);
     older rows have them null.
     Background load during the timed loop: `cpu_other_load` (cores of CPU time others took
     on the measuring CPUs) and `cpu_contention` (the part of the threads' demand it took;
     harness_agent.cpuload); older rows have them null.
     The machine's core-to-core latency before and after the measurement:
     `core_to_core_ns_start`, `core_to_core_ns_end` (harness_agent.corelatency); older rows
     have them null
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pyarrow as pa

from ..errors import InputError

SCHEMA_VERSION = 4
VERSION_KEY = b"harness.schema_version"

S, I, F, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    """One stored column: its name, Arrow type, and whether it is a dimension."""
    name: str
    type: pa.DataType
    dimension: bool = False


def _dims(*names: str) -> list[Column]:
    return [Column(n, S, dimension=True) for n in names]


def _cols(typ: pa.DataType, *names: str) -> list[Column]:
    return [Column(n, typ) for n in names]


# Column order is the documented schema (README).
ROW_COLUMNS: tuple[Column, ...] = tuple(
    _dims("run_id", "sweep_kind", "sweep_tag", "suite", "series")
    + _cols(TS, "started_at", "ended_at")
    + _dims("host", "device_id", "hostname", "arch", "cpu_model")
    + _cols(I, "cores", "mem_total_kb")
    + _dims("kernel", "os", "python_version", "harness_version",
            "model", "model_sha256", "artifact_sha256", "converter", "quantizer",
            "calibration", "input_shape", "input_key")
    + _cols(I, "model_weight_bytes", "model_activation_lower_bound_bytes")
    + _dims("engine_version_requested", "engine_version", "engine_build", "engine_source",
            "engine_build_options", "backend_requested", "backend",
            "precision_requested", "precision")
    + _cols(I, "threads", "process") + _dims("cores_requested", "cpu_mask")
    + _cols(I, "cpu_mask_cores") + _cols(S, "core_hint")
    + _dims("gpu_device", "gpu_type") + _cols(F, "gpu_heap_budget_mb", "engine_memory_mb")
    + _dims("engine_options", "status")
    + _cols(S, "error") + _dims("phase") + _cols(S, "notes")
    + _cols(I, "warmup_iterations", "min_iterations") + _cols(F, "min_seconds")
    + _cols(F, "load_ms", "first_ms", "warmup_ms") + [Column("latency_ms", pa.list_(F))]
    + _cols(I, "iterations") + _cols(F, "timed_s", "median_ms", "p90_ms", "mean_ms", "min_ms", "cv")
    + _cols(I, "rss_process_start_peak_kb", "rss_process_peak_kb", "rss_last_peak_kb")
    + _cols(I, *(f"rss_{ph}_{k}_kb" for ph in ("load", "first", "steady")
                 for k in ("peak", "rss", "anon", "file")))
    + _cols(S, "out_sha256") + _cols(I, "out_nan", "out_inf")
    + _cols(F, "out_max_abs_err", "out_rel_err", "out_cosine", "out_top1_agree")
    + _cols(I, "int8_ops", "ops_total")
    + _cols(B, "has_reference", "out_deterministic") + _cols(S, "out_mismatch", "outputs_json")
    + _dims("verdict", "governor_start", "governor_end")
    + _cols(F, "temp_max_c_start", "temp_max_c_end", "freq_cur_mhz_min_start",
            "freq_cur_mhz_max_start", "freq_cur_mhz_min_end", "freq_cur_mhz_max_end",
            "freq_max_mhz_start")
    + _dims("cooldown")
    + _cols(F, "cooldown_wait_s", "cooldown_temp_before_c", "cooldown_temp_after_c",
            "cooldown_target_c", "sustained_s", "throttle_ratio", "throttle_window_s")
    + _cols(F, "cpu_other_load", "cpu_contention", "core_to_core_ns_start",
            "core_to_core_ns_end")
    + _cols(S, "extra_json") + _cols(I, "schema_version")
)
COLUMNS: list[tuple[str, pa.DataType]] = [(c.name, c.type) for c in ROW_COLUMNS]
SCHEMA = pa.schema(COLUMNS)
PARTITIONS = ("date", "engine")
# Read dictionary-encoded and returned as pandas Categorical; the partitions are dimensions too.
DIMENSIONS: tuple[str, ...] = tuple(c.name for c in ROW_COLUMNS if c.dimension) + PARTITIONS

# The models side table (_models/models.parquet): one row per (model_sha256, input_shape).
MODEL_COLUMNS: tuple[Column, ...] = tuple(
    _cols(S, "model_sha256", "input_shape")
    + _cols(I, "params", "weight_bytes", "macs", "flops", "activation_naive_bytes",
            "activation_lower_bound_bytes", "activation_plan_bytes", "max_workspace_bytes",
            "n_layers")
    + _cols(S, "unknown_ops"))
MODEL_SCHEMA = pa.schema([(c.name, c.type) for c in MODEL_COLUMNS])


# The sustained side table (_sustained/RUNID.parquet): one row per window of a sustained run,
# keyed by the measurement row (run_id, host, series, process) with its configuration.
SUSTAINED_COLUMNS: tuple[Column, ...] = tuple(
    _cols(S, "run_id", "host", "series") + _cols(I, "process")
    + _cols(S, "model", "engine", "engine_version", "backend", "precision")
    + _cols(I, "threads") + _cols(S, "cores_requested", "cpu_mask")
    + _cols(F, "t_s", "latency_ms") + _cols(I, "iterations")
    + _cols(F, "temp_max_c", "freq_cur_mhz_min", "freq_cur_mhz_max"))
SUSTAINED_SCHEMA = pa.schema([(c.name, c.type) for c in SUSTAINED_COLUMNS])


def diagnosis_schema() -> pa.Schema:
    """The diagnoses side table (_diagnoses/): one row per compared layer output tensor."""
    from ..diagnose.compare import STAT_KEYS  # lazy: the diagnose package imports the store
    cols = (_cols(S, "diagnosis_id") + [Column("created_at", TS)]
            + _cols(S, "host", "model", "model_sha256", "artifact_sha256", "engine",
                    "engine_version", "backend_requested", "backend", "precision_requested",
                    "precision")
            + _cols(I, "threads") + _cols(S, "reference") + _cols(F, "tol_rel_err", "tol_cosine")
            + _cols(S, "culprit") + _cols(B, "final_ok") + _cols(I, "fix_mask")
            + _cols(B, "fix_verified") + _cols(S, "fix_layers") + _cols(B, "high_precision_fixes")
            + _cols(I, "layer_index")
            + _cols(S, "layer_name", "layer_type", "layer_params", "tensor", "ref_tensor",
                    "match", "shape")
            + _cols(B, "compared", "diverged") + _cols(S, "reason", "role")
            + _cols(F, "max_abs_err", "rel_err", "cosine"))
    cols += [Column(k, I if k in ("nan", "inf") else F) for k in STAT_KEYS]
    cols += [Column("ref_" + k, I if k in ("nan", "inf") else F) for k in STAT_KEYS]
    return pa.schema([(c.name, c.type) for c in cols])


def profile_schema() -> pa.Schema:
    """The profiles side table (_profiles/): one row per layer (level "layer"), per layer type
    ("type") and one for the whole model ("total") of one `harness profile` run. Times in ms;
    FLOPs from the static ONNX analysis (model_flops: the whole model's, on the total row)."""
    cols = (_cols(S, "profile_id") + [Column("created_at", TS)]
            + _cols(S, "host", "model", "model_sha256", "artifact_sha256", "input_shape",
                    "engine", "engine_version", "backend_requested", "backend",
                    "precision_requested", "precision")
            + _cols(I, "threads", "iterations") + _cols(S, "timing", "note", "flops_source")
            + _cols(S, "level") + _cols(I, "layer_index")
            + _cols(S, "layer_name", "layer_type", "onnx_nodes") + _cols(I, "count")
            + _cols(F, "ms", "time_share") + _cols(I, "flops", "model_flops")
            + _cols(F, "gflops_per_s") + _cols(I, "schema_version"))
    return pa.schema([(c.name, c.type) for c in cols])


# -- versions -------------------------------------------------------------------------------------
def with_version(schema: pa.Schema) -> pa.Schema:
    """`schema` with `harness.schema_version` added to its key-value metadata."""
    return schema.with_metadata({**(schema.metadata or {}), VERSION_KEY: str(SCHEMA_VERSION)})


def file_version(metadata: dict | None, where: str) -> int:
    """The layout version recorded in a Parquet file's key-value metadata (1 when absent).

    Raises InputError when the file claims a version newer than SCHEMA_VERSION, or an
    unreadable one, naming the file (`where`)."""
    raw = (metadata or {}).get(VERSION_KEY)
    if raw is None:
        return 1
    try:
        version = int(raw)
    except ValueError:
        raise InputError(where, f"schema_version {raw.decode(errors='replace')!r} is not a "
                         "number", "a file written by harness") from None
    if version > SCHEMA_VERSION:
        raise InputError(where, f"schema_version {version} is newer than this harness reads "
                         f"({SCHEMA_VERSION}); upgrade harness")
    return version


def _v1_to_v2(table: pa.Table) -> pa.Table:
    # Rows of unversioned files were written in layout 1.
    column = pa.array([1] * table.num_rows, type=I)
    if "schema_version" in table.column_names:  # a stray null column from a hand-made file
        return table.set_column(table.column_names.index("schema_version"), "schema_version",
                                column)
    return table.append_column("schema_version", column)


def _v2_to_v3(table: pa.Table) -> pa.Table:
    # Rows before core pinning and cool-down ran unpinned with no wait: say so, so that they
    # pair with new rows of cores = "all" and read as cooldown "none". The other new columns
    # (what was measured) stay null.
    n = table.num_rows
    for name, value in (("cores_requested", "all"), ("cooldown", "none")):
        column = pa.array([value] * n, type=S)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    return table


# MIGRATIONS[n]: a row table in layout n -> the same rows in layout n + 1.
def _v3_to_v4(table: pa.Table) -> pa.Table:
    # Rows before source builds ran wheels (or whatever was installed): the build columns
    # stay null, which is what a wheel row has.
    return table


MIGRATIONS: dict[int, Callable[[pa.Table], pa.Table]] = {1: _v1_to_v2, 2: _v2_to_v3,
                                                         3: _v3_to_v4}


def migrate(table: pa.Table, version: int) -> pa.Table:
    """A row table written in layout `version` upgraded to SCHEMA_VERSION."""
    for v in range(version, SCHEMA_VERSION):
        table = MIGRATIONS[v](table)
    return table


def to_table(rows: list[dict]) -> pa.Table:
    """Row dicts (timestamps as epoch seconds) -> an Arrow table in the current layout, every
    row's schema_version set to SCHEMA_VERSION. Keys that are not columns are ignored."""
    from datetime import datetime, timezone
    cols = {}
    for name, typ in COLUMNS:
        if name == "schema_version":
            cols[name] = pa.array([SCHEMA_VERSION] * len(rows), type=typ)
            continue
        vals = [r.get(name) for r in rows]
        if typ == TS:
            vals = [None if v is None else datetime.fromtimestamp(float(v), timezone.utc)
                    for v in vals]
        cols[name] = pa.array(vals, type=typ)
    return pa.table(cols, schema=SCHEMA)
