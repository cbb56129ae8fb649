"""Runs agent processes on this machine (the embedded local default)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .agentproc import AgentOutcome, outcome_to_result, parse_lines

PKG_PARENT = str(Path(__file__).resolve().parent.parent)


def _join_cgroup(path: str):
    def join() -> None:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    return join


class LocalExecutor:
    name = "local"

    def __init__(self, python: str | None = None):
        self.python = python or sys.executable

    def unsupported(self, engine: str, version: str) -> str | None:
        """Why this host cannot run (engine, version), or None. Locally the engine that runs is
        the one installed beside the harness."""
        from .engines import adapter_class
        dist = adapter_class(engine).PIP_PACKAGE
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return f"{dist} is not installed on this machine"
        if version not in ("installed", installed):
            return f"{engine} {version} requested, {installed} installed here"
        return None

    def where(self, path) -> str:
        return str(path)

    def setup(self) -> dict:
        from .agent.hostctl import probe
        return probe()

    transfers: list = []

    def close(self) -> None:
        pass

    def run_job(self, job: dict, timeout_s: float) -> dict:
        reason = self.unsupported(job["engine"], job.get("version", "installed"))
        if reason:
            return {"status": "unsupported", "error": reason}
        job = dict(job)
        cgroup = job.pop("cgroup", None)  # a memory cgroup to run the agent in (tests, boards)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(job, f)
            job_path = f.name
        env = dict(os.environ)
        env["PYTHONPATH"] = PKG_PARENT + os.pathsep + env.get("PYTHONPATH", "")
        try:
            # A new session: on timeout the whole process group (engine threads, helpers) dies.
            p = subprocess.Popen([self.python, "-m", "harness.agent", job_path],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env, start_new_session=True,
                                 preexec_fn=_join_cgroup(cgroup) if cgroup else None)
            timed_out = False
            try:
                out, err = p.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(p.pid, signal.SIGKILL)
                out, err = p.communicate()
            result, progress = parse_lines(out)
            o = AgentOutcome(result, progress, p.returncode, timed_out, err[-2000:])
            return outcome_to_result(o, timeout_s)
        finally:
            os.unlink(job_path)
