"""One dataset row from a configuration and what the agent reported."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from . import __version__
from .store.schema import COLUMNS
from .plan import Config
from .stats import latency_stats
from .verdict import output_verdict

_KNOWN = {name for name, _ in COLUMNS} | {"date", "engine"}
# Agent fields that are folded into other columns or are too bulky to keep as columns.
_DROP = {"outputs", "protocol", "agent_pid", "notes", "engine_options",
         "governor_end", "freq_max_mhz_end", "sustained"}  # sustained: its own side table


@dataclass(frozen=True)
class RunContext:
    run_id: str
    suite: str
    sweep_kind: str = "suite"
    sweep_tag: str | None = None


def make_row(ctx: RunContext, cfg: Config, result: dict, *, model_sha256: str = "",
             artifact_sha256: str = "", converter: str = "", input_shape: str = "",
             input_key: str = "", measure=None, model_weight_bytes: int | None = None,
             model_activation_lower_bound_bytes: int | None = None, quantizer: str = "",
             calibration: str = "", artifact_notes: list | None = None) -> dict:
    started = result.get("started_at") or time.time()
    row = {
        "run_id": ctx.run_id, "sweep_kind": ctx.sweep_kind, "sweep_tag": ctx.sweep_tag,
        "suite": ctx.suite, "series": cfg.series,
        "date": datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d"),
        "engine": cfg.engine, "host": cfg.host, "harness_version": __version__,
        "model": cfg.model, "model_sha256": model_sha256, "artifact_sha256": artifact_sha256,
        "converter": converter, "quantizer": quantizer or None,
        "calibration": calibration or None, "input_shape": input_shape, "input_key": input_key,
        "model_weight_bytes": model_weight_bytes,
        "model_activation_lower_bound_bytes": model_activation_lower_bound_bytes,
        "engine_version_requested": cfg.version, "backend_requested": cfg.backend,
        "precision_requested": cfg.precision, "threads": cfg.threads, "process": cfg.process,
        "cores_requested": cfg.cores,
        "started_at": started, "ended_at": result.get("ended_at") or time.time(),
    }
    if measure is not None:
        row.update(min_iterations=measure.min_iterations, min_seconds=measure.min_seconds,
                   sustained_s=measure.sustained_s)
    extra = {}
    for k, v in result.items():
        if k in _DROP:
            continue
        if k in _KNOWN and k not in row:
            row[k] = v
        elif k not in _KNOWN:
            extra[k] = v
    if "governor_end" in result:
        row["governor_end"] = result["governor_end"]
    # the model's own notes (a quantizer's warning) first, then the engine's and agent's
    notes = list(artifact_notes or []) + list(result.get("notes") or [])
    if result.get("out_mismatch"):  # the reason for a `wrong` verdict, where people look
        notes.insert(0, "outputs do not match the reference: " + result["out_mismatch"])
    if notes:
        row["notes"] = "; ".join(notes)
    if result.get("engine_options") is not None:
        row["engine_options"] = json.dumps(result["engine_options"], sort_keys=True)
    if result.get("outputs") is not None:
        row["outputs_json"] = json.dumps(result["outputs"])
    row.update(latency_stats(result.get("latency_ms") or []))
    if extra:
        row["extra_json"] = json.dumps(extra, default=str, sort_keys=True)
    row["verdict"] = output_verdict(row)
    return row
