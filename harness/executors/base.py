"""The executor interface: where and how the agent runs, and what its exit means.

An executor owns one device (this machine, or one SSH host). Everything that runs the agent,
measurement, diagnosis and profile alike, goes through ``Executor.run_agent`` (or ``submit``,
which pushes the job's files first), so the agent is launched, its lines parsed and a
result-less exit classified in one way. Implementations differ only in how they launch the
agent process (``_launch``) and how a coordinator file reaches the device (``push``).
"""

from __future__ import annotations

import json
import re
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from harness_agent.fdcapture import relevant_lines
from harness_agent.protocol import PROGRESS_MARKER, RESULT_MARKER, STARTED

from ..engines import adapter_class
from ..errors import HarnessError
from ..fleet.transport import HostBusy, HostIOError, HostUnreachable
from ..status import Status
from ..terminal import strip_escapes


class NoRuntime(HarnessError):
    """This device cannot run the engine version asked for (not installed, no wheel for its
    platform, or the install failed); the message says which."""


class NoBuild(NoRuntime):
    """The engine version asked for is a source that did not build for this device (the
    compiler's words, or the toolchain or headers that are missing): status build_error."""


@dataclass
class AgentExit:
    """How one agent process ended, as the shell reports it.

    ``rc``: the exit status in shell convention (128 + N when signal N killed the process; 124
    when ``timeout`` stopped it with TERM); ``elapsed_s``: wall seconds from launch to exit.
    """

    rc: int
    stdout: str
    stderr: str
    elapsed_s: float


def parse_lines(stdout: str) -> tuple[dict | None, list[dict]]:
    """The agent's result (None when it wrote none) and its progress lines, in order."""
    result, progress = None, []
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER):])
        elif line.startswith(PROGRESS_MARKER):
            progress.append(json.loads(line[len(PROGRESS_MARKER):]))
    return result, progress


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def plain_cause(text: str, limit: int = 300) -> str:
    """The last non-empty line of ``text`` (where a traceback or a shell puts the cause),
    without terminal escape codes, at most ``limit`` characters."""
    lines = [ln.strip() for ln in strip_escapes(text or "").splitlines() if ln.strip()]
    return lines[-1][-limit:] if lines else ""


def no_result(ex: AgentExit, progress: list[dict], timeout_s: float,
              noise: tuple[str, ...] = ()) -> dict:
    """The result for an agent that exited without a result line: timeout, host_error, OOM
    or error, decided from what failed.

    An agent that never said it started (its first progress line, STARTED) did not get to run
    any engine code: its Python, its package or numpy is missing or broken on the host (or the
    host is too slow to start it within the deadline), a host failure (host_error, measured
    again on resume) with the cause as the host said it. ``timeout`` exits 124 when TERM
    sufficed and 137 when it had to KILL after the grace. A SIGKILL (137) well before the deadline is the kernel's OOM killer (or a memory cgroup).
    Any other signal is a crash of the agent (an engine fault): status error, naming it and
    the phase that was running. ``noise``: regular expressions of stderr lines that say
    nothing about a failure (an engine's device banner), left out of the error.
    """
    def last(key):
        return next((p[key] for p in reversed(progress) if p.get(key)), None)

    last_peak = last("rss_peak_kb")
    # "phase" lines say a phase completed, "running" lines that one started
    phase = last("phase") or "start"
    running = last("running") or phase
    known = {"rss_last_peak_kb": last_peak, "phase": running}
    if last("engine_version"):
        known["engine_version"] = last("engine_version")
    timed_out = ex.rc == 124 or (ex.rc == 137 and ex.elapsed_s >= timeout_s)
    if STARTED not in progress:
        why = (f"did not start within {timeout_s:g} s; process group killed" if timed_out else
               f"could not start (exit {ex.rc}): {plain_cause(ex.stderr) or 'no message'}")
        return {"status": Status.HOST_ERROR.value, **known, "error": f"the agent {why}"}
    if timed_out:
        return {"status": Status.TIMEOUT.value, **known,
                "error": f"no result within {timeout_s:g} s (last phase: {phase}); "
                         "process group killed"}
    if ex.rc == 137:
        return {"status": Status.OOM.value, **known,
                "error": f"agent killed by SIGKILL after phase {phase} (out of memory)"}
    how = (f"killed by {_signal_name(ex.rc - 128)} in phase {running}; "
           if 128 < ex.rc < 128 + 65 else "")
    return {"status": Status.ERROR.value, **known,
            "error": f"agent exited {ex.rc} without a result ({how}last phase: {phase}): "
                     f"{relevant_lines(ex.stderr, noise)[-400:]}"}



_KILLED = re.compile(r"killed by (SIG[A-Z0-9]+)(?: in phase (.+?))?;")


def crash_signal(error: str) -> tuple[str, str] | None:
    """(signal, where) from a no_result error text ("killed by SIGSEGV in phase first; ..."):
    ``where`` is the phase or "layer NAME (TYPE)" that was running, '' when not said. None
    when no signal killed the agent."""
    m = _KILLED.search(" ".join(str(error).split()))
    return (m.group(1), m.group(2) or "") if m else None


def infra_result(e: Exception) -> dict:
    """The result for a job that never got to run because of the device or the connection."""
    status = (Status.HOST_BUSY if isinstance(e, HostBusy) else
              Status.HOST_ERROR if isinstance(e, HostIOError) else
              Status.BUILD_ERROR if isinstance(e, NoBuild) else
              Status.UNSUPPORTED if isinstance(e, NoRuntime) else Status.UNREACHABLE)
    return {"status": status.value, "error": str(e), "started_at": time.time()}


INFRA_ERRORS = (NoRuntime, HostBusy, HostIOError, HostUnreachable)


class Executor(ABC):
    """One device that runs agent jobs, one at a time.

    ``name``: the host's name ("local" for this machine). ``local``: True when the device's
    paths are paths on this machine (a file it writes can be read here directly).
    ``transfers``: one dict per file sent to the device (host, kind, name, bytes, sha256).
    """

    name: str = "device"
    local: bool = False

    def __init__(self, sources: dict | None = None) -> None:
        self.transfers: list[dict] = []
        # (engine, version) -> the Python that runs it, or why there is none (asked once)
        self._runtimes: dict[tuple[str, str], str | NoRuntime] = {}
        # (engine, version label) -> EngineSource: versions this executor builds from source
        self.sources: dict = dict(sources or {})
        # (engine, version label) -> the build's info (build.json) once built or found
        self.builds: dict[tuple[str, str], dict] = {}

    # -- what implementations provide ---------------------------------------------------------
    @abstractmethod
    def setup(self) -> dict:
        """Connect, lock and probe the device; its host info (``hostctl.probe``). Raises
        HostUnreachable or HostBusy."""

    def runtime(self, engine: str, version: str) -> str:
        """The Python on the device that runs ``engine`` at ``version`` ("installed": whatever
        the device has), provisioning it when needed; found once per executor, the answer (or
        the NoRuntime) kept. Raises NoRuntime."""
        key = (engine, version)
        if key not in self._runtimes:
            try:
                self._runtimes[key] = self._find_runtime(engine, version)
            except NoRuntime as e:
                self._runtimes[key] = e
        rt = self._runtimes[key]
        if isinstance(rt, NoRuntime):
            raise rt
        return rt

    @abstractmethod
    def _find_runtime(self, engine: str, version: str) -> str:
        """runtime() without the memo: find or provision it. Raises NoRuntime."""

    def build_target(self):
        """The harness.builds BuildTarget of this device (its architecture, Python and the
        headers to compile its Python modules against). Raises NoBuild."""
        raise NoBuild(f"{self.name}: this device cannot have engines built for it")

    def built_wheel(self, engine: str, version: str) -> Path:
        """The wheel of the source build named ``version`` for this device, built now or found
        in the build cache. Raises NoBuild (with the compiler's words)."""
        from ..builds.build import BuildFailed, build, build_key
        from ..builds.source import SourceError
        source = self.sources[(engine, version)]
        info = self.setup()
        target_key = f"{info['arch']}-{info['python_tag']}"
        try:  # what a failed build's rows say of it too
            self.builds[(engine, version)] = {"target": target_key,
                                              "key": build_key(source, target_key)}
        except SourceError as e:
            raise NoBuild(str(e)) from None
        try:
            b = build(source, target_key, self.build_target)
        except (BuildFailed, SourceError) as e:
            raise NoBuild(str(e)) from None
        self.builds[(engine, version)] = b.info
        return b.wheel

    def build_fields(self, engine: str, version: str) -> dict:
        """The row's build columns for (engine, version): empty for wheels."""
        source = self.sources.get((engine, version))
        if source is None:
            return {}
        try:
            identity = source.identity()
        except HarnessError:
            identity = None
        b = self.builds.get((engine, version)) or {}
        opts = dict(source.options(), target=b.get("target"), build_key=b.get("key"))
        return {"engine_build": source.name, "engine_source": identity,
                "engine_build_options": json.dumps(opts, sort_keys=True)}

    @abstractmethod
    def push(self, path: str | Path, kind: str) -> str:
        """Make a coordinator file available to the agent; the path the agent sees.

        ``kind`` (model, input, reference, ...) labels the transfer. Raises HostIOError or
        HostUnreachable."""

    def forget(self, path: str | Path) -> None:
        """The next ``push(path)`` sends the file again (its copy was found damaged)."""

    @abstractmethod
    def device_dir(self, name: str) -> str:
        """A directory on the device for files the device writes (e.g. a diagnosis's layer
        dumps), created if needed; ``remove_device_dir(name)`` removes it."""

    @abstractmethod
    def remove_device_dir(self, name: str) -> None:
        """Remove ``device_dir(name)`` and what is in it (best effort, never raises)."""

    @abstractmethod
    def _launch(self, python: str, mode: str, job: dict, timeout_s: float) -> AgentExit:
        """Run ``python -m harness_agent MODE`` on ``job`` as a fresh process group that is
        killed at ``timeout_s``; how it ended. Raises the INFRA_ERRORS."""

    def close(self) -> None:
        """Release the device (lock, connection)."""

    # -- running the agent -------------------------------------------------------------------
    def _failure(self, e: Exception) -> dict:
        return infra_result(e)

    def run_agent(self, mode: str, job: dict, timeout_s: float) -> dict:
        """Run the agent in ``mode`` on ``job`` (whose paths are already device paths).

        Returns the agent's result dict, or one with a ``status`` saying why there is none:
        unsupported (no runtime), unreachable, host_busy, host_error, timeout, oom, error.
        """
        try:
            python = self.runtime(job["engine"], job.get("version", "installed"))
            ex = self._launch(python, mode, job, timeout_s)
        except INFRA_ERRORS as e:
            return self._failure(e)
        result, progress = parse_lines(ex.stdout)
        if result is not None:
            return result
        return no_result(ex, progress, timeout_s, adapter_class(job["engine"]).LOG_NOISE)

    def push_job(self, job: dict, also: Iterable[str] = ()) -> dict:
        """A copy of ``job`` whose coordinator paths (files, inputs, references and the keys
        named in ``also``) are replaced by the paths the agent sees; ``sha256`` follows."""
        job = dict(job)
        mapping: dict[str, str] = {}

        def put(p, kind: str) -> str:
            mapping[str(p)] = self.push(p, kind)
            return mapping[str(p)]

        job["files"] = {k: put(v, "model") for k, v in job["files"].items()}
        job["inputs"] = [put(p, "input") for p in job["inputs"]]
        if "references" in job:
            job["references"] = [put(p, "reference") for p in job["references"] or []]
        for k in also:
            if job.get(k):
                job[k] = put(job[k], "reference")
        if job.get("sha256"):
            job["sha256"] = {mapping.get(p, p): s for p, s in job["sha256"].items()}
        return job

    def submit(self, mode: str, job: dict, timeout_s: float, also: Iterable[str] = ()) -> dict:
        """Push the files of ``job`` (coordinator paths; see push_job) and run the agent.

        A file the agent finds damaged (status corrupt) is pushed again and the job rerun,
        once. Returns what run_agent returns, with the build columns of a version built from
        source (build_fields).
        """
        res = self._submit(mode, job, timeout_s, also)
        res.update(self.build_fields(job["engine"], job.get("version", "installed")))
        return res

    def _submit(self, mode: str, job: dict, timeout_s: float, also: Iterable[str]) -> dict:
        try:  # before any push: a device that cannot run the job gets no files
            self.runtime(job["engine"], job.get("version", "installed"))
        except INFRA_ERRORS as e:
            return self._failure(e)
        res = self._push_and_run(mode, job, timeout_s, also)
        if res.get("status") == Status.CORRUPT:
            # damaged on the device after the push: send the files again, once
            for p in job.get("sha256") or {}:
                self.forget(p)
            res = self._push_and_run(mode, job, timeout_s, also)
            if res.get("status") == Status.CORRUPT:
                res["error"] = str(res.get("error")) + " (still damaged after a re-push)"
            else:
                res.setdefault("notes", []).append("a damaged file was re-pushed")
        return res

    def _push_and_run(self, mode: str, job: dict, timeout_s: float,
                      also: Iterable[str]) -> dict:
        try:
            pushed = self.push_job(job, also)
        except INFRA_ERRORS as e:
            return self._failure(e)
        return self.run_agent(mode, pushed, timeout_s)

    def measure(self, job: dict, timeout_s: float) -> dict:
        """One measurement (``build_job``'s job, coordinator paths): see submit."""
        return self.submit("measure", job, timeout_s)
