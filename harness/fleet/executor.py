"""Runs agent processes on a remote host over SSH: push, provision, lock, measure."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shlex
import socket
import tarfile
import time
from pathlib import Path

from ..agentproc import AgentOutcome, outcome_to_result, parse_lines
from ..cache import sha256_file
from ..engines import adapter_class
from .inventory import HostSpec
from .transport import HostBusy, HostIOError, HostUnreachable, SshTransport
from .wheels import NoWheel, download

AGENT_DIR = Path(__file__).resolve().parent.parent.parent / "harness_agent"
AGENT_PKG = "harness_agent"  # the name the agent package has on hosts
# Kill grace after the remote timeout's TERM, then the SSH-level backstop on top of that.
KILL_AFTER_S = 5
SSH_SLACK_S = 30


def agent_tarball() -> tuple[str, bytes]:
    """The agent package as a deterministic tar (sorted, zeroed metadata) and its sha256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(AGENT_DIR.rglob("*.py")):
            data = p.read_bytes()
            info = tarfile.TarInfo(f"{AGENT_PKG}/{p.relative_to(AGENT_DIR).as_posix()}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return hashlib.sha256(raw).hexdigest(), raw


class SshExecutor:
    def __init__(self, spec: HostSpec, owner: str, trust_new_host_key: bool = False,
                 lock_ttl_s: float = 900.0, lock_wait_s: float = 60.0):
        self.spec = spec
        self.name = spec.name
        self.owner = owner
        self.t = SshTransport(spec, trust_new_host_key)
        self.lock_ttl_s, self.lock_wait_s = lock_ttl_s, lock_wait_s
        self.info: dict | None = None
        self.setup_error: str | None = None
        self.transfers: list[dict] = []
        self._blobs: set[str] | None = None
        self._runtimes: dict[tuple[str, str], str] = {}
        self._locked = False

    # -- setup ----------------------------------------------------------------------
    def _py(self, argv: list[str], python: str | None = None, timeout: float = 120):
        env = f"PYTHONPATH={shlex.quote(self.agent_root)} " if hasattr(self, "agent_root") else ""
        return self.t.run([python or self.spec.python] + argv, timeout=timeout, env_prefix=env)

    def _ctl(self, *args: str, timeout: float = 300) -> dict:
        r = self._py(["-m", f"{AGENT_PKG}.hostctl", *args], timeout=timeout)
        out = None
        for line in reversed(r.stdout.strip().splitlines()):
            if line.startswith("{"):
                try:
                    out = json.loads(line)
                    break
                except ValueError:
                    pass
        if out is None:
            out = {"error": (r.stderr or r.stdout).strip()[-300:] or f"exit {r.rc}"}
        if r.rc != 0 or "error" in out:
            raise RuntimeError(out.get("error") or f"hostctl {args[0]} exited {r.rc}")
        return out

    def setup(self, lock: bool = True) -> dict:
        if self.info is not None or self.setup_error is not None:
            if self.setup_error:
                raise (HostBusy if getattr(self, "_busy", False) else HostUnreachable)(
                    self.setup_error)
            return self.info
        try:
            r = self.t.run([self.spec.python, "-c",
                            "import os,sys; print(os.path.abspath(os.path.expanduser(sys.argv[1])))",
                            self.spec.workdir], timeout=60)
            if r.rc != 0:
                raise HostUnreachable(f"{self.name}: {self.spec.python} does not run on the host: "
                                      f"{(r.stderr or r.stdout).strip()[-200:]}")
            self.work = r.stdout.strip().splitlines()[-1]
            self._push_agent()
            if lock:
                self._lock()
            self.info = self._ctl("probe")
        except HostBusy as e:
            self.setup_error = str(e)
            self._busy = True
            raise
        except HostUnreachable as e:
            self.setup_error = str(e)
            raise
        except RuntimeError as e:
            self.setup_error = f"{self.name}: {e}"
            raise HostUnreachable(self.setup_error) from None
        if self.spec.arch and self.info.get("arch") != self.spec.arch:
            self.info["arch_mismatch"] = f"inventory says {self.spec.arch}"
        return self.info

    def _lock(self) -> None:
        try:
            self._ctl("lock", self.work, self.owner, str(self.lock_ttl_s), "0")
        except RuntimeError as e:
            stale = _dead_local_owner(str(e))
            if stale:  # a coordinator of this machine that was killed: take its lock back
                self._ctl("unlock", self.work, stale)
            try:
                self._ctl("lock", self.work, self.owner, str(self.lock_ttl_s),
                          str(self.lock_wait_s), timeout=self.lock_wait_s + 60)
            except RuntimeError as e2:
                raise HostBusy(f"{self.name}: {e2}") from None
        self._locked = True

    def _push_agent(self) -> None:
        sha, raw = agent_tarball()
        self.agent_root = f"{self.work}/agent/{sha[:16]}"
        check = self.t.run(["test", "-f", f"{self.agent_root}/.complete"])
        if check.rc == 0:
            return
        tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"harness-agent-{sha[:16]}.tar"
        tmp.write_bytes(raw)
        self.t.run(["mkdir", "-p", self.agent_root])
        self.t.put(tmp, f"{self.agent_root}/agent.tar")
        self.transfers.append({"host": self.name, "kind": "agent", "name": AGENT_PKG,
                               "bytes": len(raw), "sha256": sha})
        code = ("import sys, tarfile, os; d = sys.argv[1]; "
                "tarfile.open(os.path.join(d, 'agent.tar')).extractall(d); "
                "os.unlink(os.path.join(d, 'agent.tar')); open(os.path.join(d, '.complete'), 'w').close()")
        r = self.t.run([self.spec.python, "-c", code, self.agent_root])
        if r.rc != 0:
            raise HostUnreachable(f"{self.name}: unpacking the agent failed: {r.stderr[-200:]}")

    # -- content-addressed files ------------------------------------------------------
    def push_blob(self, local: Path, kind: str) -> str:
        """Remote path of ``local`` under work/blobs/<sha256>; sent only if not there yet."""
        sha = sha256_file(local)
        if self._blobs is None:
            self._blobs = set(self._ctl("have", f"{self.work}/blobs")["names"])
        remote = f"{self.work}/blobs/{sha}"
        if sha in self._blobs:
            return remote
        tmp = f"{remote}.part"
        self.t.run(["mkdir", "-p", f"{self.work}/blobs"])
        self.t.put(local, tmp)
        # verified on the host before it gets its final name: a torn copy is never used
        self._ctl("verify", tmp, sha)
        self.t.run(["mv", "-f", tmp, remote])
        self._blobs.add(sha)
        self.transfers.append({"host": self.name, "kind": kind, "name": Path(local).name,
                               "bytes": os.path.getsize(local), "sha256": sha})
        return remote

    # -- engine runtimes ------------------------------------------------------------------
    def unsupported(self, engine: str, version: str) -> str | None:
        try:
            self.runtime(engine, version)
        except NoWheel as e:
            return str(e)
        except _NoRuntime as e:
            return str(e)
        return None

    def runtime(self, engine: str, version: str) -> str:
        """The Python on the host that runs (engine, version), provisioning it if needed."""
        key = (engine, version)
        if key in self._runtimes:
            if isinstance(self._runtimes[key], Exception):
                raise self._runtimes[key]
            return self._runtimes[key]
        try:
            py = self._runtime(engine, version)
        except (NoWheel, _NoRuntime) as e:
            self._runtimes[key] = e
            raise
        self._runtimes[key] = py
        return py

    def _runtime(self, engine: str, version: str) -> str:
        info = self.setup()
        have = (info.get("engines") or {}).get(engine, {})
        if version == "installed":
            if "version" in have or engine not in ("mnn", "ncnn"):
                return self.spec.python
            raise _NoRuntime(f"{engine} is not importable with {self.spec.python} on "
                             f"{self.name} ({have.get('error', 'not installed')}); name a version "
                             "to have the harness provision it")
        if have.get("version") == version:
            return self.spec.python
        pkg = adapter_class(engine).PIP_PACKAGE
        wheel = download(pkg, version, info["python_tag"], info["arch"], info.get("glibc"))
        remote_wheel = self.push_blob(wheel, "wheel")
        # pip needs the real wheel file name to install it
        named = f"{self.work}/wheels/{wheel.name}"
        self.t.run(["mkdir", "-p", f"{self.work}/wheels"])
        self.t.run(["cp", "-f", remote_wheel, named])
        env_dir = f"{self.work}/envs/{engine}-{version}-{info['python_tag']}"
        try:
            out = self._ctl("venv", env_dir, named, timeout=900)
        except RuntimeError as e:
            raise _NoRuntime(f"{engine} {version} could not be installed on {self.name}: {e}")
        return out["python"]

    # -- measuring ---------------------------------------------------------------------------
    def where(self, path) -> str:
        return str(path)  # paths are mapped in run_job, after the push

    def run_job(self, job: dict, timeout_s: float) -> dict:
        try:
            self.setup()
            python = self.runtime(job["engine"], job.get("version", "installed"))
        except HostBusy as e:
            return {"status": "host_busy", "error": str(e), "started_at": time.time()}
        except HostUnreachable as e:
            return {"status": "unreachable", "error": str(e), "started_at": time.time()}
        except (NoWheel, _NoRuntime) as e:
            return {"status": "unsupported", "error": str(e), "started_at": time.time()}
        res = self._attempt(job, python, timeout_s)
        if res.get("status") == "corrupt":
            # damaged on the host after the push: send the files again, once
            for sha in (job.get("sha256") or {}).values():
                self._blobs.discard(sha)
            res = self._attempt(job, python, timeout_s)
            if res.get("status") == "corrupt":
                res["error"] = str(res.get("error")) + " (still damaged after a re-push)"
            else:
                res.setdefault("notes", []).append("a damaged file was re-pushed")
        return res

    def _attempt(self, job: dict, python: str, timeout_s: float) -> dict:
        try:
            job = dict(job)
            mapping: dict[str, str] = {}

            def push(p, kind):
                mapping[str(p)] = self.push_blob(Path(p), kind)
                return mapping[str(p)]

            job["files"] = {k: push(v, "model") for k, v in job["files"].items()}
            job["inputs"] = [push(p, "input") for p in job["inputs"]]
            job["references"] = [push(p, "reference") for p in job["references"]]
            job["sha256"] = {mapping.get(p, p): s for p, s in (job.get("sha256") or {}).items()}
            job["state_dir"] = f"{self.work}/state"
            # the job travels in argv (base64: nothing in it can be shell syntax)
            blob = base64.b64encode(json.dumps(job).encode()).decode()
            # setsid: a new process group, so that timeout's signal reaches the whole group
            # (engine threads, children), which closing the SSH channel would not; --wait
            # because setsid forks when it already leads a group, and the exit status must be
            # the command's.
            argv = ["setsid", "--wait", "timeout", "-k", str(KILL_AFTER_S),
                    str(int(timeout_s) + 1), python, "-m", AGENT_PKG, "--b64", blob]
            t0 = time.monotonic()
            r = self.t.run(argv, timeout=timeout_s + KILL_AFTER_S + SSH_SLACK_S,
                           env_prefix=f"PYTHONPATH={shlex.quote(self.agent_root)} ")
            elapsed = time.monotonic() - t0
        except HostIOError as e:
            return {"status": "host_error", "error": str(e), "started_at": time.time()}
        except HostUnreachable as e:
            self.setup_error = str(e)
            return {"status": "unreachable", "error": str(e), "started_at": time.time()}
        result, progress = parse_lines(r.stdout)
        if result is None and not self.t.alive():
            # the host went away under the measurement: infrastructure, not an engine failure
            self.setup_error = (f"{self.name}: connection lost during a measurement "
                                f"(exit {r.rc}); {r.stderr.strip()[-200:]}")
            return {"status": "unreachable", "error": self.setup_error,
                    "started_at": time.time()}
        # timeout exits 124 (TERM sufficed) or 137 (KILL after the grace); a 137 well before the
        # deadline is the kernel's OOM killer.
        timed_out = result is None and (r.rc == 124 or (r.rc == 137 and elapsed >= timeout_s))
        return outcome_to_result(AgentOutcome(result, progress, None if timed_out else
                                              (-9 if r.rc == 137 else r.rc), timed_out,
                                              r.stderr[-2000:]), timeout_s)

    def close(self) -> None:
        try:
            if self._locked:
                self._ctl("unlock", self.work, self.owner)
        except Exception:
            pass  # the lock expires on its own
        self.t.close()


class _NoRuntime(Exception):
    pass


def _dead_local_owner(message: str) -> str | None:
    """The owner named in a 'locked by HOST:PID:RUN' message if it is a dead process here."""
    import re
    m = re.search(r"locked by (\S+):(\d+):(\S+) until", message)
    if not m or m.group(1) != socket.gethostname():
        return None
    try:
        os.kill(int(m.group(2)), 0)
        return None
    except ProcessLookupError:
        return f"{m.group(1)}:{m.group(2)}:{m.group(3)}"
    except PermissionError:
        return None


def default_owner(run_id: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{run_id}"
