"""Runs a suite: prepare on the coordinator, measure through one Ray actor per host, store rows."""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .engines import adapter_class
from .errors import InputError
from .evidence import fp32_by_output
from .executors.local import LocalExecutor
from .jobs import build_job
from .plan import Config, expand
from .models.converters import Artifact, ConversionFailed
from .models.prepare import PreparedModel, prepare_suite
from .raysession import ray_session
from .rows import RunContext, make_row
from .status import RETRY, Status
from .terminal import terminal_safe
from .config.suite import Suite
from .store.tables import write_transfers
from .store.writer import RunWriter, check_writable, read_journal, recover_orphans


@dataclass
class RunReport:
    run_id: str
    rows: list[dict]
    files: list[Path]
    wall_s: float
    timings: dict = field(default_factory=dict)
    transfers: list[dict] = field(default_factory=list)
    hosts: dict = field(default_factory=dict)  # host -> probe info, or {"error": ...}


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


class HostWorker:
    """Owns one host's executor (and so its single SSH connection). Ray runs its calls one at
    a time (max_concurrency=1), so measurements on one host never overlap."""

    def __init__(self, make_executor):
        self.executor = make_executor()

    def setup(self) -> dict:
        try:
            return self.executor.setup()
        except Exception as e:
            return {"error": str(e)}

    def measure(self, job: dict, timeout_s: float) -> dict:
        return self.executor.measure(job, timeout_s)

    def finish(self) -> list[dict]:
        self.executor.close()
        return list(self.executor.transfers)


_HOST_FIELDS = ("device_id", "hostname", "arch", "cpu_model", "cores", "mem_total_kb", "kernel",
                "os", "python_version")


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def worker_failure(e: BaseException) -> str:
    """What made a host worker fail, as one plain line: the cause Ray wraps (a RayTaskError's
    ``cause``), not Ray's coloured traceback, which a length cut leaves without its cause."""
    cause = getattr(e, "cause", None) or e
    text = _ANSI.sub("", str(cause)).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    return f"{type(cause).__name__}: {last}"[:300]


def _host_fields(info: dict) -> dict:
    """What the host probe knew, for rows where no agent ran (unsupported, convert errors)."""
    return {k: info[k] for k in _HOST_FIELDS if info and k in info}


def _static_row_fields(pm: PreparedModel, art) -> dict:
    st = pm.stats or {}
    return dict(model_sha256=pm.source_sha, input_shape=pm.inputs.shape_text,
                model_weight_bytes=st.get("weight_bytes"),
                model_activation_lower_bound_bytes=st.get("activation_lower_bound_bytes"),
                input_key=pm.inputs.key,
                artifact_sha256=art.sha256 if isinstance(art, Artifact) else "",
                converter=art.converter if isinstance(art, Artifact) else "")


def executor_factories(hosts, owner: str, trust_new_host_key: bool = False,
                       lock_wait_s: float = 60.0) -> dict:
    """host name -> picklable factory; None or [] means the local machine. ``owner``: the
    coordinator's lease owner (executors.lease.default_owner)."""
    if not hosts:
        return {"local": functools.partial(LocalExecutor, owner=owner,
                                           lock_wait_s=lock_wait_s)}
    from .executors.ssh import SshExecutor
    return {h.name: functools.partial(SshExecutor, h, owner, trust_new_host_key,
                                      lock_wait_s=lock_wait_s) for h in hosts}


# How long a coordinator on its way out (Ctrl-C, SIGTERM, an error) spends stopping what it
# still measures on its hosts, all hosts together (s).
RELEASE_DEADLINE_S = 20.0


def release_devices(hosts, owner: str, trust_new_host_key: bool = False,
                    deadline_s: float = RELEASE_DEADLINE_S) -> dict:
    """Kill what ``owner`` still measures on each device and release its leases, over
    connections of this process (the host workers may be gone); bounded by ``deadline_s``,
    best effort. Host name -> hostctl unlock's answer, or {"error": ...}; a host that did
    not answer in time is missing (its lease expires)."""
    from .executors.local import release_local
    if not hosts:
        return {"local": release_local(owner)}
    import threading
    from .executors.ssh import SshExecutor
    out: dict = {}

    def one(h) -> None:
        try:
            out[h.name] = SshExecutor(h, owner, trust_new_host_key).release()
        except Exception as e:  # noqa: BLE001 - best effort: the lease expires on its own
            out[h.name] = {"error": str(e)}

    threads = [threading.Thread(target=one, args=(h,), daemon=True) for h in hosts]
    for t in threads:
        t.start()
    end = time.monotonic() + deadline_s
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    return dict(out)


def run_suite(suite: Suite, out_dir: Path, *, ray_address: str | None = None,
              progress: bool = True, sweep_kind: str = "suite", sweep_tag: str | None = None,
              hosts=None, trust_new_host_key: bool = False,
              resume: str | None = None, job_hook=None,
              lock_wait_s: float = 60.0) -> RunReport:
    """Measure every configuration of ``suite`` on ``hosts`` (inventory HostSpecs; None: this
    machine) and write the rows under ``out_dir``.

    ``resume``: a run id; only configurations that run has no final row for are measured, and
    its dataset files end up with every configuration exactly once. ``job_hook(cfg, job)`` may
    amend a job before it is sent (fault injection in tests).
    Raises InputError for bad input found on the way (a model, an input file, a shape); a
    dataset directory this call created is then removed again if it is still empty.
    """
    out_dir = Path(out_dir)
    fresh = not out_dir.exists()
    try:
        return _run_suite(suite, out_dir, ray_address=ray_address, progress=progress,
                          sweep_kind=sweep_kind, sweep_tag=sweep_tag, hosts=hosts,
                          trust_new_host_key=trust_new_host_key, resume=resume,
                          job_hook=job_hook, lock_wait_s=lock_wait_s)
    except InputError:
        if fresh and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise


def _run_suite(suite: Suite, out_dir: Path, *, ray_address, progress, sweep_kind, sweep_tag,
               hosts, trust_new_host_key, resume, job_hook, lock_wait_s) -> RunReport:
    from .executors.lease import default_owner
    check_writable(out_dir)
    t_start = time.perf_counter()
    recover_orphans(out_dir)
    run_id = resume or new_run_id()
    kept: list[dict] = []
    if resume:
        kept, sweep_kind, sweep_tag = _resumable(suite, hosts, out_dir, resume)
    skip = {(r.get("host"), r.get("series"), r.get("process")) for r in kept}
    owner = default_owner(run_id)
    factories = executor_factories(hosts, owner, trust_new_host_key, lock_wait_s)
    ctx = RunContext(run_id=run_id, suite=suite.name, sweep_kind=sweep_kind,
                     sweep_tag=sweep_tag)
    timings: dict = {}
    resources = {f"harness-host:{h}": 1.0 for h in factories}
    # Without a cluster the coordinator's own node reaches every host, whatever node the
    # inventory names for a cluster.
    resources.update({h.ray_resource: 1000.0 for h in hosts or [] if h.ray_resource})
    live: dict = {}  # the Ray session and host workers, for stopping them on the way out
    # on the way out, whatever the reason: after the Ray session (which kills the host
    # workers of an instance it started), before the exception goes on
    with _released_on_abort(hosts, owner, trust_new_host_key, live), \
            ray_session(ray_address, resources=None if ray_address else resources) as ray:
        live["ray"] = ray
        timings["ray_init_s"] = time.perf_counter() - t_start
        actor_cls = ray.remote(num_cpus=0)(HostWorker)
        have_res = ray.cluster_resources()
        actors = live["actors"] = {}
        specs = {h.name: h for h in hosts or []}
        no_route: dict[str, str] = {}
        for h, make in factories.items():
            opts: dict = {"max_concurrency": 1}
            # The per-host resource keeps a second worker (another coordinator on the same
            # cluster) for the same host pending.
            if f"harness-host:{h}" in have_res:
                opts["resources"] = {f"harness-host:{h}": 1.0}
            need = getattr(specs.get(h), "ray_resource", None)
            if need:  # only a node with this resource (e.g. one per lab network) reaches it
                if need not in have_res:
                    no_route[h] = (f"{h}: no Ray node offers the resource {need!r} through "
                                   "which this host is reached")
                    continue
                opts.setdefault("resources", {})[need] = 0.001
            actors[h] = actor_cls.options(**opts).remote(make)
        # Hosts connect, lock and probe while the coordinator converts models.
        setups = {h: a.setup.remote() for h, a in actors.items()}
        t = time.perf_counter()
        prepared = prepare_suite(suite)
        timings["prepare_s"] = time.perf_counter() - t
        host_info = {h: ray.get(ref) for h, ref in setups.items()}
        host_info.update({h: {"error": msg} for h, msg in no_route.items()})
        _write_models_table(prepared, out_dir)
        configs = expand(suite, list(factories))
        writer = RunWriter(out_dir, run_id, initial_rows=kept)
        bars = _Progress(configs, progress)
        pending = {}
        for cfg in configs:
            if skip and (cfg.host, cfg.series, cfg.process) in skip:
                bars.update(cfg, "skipped")
                continue
            pm = prepared[cfg.model]
            art = pm.artifacts.get(adapter_class(cfg.engine).MODEL_FORMAT)
            static = _static_row_fields(pm, art)
            if cfg.host in no_route:
                early = {"status": Status.UNREACHABLE.value, "error": no_route[cfg.host],
                         "started_at": time.time()}
                writer.add(make_row(ctx, cfg, early, measure=suite.measure, **static))
                bars.update(cfg, Status.UNREACHABLE.value)
                continue
            if isinstance(art, ConversionFailed):
                early = {**_host_fields(host_info.get(cfg.host)), "status": Status.CONVERT_ERROR.value,
                         "error": art.reason, "started_at": time.time()}
                writer.add(make_row(ctx, cfg, early, measure=suite.measure, **static))
                bars.update(cfg, Status.CONVERT_ERROR.value)
                continue
            job = build_job(suite, cfg, pm)
            if job_hook is not None:
                job_hook(cfg, job)
            ref = actors[cfg.host].measure.remote(job, suite.measure.timeout_s)
            pending[ref] = (cfg, static)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            cfg, static = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except Exception as e:  # the worker died: infrastructure, not the engine
                result = {"status": Status.HOST_ERROR.value,
                          "error": f"host worker failed: {worker_failure(e)}"}
            result = {**_host_fields(host_info.get(cfg.host)), **result}
            row = make_row(ctx, cfg, result, measure=suite.measure, **static)
            writer.add(row)
            bars.update(cfg, row["status"])
        transfers = []
        unreleased = []
        for h, a in actors.items():
            try:
                transfers += ray.get(a.finish.remote())
            except Exception:  # its worker died: the lease is released from here
                unreleased.append(h)
        if unreleased:
            release_devices([s for s in hosts or [] if s.name in unreleased], owner,
                            trust_new_host_key)
        bars.close()
        for row in fp32_by_output(writer.rows):
            writer.update(row)
        writer.close()
    if transfers:
        write_transfers(out_dir, run_id, transfers)
    return RunReport(run_id, writer.rows, sorted(writer.files), time.perf_counter() - t_start,
                     timings, transfers, host_info)


@contextlib.contextmanager
def _released_on_abort(hosts, owner: str, trust_new_host_key: bool, live: dict):
    """Ctrl-C, SIGTERM (the CLI raises it as an exception) or an error inside: what the host
    workers started on the devices runs in sessions of its own and would measure on beside
    the next run. The workers go first (a Ray instance the caller owns keeps them), so none
    takes a lease after it is released; then their measurements are stopped and the leases
    released (release_devices)."""
    try:
        yield
    except BaseException:
        _stop_workers(live)
        release_devices(hosts, owner, trust_new_host_key)
        raise


def _stop_workers(live: dict, wait_s: float = 5.0) -> None:
    """Kill the host workers in ``live`` ({"ray", "actors"}) and wait, up to ``wait_s``
    seconds, until Ray reports them dead; best effort (Ray may be gone already)."""
    ray, actors = live.get("ray"), list((live.get("actors") or {}).values())
    if ray is None or not actors or not ray.is_initialized():
        return
    for a in actors:
        try:
            ray.kill(a)
        except Exception:  # noqa: BLE001 - already dead, or Ray is going down
            pass
    end = time.monotonic() + wait_s
    for a in actors:
        try:  # fails (RayActorError) as soon as the worker is known dead
            ray.get(a.__ray_ready__.remote(), timeout=max(0.1, end - time.monotonic()))
        except Exception:  # noqa: BLE001
            pass


def _resumable(suite: Suite, hosts, out_dir: Path, run_id: str) -> tuple[list[dict], str, str]:
    """(rows to keep, sweep kind, sweep tag) of run ``run_id`` for resuming it with ``suite``
    on ``hosts``. The run keeps its identity (a sweep stays a sweep with its tag). Raises
    InputError when there is nothing to resume or the suite or hosts are not the run's."""
    from .store.journal import in_use, journal_dir
    path = journal_dir(out_dir) / f"{run_id}.jsonl"
    if not path.exists():
        raise InputError("--resume", f"no journal for run {run_id} in {out_dir}",
                         "a run id printed by an earlier harness run")
    if in_use(out_dir, run_id):
        raise InputError("--resume", f"run {run_id} is still running (a live coordinator "
                         f"holds {path})", "a run whose coordinator has ended")
    old = read_journal(out_dir, run_id)
    if not old:
        raise InputError("--resume", f"run {run_id} has no finished row to resume from",
                         "the run again without --resume")
    names = {r.get("suite") for r in old}
    planned = {(c.host, c.series, c.process)
               for c in expand(suite, [h.name for h in hosts] if hosts else ["local"])}
    foreign = [r for r in old if (r.get("host"), r.get("series"), r.get("process"))
               not in planned]
    if names != {suite.name} or foreign:
        raise InputError("--resume", f"run {run_id} measured another plan (suite "
                         f"{', '.join(sorted(map(str, names)))}; {len(foreign)} of its rows "
                         "are not configurations of this suite on these hosts)",
                         "the same suite and hosts as that run")
    last = old[-1]
    return ([r for r in old if r.get("status") not in RETRY],
            str(last.get("sweep_kind") or "suite"), last.get("sweep_tag"))


def _write_models_table(prepared: dict, out_dir: Path) -> None:
    from .analysis import write_models_table
    rows = [pm.stats for pm in prepared.values() if pm.stats and "error" not in pm.stats]
    if rows:
        # "_" keeps it out of the measurement dataset that pandas.read_parquet("results/") reads
        write_models_table(rows, out_dir / "_models")


class _Progress:
    """One bar for the whole run plus one per host when there are several."""

    def __init__(self, configs: list[Config], enabled: bool):
        from tqdm import tqdm
        # the real stream: the bar's own carriage returns and cursor moves are meant
        stream = getattr(sys.stderr, "raw", sys.stderr)
        disable = (not enabled) or None  # None: tqdm decides (off when not a terminal)
        hosts = sorted({c.host for c in configs})
        self.total = tqdm(total=len(configs), disable=disable, file=stream, unit="cfg",
                          desc="all", dynamic_ncols=True, leave=False, position=0)
        self.per_host = {}
        if len(hosts) > 1:
            for i, h in enumerate(hosts, 1):
                n = sum(1 for c in configs if c.host == h)
                self.per_host[h] = tqdm(total=n, disable=disable, file=stream, unit="cfg",
                                        desc=h[:16], dynamic_ncols=True, leave=False,
                                        position=i)

    def update(self, cfg: Config, status: str) -> None:
        self.total.update(1)
        self.total.set_postfix_str(terminal_safe(
            f"{cfg.host}:{cfg.model}/{cfg.engine}/{cfg.threads}t {status}"))
        if cfg.host in self.per_host:
            self.per_host[cfg.host].update(1)

    def close(self) -> None:
        for b in self.per_host.values():
            b.close()
        self.total.close()
