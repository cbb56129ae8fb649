"""The agent on this machine (the embedded default): a fresh process per job."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..fleet.transport import HostBusy, HostIOError
from .base import AgentExit, Executor, NoRuntime
from .lease import acquire, local_ctl

# the directory that holds the harness_agent package, for the agent's PYTHONPATH
PKG_PARENT = str(Path(__file__).resolve().parent.parent.parent)


def _join_cgroup(path: str):
    def join() -> None:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    return join


def local_workdir() -> str:
    """This machine's work directory as a device: where its lease (``lock``) lives.
    HARNESS_LOCAL_WORKDIR, else ``local`` in the cache directory; coordinators that share it
    take turns measuring."""
    from ..cache import cache_root
    d = os.environ.get("HARNESS_LOCAL_WORKDIR") or str(cache_root() / "local")
    os.makedirs(d, exist_ok=True)
    return os.path.abspath(d)


class LocalExecutor(Executor):
    """Runs each job as ``python -m harness_agent MODE`` in a new session on this machine; on
    timeout the whole process group is killed. A job's ``cgroup`` key (a memory cgroup
    directory) puts the agent in that cgroup (tests, boards with a memory budget).

    With an ``owner`` (a coordinator run), this machine is leased as an SSH host is
    (``local_workdir()/lock``, the same hostctl code): a second run waits up to
    ``lock_wait_s`` seconds for it, then its jobs are ``host_busy``.

    Files are used where they are (``push`` is the identity); an engine version this Python
    lacks is installed into a cached virtual environment from the engine's wheel.
    """

    name = "local"
    local = True

    def __init__(self, python: str | None = None, owner: str | None = None,
                 lock_ttl_s: float = 900.0, lock_wait_s: float = 60.0,
                 sources: dict | None = None):
        super().__init__(sources)
        self.python = python or sys.executable
        self.owner = owner
        self.lock_ttl_s, self.lock_wait_s = lock_ttl_s, lock_wait_s
        self.work: str | None = None  # set once the lease is held
        self._info: dict | None = None
        self._busy: HostBusy | None = None

    def setup(self) -> dict:
        """This machine's probe; with an owner, take the lease first. Raises HostBusy, and
        again on every later call."""
        if self._busy is not None:
            raise self._busy
        if self._info is None:
            if self.owner and self.work is None:
                work = local_workdir()
                try:
                    acquire(local_ctl, work, self.owner, self.lock_ttl_s, self.lock_wait_s,
                            self.name)
                except HostBusy as e:
                    self._busy = e
                    raise
                self.work = work
            from harness_agent.hostctl import probe
            self._info = probe()
        return self._info

    def runtime(self, engine: str, version: str) -> str:
        if self.owner:
            self.setup()  # a machine another run holds fails fast: host_busy
        return super().runtime(engine, version)

    def close(self) -> None:
        if self.work is not None:
            release_local(self.owner)
            self.work = None

    # -- engine runtimes ------------------------------------------------------------------------
    def _find_runtime(self, engine: str, version: str) -> str:
        """This Python when it has ``version`` of the engine installed ("installed": any),
        else a virtual environment provisioned from the engine's wheel. Raises NoRuntime."""
        from ..engines import adapter_class
        if (engine, version) in self.sources:
            from ..cache import cache_root
            wheel = self.built_wheel(engine, version)
            return provision_venv(cache_root() / "envs" / self.builds[(engine, version)]["key"],
                                  [wheel], f"{engine} {version}")
        dist = adapter_class(engine).PIP_PACKAGE
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if version in ("installed", installed):
            if not installed:
                raise NoRuntime(f"{dist} is not installed on this machine")
            return self.python
        return self._provision(dist, engine, version)

    def _provision(self, dist: str, engine: str, version: str) -> str:
        import platform

        from ..cache import cache_root
        from ..fleet.wheels import NoWheel, download
        tag = "cp%d%d" % sys.version_info[:2]
        try:
            wheel = download(dist, version, tag, platform.machine(), platform.libc_ver()[1])
        except NoWheel as e:
            raise NoRuntime(str(e)) from None
        return provision_venv(cache_root() / "envs" / f"{engine}-{version}-{tag}", [wheel],
                              f"{engine} {version}")

    def build_target(self):
        from ..builds.target import this_python_target
        return this_python_target()

    # -- files ------------------------------------------------------------------------------------
    def push(self, path: str | Path, kind: str) -> str:
        return str(path)

    def device_dir(self, name: str) -> str:
        from ..cache import cache_root
        d = cache_root() / "device" / name
        d.mkdir(parents=True, exist_ok=True)
        return str(d)

    def remove_device_dir(self, name: str) -> None:
        from ..cache import cache_root
        shutil.rmtree(cache_root() / "device" / name, ignore_errors=True)

    # -- the agent process ----------------------------------------------------------------------
    def _launch(self, python: str, mode: str, job: dict, timeout_s: float) -> AgentExit:
        job = dict(job)
        cgroup = job.pop("cgroup", None)
        if self.work is not None:  # renewed by the agent, which records its process group
            job["lease"] = {"dir": self.work, "owner": self.owner,
                            "ttl_s": self.lock_ttl_s + timeout_s}
        env = dict(os.environ)
        env["PYTHONPATH"] = PKG_PARENT + os.pathsep + env.get("PYTHONPATH", "")
        blob = base64.b64encode(json.dumps(job).encode()).decode()
        t0 = time.monotonic()
        try:
            p = subprocess.Popen([python, "-m", "harness_agent", mode, "--b64", blob],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env, start_new_session=True,
                                 preexec_fn=_join_cgroup(cgroup) if cgroup else None)
        except OSError as e:  # no such Python here: this machine's failure, not the engine's
            raise HostIOError(f"local: the agent could not start: {python}: "
                              f"{e.strerror or e}") from None
        try:
            out, err = p.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the whole session: engine threads, children
            out, err = p.communicate()
        rc = p.returncode if p.returncode >= 0 else 128 - p.returncode
        return AgentExit(rc, out, err[-2000:], time.monotonic() - t0)


def release_local(owner: str) -> dict:
    """Kill what measures under ``owner``'s lease of this machine and release the lease (a
    coordinator leaving, its worker gone or not); hostctl.unlock's answer, never raises."""
    try:
        return local_ctl("unlock", local_workdir(), owner)
    except Exception as e:  # noqa: BLE001 - the lease expires on its own
        return {"ok": False, "error": str(e)}


def provision_venv(env_dir: Path, wheels: list, what: str) -> str:
    """The Python of a virtual environment at ``env_dir`` with ``wheels`` installed (made
    once, through ``hostctl.venv`` in this process). Raises NoRuntime with the reason."""
    from harness_agent.hostctl import HostctlError, venv
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        return venv(str(env_dir), [str(w) for w in wheels])["python"]
    except HostctlError as e:
        raise NoRuntime(f"{what} could not be installed in {env_dir}: {e}") from None
