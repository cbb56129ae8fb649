"""Runs a suite: prepare on the coordinator, measure through host workers (threads here or Ray
actors, `harness.placement`), one call per host at a time, store rows."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import os
from collections import deque
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import DiskFull, InputError, is_disk_full
from .evidence import fp32_by_output
from .executors.base import plain_cause
from .executors.local import LocalExecutor
from .jobs import build_job
from .plan import Config, expand
from .models.converters import Artifact, ConversionFailed
from .models.prepare import PreparedModel, prepare_suite
from .models.quantize import measured_input_notes
from .placement import PLACEMENTS, RayPlacement, ThreadPlacement
from .raysession import ray_session
from .rows import RunContext, make_row
from .status import RETRY, Status
from .terminal import terminal_safe
from .config.suite import Suite
from .store.tables import SustainedWriter, write_transfers
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


_HOST_FIELDS = ("device_id", "hostname", "arch", "cpu_model", "cores", "mem_total_kb", "kernel",
                "os", "python_version")


def worker_failure(e: BaseException) -> str:
    """What made a host worker fail, as one plain line: the cause Ray wraps (a RayTaskError's
    ``cause``), not Ray's coloured traceback, which a length cut leaves without its cause."""
    cause = getattr(e, "cause", None) or e
    return f"{type(cause).__name__}: {plain_cause(str(cause))}"[:300]


def _host_fields(info: dict) -> dict:
    """What the host probe knew, for rows where no agent ran (unsupported, convert errors)."""
    return {k: info[k] for k in _HOST_FIELDS if info and k in info}


def _static_row_fields(pm: PreparedModel, art) -> dict:
    st = pm.stats or {}
    quant = art if isinstance(art, Artifact) else None
    return dict(model_sha256=pm.source_sha, input_shape=pm.inputs.shape_text,
                quantizer=quant.quantizer if quant else "",
                calibration=quant.calibration if quant else "",
                artifact_notes=(list(quant.notes) + list(measured_input_notes(pm.spec, quant))
                                if quant else []),
                model_weight_bytes=st.get("weight_bytes"),
                model_activation_lower_bound_bytes=st.get("activation_lower_bound_bytes"),
                input_key=pm.inputs.key,
                artifact_sha256=art.sha256 if isinstance(art, Artifact) else "",
                converter=art.converter if isinstance(art, Artifact) else "")


def executor_factories(hosts, owner: str, trust_new_host_key: bool = False,
                       lock_wait_s: float = 60.0, sources: dict | None = None) -> dict:
    """host name -> picklable factory; None or [] means the local machine. ``owner``: the
    coordinator's lease owner (executors.lease.default_owner); ``sources``: the suite's
    versions built from source (Suite.sources)."""
    if not hosts:
        return {"local": functools.partial(LocalExecutor, owner=owner,
                                           lock_wait_s=lock_wait_s, sources=sources)}
    from .executors.ssh import SshExecutor
    return {h.name: functools.partial(SshExecutor, h, owner, trust_new_host_key,
                                      lock_wait_s=lock_wait_s, sources=sources)
            for h in hosts}


# How long a coordinator on its way out (Ctrl-C, SIGTERM, an error) spends stopping what it
# still measures on its hosts, all hosts together (s).
RELEASE_DEADLINE_S = 20.0
# The coordinator's own deadline on each call to a host worker, beyond the measurement's (the
# agent's timeout, which the executor enforces on the host): the executors bound every wait on
# a host, and this bounds the executor, so that a wait some library leaves unbounded cannot
# hold a run for ever. Generous: a call may also push files, reconnect, check liveness.
CALL_GRACE_S = 600.0
# ... and on a host's setup (a new host may build a virtual environment: up to 900 s).
SETUP_LIMIT_S = 3600.0


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
              lock_wait_s: float = 60.0, placement: str = "auto",
              max_parallel_hosts: int | None = None) -> RunReport:
    """Measure every configuration of ``suite`` on ``hosts`` (inventory HostSpecs; None: this
    machine) and write the rows under ``out_dir``.

    ``resume``: a run id; only configurations that run has no final row for are measured, and
    its dataset files end up with every configuration exactly once. ``job_hook(cfg, job)`` may
    amend a job before it is sent (fault injection in tests).
    ``placement``: where host workers run (`harness.placement`): "threads" in this process,
    "ray" in Ray actors (a private instance unless ``ray_address``/RAY_ADDRESS names a
    cluster), "auto" = "ray" when a cluster is named or Ray is already initialized (a
    notebook, a test session), else "threads".
    ``max_parallel_hosts``: at most this many hosts measure at once (None: all), like
    Ansible's `forks`: for a shared uplink or a lab whose boards share power or cooling.
    Raises InputError for bad input found on the way (a model, an input file, a shape); a
    dataset directory this call created is then removed again if it is still empty. Raises
    DiskFull when the disk under ``out_dir`` fills up: the rows written before stay readable
    (the journal holds whole rows only; Parquet files are replaced atomically or not at all).
    """
    out_dir = Path(out_dir)
    fresh = not out_dir.exists()
    run_id = resume or new_run_id()
    try:
        return _run_suite(suite, out_dir, run_id, ray_address=ray_address, progress=progress,
                          sweep_kind=sweep_kind, sweep_tag=sweep_tag, hosts=hosts,
                          trust_new_host_key=trust_new_host_key, resume=resume,
                          job_hook=job_hook, lock_wait_s=lock_wait_s, placement=placement,
                          max_parallel_hosts=max_parallel_hosts)
    except InputError:
        if fresh and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    except OSError as e:
        if not is_disk_full(e):
            raise
        raise DiskFull(_disk_full_message(out_dir, run_id)) from None


def choose_placement(placement: str, ray_address: str | None) -> str:
    """"threads" or "ray" for a run_suite ``placement`` argument (see run_suite)."""
    if placement not in PLACEMENTS:
        raise InputError(f"placement {placement!r}", "is unknown", ", ".join(PLACEMENTS))
    if placement != "auto":
        return placement
    if ray_address or os.environ.get("RAY_ADDRESS"):
        return "ray"
    ray = sys.modules.get("ray")  # initialized by a caller: only possible if imported
    return "ray" if ray is not None and ray.is_initialized() else "threads"


def _disk_full_message(out_dir: Path, run_id: str) -> str:
    kept = len(read_journal(out_dir, run_id))
    if not kept:
        return f"{out_dir}: the disk is full (No space left on device); no row was written"
    return (f"{out_dir}: the disk is full (No space left on device); the {kept} rows written "
            f"before are kept; free space, then finish the run with --resume {run_id}")


def _run_suite(suite: Suite, out_dir: Path, run_id: str, *, ray_address, progress, sweep_kind,
               sweep_tag, hosts, trust_new_host_key, resume, job_hook, lock_wait_s,
               placement, max_parallel_hosts) -> RunReport:
    from .executors.lease import default_owner
    check_writable(out_dir)
    t_start = time.perf_counter()
    recover_orphans(out_dir)
    kept: list[dict] = []
    if resume:
        kept, sweep_kind, sweep_tag = _resumable(suite, hosts, out_dir, resume)
    skip = {(r.get("host"), r.get("series"), r.get("process")) for r in kept}
    owner = default_owner(run_id)
    factories = executor_factories(hosts, owner, trust_new_host_key, lock_wait_s,
                                   suite.sources)
    ctx = RunContext(run_id=run_id, suite=suite.name, sweep_kind=sweep_kind,
                     sweep_tag=sweep_tag)
    timings: dict = {}
    routes = {h.name: h.ray_resource for h in hosts or []}
    kind = choose_placement(placement, ray_address)
    if kind == "ray":
        resources = {f"harness-host:{h}": 1.0 for h in factories}
        # Without a cluster the coordinator's own node reaches every host, whatever node the
        # inventory names for a cluster.
        resources.update({r: 1000.0 for r in routes.values() if r})
        session = ray_session(ray_address, resources=None if ray_address else resources)
    else:
        session = contextlib.nullcontext(None)
    live: dict = {}  # the host workers, for stopping them on the way out
    # on the way out, whatever the reason: after the Ray session (which kills the host
    # workers of an instance it started), before the exception goes on
    with _released_on_abort(hosts, owner, trust_new_host_key, live), session as ray:
        timings["ray_init_s"] = time.perf_counter() - t_start if ray is not None else 0.0
        workers = live["workers"] = (RayPlacement(ray, factories, routes) if ray is not None
                                     else ThreadPlacement(factories, routes))
        try:
            transfers, host_info, writer, unreleased = _measure_all(
                suite, out_dir, workers, factories, ctx, kept, skip, run_id, job_hook,
                progress, timings, max_parallel_hosts)
        finally:
            workers.close()
        if unreleased:  # their workers died: the leases are released from here
            release_devices([s for s in hosts or [] if s.name in unreleased], owner,
                            trust_new_host_key)
        timings["placement"] = workers.kind
        timings["worker_processes"] = workers.workers
    if transfers:
        write_transfers(out_dir, run_id, transfers)
    return RunReport(run_id, writer.rows, sorted(writer.files), time.perf_counter() - t_start,
                     timings, transfers, host_info)


def _measure_all(suite: Suite, out_dir: Path, workers, factories: dict, ctx: RunContext,
                 kept: list[dict], skip: set, run_id: str, job_hook, progress: bool,
                 timings: dict, max_parallel_hosts: int | None = None):
    """Set up every host, prepare the models meanwhile, then measure: each host's jobs in plan
    order, one call per host in flight, rows written as they finish. Returns (transfers,
    host info, the closed writer, hosts whose worker could not finish: their leases are
    still held)."""
    # Hosts connect, lock and probe while the coordinator converts models.
    setups = {h: workers.call(h, "setup") for h in factories if h not in workers.no_route}
    t = time.perf_counter()
    prepared = prepare_suite(suite)
    timings["prepare_s"] = time.perf_counter() - t
    cf.wait(list(setups.values()), timeout=SETUP_LIMIT_S)
    stuck: dict[str, str] = {}  # hosts whose worker never answered: nothing more is sent
    for h, f in setups.items():
        if not f.done():
            stuck[h] = (f"{h}: the host worker gave no answer to its setup within "
                        f"{SETUP_LIMIT_S:.0f} s; nothing more was sent to it")
    host_info = {h: ({"error": stuck[h]} if h in stuck else _outcome(workers, f, setup=True))
                 for h, f in setups.items()}
    host_info.update({h: {"error": msg} for h, msg in workers.no_route.items()})
    _write_models_table(prepared, out_dir)
    configs = expand(suite, list(factories))
    writer = RunWriter(out_dir, run_id, initial_rows=kept)
    bars = _Progress(configs, progress)

    series_writer = None  # the sustained side table, opened with the first series

    def add_row(cfg, static, result) -> None:
        """The row of ``result``: its sustained windows first, then the row itself."""
        nonlocal series_writer
        row = make_row(ctx, cfg, result, measure=suite.measure, **static)
        if result.get("sustained"):
            series_writer = series_writer or SustainedWriter(out_dir, run_id)
            series_writer.add(row, result["sustained"])
        writer.add(row)
        bars.update(cfg, row["status"])

    queues: dict[str, deque] = {h: deque() for h in factories}
    for cfg in configs:
        if skip and (cfg.host, cfg.series, cfg.process) in skip:
            bars.update(cfg, "skipped")
            continue
        pm = prepared[cfg.model]
        art = pm.artifact_or_failure(cfg.engine, cfg.precision)
        static = _static_row_fields(pm, art)
        early = None
        if cfg.host in workers.no_route or cfg.host in stuck:
            early = {"status": Status.UNREACHABLE.value,
                     "error": workers.no_route.get(cfg.host) or stuck[cfg.host]}
        elif isinstance(art, ConversionFailed):
            early = {**_host_fields(host_info.get(cfg.host)),
                     "status": Status(art.status).value, "error": art.reason}
        if early is not None:
            add_row(cfg, static, {**early, "started_at": time.time()})
            continue
        job = build_job(suite, cfg, pm, (host_info.get(cfg.host) or {}).get("temp_max_c"))
        if job_hook is not None:
            job_hook(cfg, job)
        queues[cfg.host].append((cfg, static, job))

    in_flight: dict[cf.Future, tuple] = {}

    # Hosts with jobs left and none in flight, in plan order; at most `max_parallel_hosts`
    # of them measure at once (all of them when it is None).
    ready = deque(h for h in queues if queues[h])
    limit = max_parallel_hosts or len(queues) or 1

    call_limit_s = suite.measure.agent_timeout_s() + CALL_GRACE_S
    started: dict[cf.Future, float] = {}

    def start_ready() -> None:
        while ready and len(in_flight) < limit:
            host = ready.popleft()
            cfg, static, job = queues[host].popleft()
            f = workers.call(host, "measure", job, suite.measure.agent_timeout_s())
            in_flight[f], started[f] = (cfg, static), time.monotonic()

    start_ready()
    while in_flight:
        done, overdue = wait_calls(started, call_limit_s)
        for f in done + overdue:
            cfg, static = in_flight.pop(f)
            t0 = started.pop(f)
            if f in overdue:  # the worker still holds the host: nothing more goes there
                stuck[cfg.host] = (f"{cfg.host}: the host worker gave no answer within "
                                   f"{call_limit_s:.0f} s (the measurement's "
                                   f"{suite.measure.agent_timeout_s():.0f} s + "
                                   f"{CALL_GRACE_S:.0f} s)")
                add_row(cfg, static, {**_host_fields(host_info.get(cfg.host)),
                                      "status": Status.UNREACHABLE.value,
                                      "error": stuck[cfg.host],
                                      "started_at": time.time() - (time.monotonic() - t0)})
                for cfg2, static2, _ in queues[cfg.host]:
                    add_row(cfg2, static2, {**_host_fields(host_info.get(cfg.host)),
                                            "status": Status.UNREACHABLE.value,
                                            "error": f"not measured: {stuck[cfg.host]}",
                                            "started_at": time.time()})
                queues[cfg.host].clear()
                continue
            result = {**_host_fields(host_info.get(cfg.host)), **_outcome(workers, f)}
            add_row(cfg, static, result)
            if queues[cfg.host]:
                ready.append(cfg.host)  # behind the hosts that waited for a slot
        start_ready()
    transfers, unreleased = [], sorted(stuck)  # a stuck worker cannot release its lease
    finishing = {h: workers.call(h, "finish") for h in factories
                 if h not in workers.no_route and h not in stuck}
    for h, f in finishing.items():
        try:
            transfers += f.result(timeout=60)
        except Exception:  # a lost worker's transfers are lost with it; its rows are not
            unreleased.append(h)
    bars.close()
    for row in fp32_by_output(writer.rows):
        writer.update(row)
    writer.close()
    return transfers, host_info, writer, unreleased


def wait_calls(started: dict[cf.Future, float], limit_s: float
               ) -> tuple[list[cf.Future], list[cf.Future]]:
    """Wait until a call of ``started`` (future -> its time.monotonic() start) finishes or
    the oldest reaches ``limit_s`` s; (the finished ones, those past the limit and still
    running)."""
    first_due = min(started.values()) + limit_s
    done, _ = cf.wait(list(started), timeout=max(0.0, first_due - time.monotonic()),
                      return_when=cf.FIRST_COMPLETED)
    now = time.monotonic()
    overdue = [f for f, t0 in started.items() if f not in done and now - t0 >= limit_s]
    return list(done), overdue


def _outcome(workers, future: cf.Future, setup: bool = False) -> dict:
    """A worker call's result; a failed call as a row's status: a worker that is gone (its
    Ray node or process died) did not reach the host (`unreachable`), any other failure of
    the worker is infrastructure (`host_error`), never the engine's `error`."""
    try:
        return future.result()
    except Exception as e:
        if setup:
            return {"error": f"host worker failed: {worker_failure(e)}"}
        if workers.lost(e):
            return {"status": Status.UNREACHABLE.value,
                    "error": f"host worker lost (its Ray node or process died): "
                             f"{worker_failure(e)}"}
        return {"status": Status.HOST_ERROR.value,
                "error": f"host worker failed: {worker_failure(e)}"}


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


def _stop_workers(live: dict) -> None:
    """Stop the host workers in ``live`` ({"workers": a placement}): Ray actors are killed and
    waited for (harness.placement.RayPlacement.close); threads need nothing (no new call is
    made, and the calls in flight end once their measurements are killed)."""
    workers = live.get("workers")
    if workers is not None:
        workers.close()


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
    """One bar for the whole run plus one per host when there are a few."""

    MAX_HOST_BARS = 8  # a fleet's worth of bars would scroll the terminal away

    def __init__(self, configs: list[Config], enabled: bool):
        from tqdm import tqdm
        # the real stream: the bar's own carriage returns and cursor moves are meant
        stream = getattr(sys.stderr, "raw", sys.stderr)
        disable = (not enabled) or None  # None: tqdm decides (off when not a terminal)
        hosts = sorted({c.host for c in configs})
        self.total = tqdm(total=len(configs), disable=disable, file=stream, unit="cfg",
                          desc="all", dynamic_ncols=True, leave=False, position=0)
        self.per_host = {}
        if 1 < len(hosts) <= self.MAX_HOST_BARS:
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
