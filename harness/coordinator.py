"""Runs a suite: prepare on the coordinator, measure through one Ray actor per host, store rows."""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .convert import Artifact
from .dataset import RunWriter, check_writable
from .engines import adapter_class
from .executor_local import LocalExecutor
from .jobs import build_job
from .plan import Config, expand
from .prepare import PreparedModel, prepare_suite
from .raysession import ray_session
from .rows import RunContext, make_row
from .suite import Suite


@dataclass
class RunReport:
    run_id: str
    rows: list[dict]
    files: list[Path]
    wall_s: float
    timings: dict = field(default_factory=dict)


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


class HostWorker:
    """Owns one host's executor; Ray runs its calls one at a time (max_concurrency=1), so
    measurements on one host never overlap."""

    def __init__(self, executor):
        self.executor = executor

    def measure(self, job: dict, timeout_s: float) -> dict:
        return self.executor.run_job(job, timeout_s)


def _static_row_fields(pm: PreparedModel, art) -> dict:
    return dict(model_sha256=pm.source_sha, input_shape=pm.inputs.shape_text,
                input_key=pm.inputs.key,
                artifact_sha256=art.sha256 if isinstance(art, Artifact) else "",
                converter=art.converter if isinstance(art, Artifact) else "")


def _precheck(cfg: Config, pm: PreparedModel, executor) -> dict | None:
    """A result for configurations that cannot run at all (no agent process is started)."""
    fmt = adapter_class(cfg.engine).MODEL_FORMAT
    art = pm.artifacts.get(fmt)
    if isinstance(art, str):
        return {"status": "convert_error", "error": art, "started_at": time.time()}
    reason = executor.unsupported(cfg.engine, cfg.version) if hasattr(
        executor, "unsupported") else None
    if reason:
        return {"status": "unsupported", "error": reason, "started_at": time.time()}
    return None


def run_suite(suite: Suite, out_dir: Path, *, ray_address: str | None = None,
              progress: bool = True, sweep_kind: str = "suite", sweep_tag: str | None = None,
              executors: dict | None = None, run_id: str | None = None) -> RunReport:
    out_dir = Path(out_dir)
    check_writable(out_dir)
    t_start = time.perf_counter()
    executors = executors or {"local": LocalExecutor()}
    run_id = run_id or new_run_id()
    ctx = RunContext(run_id=run_id, suite=suite.name, sweep_kind=sweep_kind,
                     sweep_tag=sweep_tag)
    timings = {}
    with ray_session(ray_address) as ray:
        timings["ray_init_s"] = time.perf_counter() - t_start
        t = time.perf_counter()
        prepared = prepare_suite(suite)
        timings["prepare_s"] = time.perf_counter() - t
        configs = expand(suite, list(executors))
        writer = RunWriter(out_dir, run_id)
        actor_cls = ray.remote(num_cpus=0)(HostWorker)
        actors = {h: actor_cls.options(max_concurrency=1).remote(ex)
                  for h, ex in executors.items()}
        pending = {}
        bar = _progress(len(configs), progress)
        for cfg in configs:
            pm = prepared[cfg.model]
            art = pm.artifacts.get(adapter_class(cfg.engine).MODEL_FORMAT)
            static = _static_row_fields(pm, art)
            early = _precheck(cfg, pm, executors[cfg.host])
            if early is not None:
                writer.add(make_row(ctx, cfg, early, measure=suite.measure, **static))
                bar.update(1)
                continue
            job = build_job(suite, cfg, pm, executors[cfg.host].where)
            ref = actors[cfg.host].measure.remote(job, suite.measure.timeout_s)
            pending[ref] = (cfg, static)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            cfg, static = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except Exception as e:  # the actor died: infrastructure, not the engine
                result = {"status": "error", "error": f"host worker failed: {e}"[:500]}
            row = make_row(ctx, cfg, result, measure=suite.measure, **static)
            writer.add(row)
            bar.update(1)
            bar.set_postfix_str(f"{cfg.model}/{cfg.engine}/{cfg.threads}t {row['status']}")
        bar.close()
        writer.close()
    return RunReport(run_id, writer.rows, sorted(writer.files), time.perf_counter() - t_start,
                     timings)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, disable=(not enabled) or None, file=sys.stderr, unit="cfg",
                dynamic_ncols=True, leave=False)
