"""Runs agent processes on this machine (the embedded local default)."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .agentproc import AgentOutcome, outcome_to_result, parse_lines

PKG_PARENT = str(Path(__file__).resolve().parent.parent)


class _NoRuntime(Exception):
    pass


def spawn_agent(python: str, module: str, job: dict, timeout_s: float,
                cgroup: str | None = None) -> dict:
    """Run ``python -m module --b64 JOB`` as a fresh process in its own session and return its
    result (or one that says why there is none). On timeout the whole process group dies."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    blob = base64.b64encode(json.dumps(job).encode()).decode()
    p = subprocess.Popen([python, "-m", module, "--b64", blob], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
                         preexec_fn=_join_cgroup(cgroup) if cgroup else None)
    timed_out = False
    try:
        out, err = p.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
    result, progress = parse_lines(out)
    return outcome_to_result(AgentOutcome(result, progress, p.returncode, timed_out,
                                          err[-2000:]), timeout_s)


def _join_cgroup(path: str):
    def join() -> None:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    return join


class LocalExecutor:
    name = "local"

    def __init__(self, python: str | None = None):
        self.python = python or sys.executable
        self._runtimes: dict = {}

    def unsupported(self, engine: str, version: str) -> str | None:
        """Why this machine cannot run (engine, version), or None."""
        try:
            self.runtime(engine, version)
        except _NoRuntime as e:
            return str(e)
        return None

    def runtime(self, engine: str, version: str) -> str:
        """The Python that runs (engine, version): this one when it has that version
        installed, else a virtual environment provisioned from the engine's wheel."""
        from .engines import adapter_class
        key = (engine, version)
        if key not in self._runtimes:
            dist = adapter_class(engine).PIP_PACKAGE
            try:
                installed = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                installed = None
            if version in ("installed", installed):
                self._runtimes[key] = (self.python if installed else
                                       _NoRuntime(f"{dist} is not installed on this machine"))
            else:
                self._runtimes[key] = self._provision(dist, engine, version)
        rt = self._runtimes[key]
        if isinstance(rt, Exception):
            raise rt
        return rt

    def _provision(self, dist: str, engine: str, version: str):
        import platform
        import sys as _sys

        from harness_agent.hostctl import venv
        from .cache import cache_root
        from .fleet.wheels import NoWheel, download
        tag = "cp%d%d" % _sys.version_info[:2]
        try:
            wheel = download(dist, version, tag, platform.machine(), platform.libc_ver()[1])
        except NoWheel as e:
            return _NoRuntime(str(e))
        env_dir = cache_root() / "envs" / f"{engine}-{version}-{tag}"
        env_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            return venv(str(env_dir), [str(wheel)])["python"]
        except SystemExit:
            return _NoRuntime(f"{engine} {version} could not be installed in {env_dir}")

    def where(self, path) -> str:
        return str(path)

    def setup(self) -> dict:
        from harness_agent.hostctl import probe
        return probe()

    transfers: list = []

    def close(self) -> None:
        pass

    def run_job(self, job: dict, timeout_s: float) -> dict:
        try:
            python = self.runtime(job["engine"], job.get("version", "installed"))
        except _NoRuntime as e:
            return {"status": "unsupported", "error": str(e)}
        job = dict(job)
        cgroup = job.pop("cgroup", None)  # a memory cgroup to run the agent in (tests, boards)
        return spawn_agent(python, "harness_agent", job, timeout_s, cgroup)
