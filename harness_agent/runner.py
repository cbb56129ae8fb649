"""The ``measure`` mode: one measurement, start to finish, in this (fresh) process.

Load, first run, warm-up, a timed steady loop, then the outputs against the references; the
peak resident memory of each phase. Progress lines go out after the load and the first run,
so a coordinator that sees the process die knows how far it got.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Dict, List

from . import cores, corelatency, sustained
from .cooldown import cool_down
from .cpuload import CpuLoad
from .memory import PhaseMeter
from .protocol import Channel
from .status import Status


class Corrupt(Exception):
    """A pushed file does not have the content the coordinator sent."""


def verify_files(job: Dict[str, object]) -> None:
    import hashlib
    for path, sha in (job.get("sha256") or {}).items():
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as e:
            raise Corrupt("%s: %s" % (path, e.strerror))
        if h.hexdigest() != sha:
            raise Corrupt("%s: sha256 %s, expected %s" % (path, h.hexdigest()[:16], sha[:16]))


def _inject(job: Dict[str, object], phase: str) -> None:
    """Fault injection for the reliability tests: only acts when a job asks for it."""
    inj = job.get("inject") or {}
    if inj.get("alloc_mb_in") == phase:
        blocks = []
        for _ in range(int(inj.get("alloc_mb", 1 << 20))):
            blocks.append(bytearray(1 << 20))  # touched pages: real RSS growth
    if inj.get("hang_in") == phase:
        if inj.get("spawn_child"):
            import subprocess
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(100000)"])
        while True:
            time.sleep(3600)


def _apply_memory_limit(job: Dict[str, object]) -> None:
    mb = job.get("memory_limit_mb")
    if mb:
        import resource
        limit = int(mb) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _ms(ns: int) -> float:
    return ns / 1e6


def _phase(res: Dict[str, object], name: str, mem: Dict[str, object]) -> None:
    for k, v in mem.items():
        res["rss_%s_%s" % (name, k)] = v


def _enter(res: Dict[str, object], out: Channel, phase: str) -> None:
    """Start ``phase``: recorded in the result and announced on the progress channel, so an
    agent killed by a signal in it is reported in the phase that was running."""
    res["phase"] = phase
    out.progress({"running": phase})


def _steady(job: Dict[str, object], adapter, inputs, meter: PhaseMeter,
            res: Dict[str, object], first):
    """The timed loop until min_iterations and min_seconds are both met; the last output."""
    min_iters = int(job.get("min_iterations", 1))
    min_ns = int(float(job.get("min_seconds", 0.0)) * 1e9)
    max_iters = int(job.get("max_iterations", 100000))
    samples: List[int] = []
    load = CpuLoad(int(job["threads"]))
    meter.start()
    load.start()
    perf = time.perf_counter_ns
    loop_start = perf()
    last = first
    while len(samples) < max_iters:
        t0 = perf()
        last = adapter.run(inputs)
        t1 = perf()
        samples.append(t1 - t0)
        if len(samples) >= min_iters and t1 - loop_start >= min_ns:
            break
    timed_ns = perf() - loop_start
    res.update(load.end())
    _phase(res, "steady", meter.end())
    res["latency_ms"] = [_ms(s) for s in samples]
    res["iterations"] = len(samples)
    res["timed_s"] = timed_ns / 1e9
    return last


def _sustained(job: Dict[str, object], adapter, inputs, meter: PhaseMeter,
               res: Dict[str, object]):
    """The model back to back for sustained_s seconds: ``latency_ms`` holds one median per
    window of at least a second (sustained.run), ``sustained`` the windows with temperature
    and frequency, ``throttle_ratio`` the last minute's median over the first's (first and
    last quarter under 120 s). The last output."""
    seconds = float(job["sustained_s"])
    load = CpuLoad(int(job["threads"]))
    meter.start()
    load.start()
    windows, total, last, elapsed = sustained.run(lambda: adapter.run(inputs), seconds)
    res.update(load.end())
    _phase(res, "steady", meter.end())
    res["latency_ms"] = [float(w["latency_ms"]) for w in windows]
    res["iterations"] = total
    res["timed_s"] = elapsed / 1e9
    res["sustained_s"] = seconds
    res["sustained"] = windows
    res["throttle_ratio"], res["throttle_window_s"] = sustained.throttle_ratio(windows, seconds)
    return last


def measure(job: Dict[str, object], out: Channel, res: Dict[str, object]) -> None:
    """Run the measurement ``job`` and fill ``res`` (status, phases, latencies, outputs).

    Raises what the run raised (``Unsupported``, ``Corrupt``, ``MemoryError``, any engine
    error) after recording what was measured so far; the caller turns it into a status.
    """
    from . import sysinfo

    res["agent_pid"] = os.getpid()
    res.update(sysinfo.static_info(job.get("state_dir")))
    # before anything is measured: the wait is no part of the measurement's temperatures
    res["phase"] = "cooldown"
    res.update(cool_down(job.get("cooldown")))
    start_dyn = sysinfo.dynamic_info()
    res.update({k + "_start": v for k, v in start_dyn.items()})
    meter = PhaseMeter()
    res["rss_process_start_peak_kb"] = meter.process_peak_kb
    adapter = None
    notes: List[str] = []
    try:
        res["phase"] = "pin"
        # before numpy and the engine are imported: every thread they start (numpy's BLAS
        # pool, the engine's workers) inherits the mask
        pinned = cores.pin(str(job.get("cores") or "all"), int(job["threads"]))
        notes += pinned.pop("notes")
        res.update(pinned)
        # the machine's own state, on the pinned CPUs, before any engine thread exists
        res["core_to_core_ns_start"] = corelatency.probe()
        import numpy as np

        from . import outputs as outm
        from .engines import load_adapter
        res["phase"] = "verify"
        verify_files(job)
        _apply_memory_limit(job)
        res["phase"] = "import"
        adapter = load_adapter(str(job["engine"]))(job)
        res["engine_version"] = adapter.version()
        # said at once: a process that dies later still names the engine that ran
        out.progress({"engine_version": res["engine_version"]})
        inputs = [np.load(p) for p in job["inputs"]]
        _enter(res, out, "load")
        meter.start()
        t0 = time.perf_counter_ns()
        _inject(job, "load")
        adapter.load(dict(job["files"]), str(job["backend"]), str(job["precision"]),
                     int(job["threads"]), dict(job.get("options") or {}),
                     [list(s) for s in job.get("input_shapes") or [x.shape for x in inputs]])
        res["load_ms"] = _ms(time.perf_counter_ns() - t0)
        _phase(res, "load", meter.end())
        res["backend"], res["precision"] = adapter.effective_backend, adapter.effective_precision
        out.progress({"phase": "load", "rss_peak_kb": res.get("rss_load_peak_kb")})

        _enter(res, out, "first")
        meter.start()
        t0 = time.perf_counter_ns()
        _inject(job, "first")
        first = adapter.run(inputs)
        res["first_ms"] = _ms(time.perf_counter_ns() - t0)
        _phase(res, "first", meter.end())
        out.progress({"phase": "first", "rss_peak_kb": res.get("rss_first_peak_kb")})

        _enter(res, out, "warmup")
        warm = int(job.get("warmup", 0))
        t0 = time.perf_counter_ns()
        for _ in range(warm):
            adapter.run(inputs)
        res["warmup_ms"] = _ms(time.perf_counter_ns() - t0)
        res["warmup_iterations"] = warm

        _enter(res, out, "steady")
        if job.get("sustained_s"):
            last = _sustained(job, adapter, inputs, meter, res)
        else:
            last = _steady(job, adapter, inputs, meter, res, first)

        _enter(res, out, "outputs")
        # what really ran, where reading it would have disturbed the timed loop
        adapter.inspect()
        res["precision"] = adapter.effective_precision
        refs = [np.load(p) for p in job.get("references") or []]
        descs = []
        for i, arr in enumerate(first):
            d = outm.describe(arr)
            d["name"] = (adapter.output_names[i] if i < len(adapter.output_names) else str(i))
            if i < len(refs):
                d.update(outm.check_output(arr, refs[i]))
            descs.append(d)
        res["outputs"] = descs
        res.update(outm.summarize(descs, len(refs)))
        res["out_deterministic"] = all(
            outm.describe(a)["sha256"] == d["sha256"] for a, d in zip(last, descs))
        fell_back = (adapter.effective_backend != job["backend"]
                     or adapter.effective_precision != job["precision"])
        res["core_to_core_ns_end"] = corelatency.probe()
        res["status"] = Status.FALLBACK if fell_back else Status.OK
        res["phase"] = "done"
    except MemoryError:
        res["rss_last_peak_kb"] = meter.end().get("peak_kb")  # the peak that hit the limit
        raise
    finally:
        if adapter is not None:
            res["backend"] = res.get("backend") or adapter.effective_backend
            res["precision"] = res.get("precision") or adapter.effective_precision
            notes += adapter.notes
            res.update(adapter.details)
            res["core_hint"] = adapter.core_hint or "none: %s has no core-selection option" % (
                adapter.name)
        if res.get("cpu_mask"):
            moved = cores.escaped(str(res["cpu_mask"]))
            if moved:
                notes.append(moved)
        res["notes"] = notes
        meter.end()  # the last window (output checks) counts towards the process peak
        res["rss_process_peak_kb"] = meter.process_peak_kb
        res.update({k + "_end": v for k, v in sysinfo.dynamic_info().items()})
        res["ended_at"] = time.time()
