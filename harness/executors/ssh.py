"""The agent on a remote host over SSH: lock, push (agent, content-addressed files, wheels),
provision engine versions, launch under ``setsid``/``timeout``."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import secrets
import shlex
import signal
import tarfile
import time
from pathlib import Path

from harness_agent.protocol import RESULT_MARKER

from ..cache import sha256_file
from ..engines import adapter_class
from ..fleet.inventory import HostSpec
from ..fleet.transport import HostBusy, HostIOError, HostUnreachable, SshTransport
from ..fleet.wheels import NoWheel, download
from .base import AgentExit, Executor, NoBuild, NoRuntime, plain_cause
from .lease import HostctlFailed, acquire, default_owner

__all__ = ["SshExecutor", "HostctlFailed", "default_owner", "agent_tarball"]

AGENT_DIR = Path(__file__).resolve().parent.parent.parent / "harness_agent"
AGENT_PKG = "harness_agent"  # the name the agent package has on hosts
# Kill grace after the remote timeout's TERM, then the SSH-level backstop on top of that.
KILL_AFTER_S = 5
SSH_SLACK_S = 30


# How an OSError reads in a hostctl answer ("OSError: [Errno 28] No space left on device").
_OS_ERROR = re.compile(r"\[Errno \d+\]")


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


# Run on the host: DEST SHA256 TARBALL. Verifies the upload, unpacks it privately, renames the
# copy into place (a rename that loses to another coordinator's leaves theirs), removes the
# upload. Python 3.9+, stdlib only.
_UNPACK_AGENT = """
import hashlib, os, shutil, sys, tarfile, tempfile
dest, sha, src = sys.argv[1:4]
h = hashlib.sha256()
with open(src, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
        h.update(chunk)
try:
    if h.hexdigest() != sha:
        sys.exit('agent tarball sha256 %s, expected %s' % (h.hexdigest(), sha))
    if not os.path.exists(os.path.join(dest, '.complete')):
        tmp = tempfile.mkdtemp(dir=os.path.dirname(dest), prefix='.unpack-')
        try:
            with tarfile.open(src) as tar:
                for m in tar.getmembers():
                    if not m.isfile() or m.name.startswith('/') or '..' in m.name.split('/'):
                        sys.exit('unexpected member in the agent tarball: %r' % m.name)
                tar.extractall(tmp)
            open(os.path.join(tmp, '.complete'), 'w').close()
            if os.path.isdir(dest) and not os.path.exists(os.path.join(dest, '.complete')):
                # a copy an interrupted setup left half made: move it out of the way
                stale = tempfile.mkdtemp(dir=os.path.dirname(dest), prefix='.stale-')
                try:
                    os.rename(dest, os.path.join(stale, 'old'))
                except OSError:
                    pass
                shutil.rmtree(stale, ignore_errors=True)
            try:
                os.rename(tmp, dest)
            except OSError:
                if not os.path.exists(os.path.join(dest, '.complete')):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
finally:
    os.unlink(src)
"""


class SshExecutor(Executor):
    """One inventory host over one SSH connection.

    ``setup`` resolves the host's work directory, pushes the agent (once per agent version),
    takes the host's lock for ``owner`` and probes the host. Files are pushed once, by
    content, to ``WORK/blobs/<sha256>`` and verified there before they get their final name.
    """

    def __init__(self, spec: HostSpec, owner: str, trust_new_host_key: bool = False,
                 lock_ttl_s: float = 900.0, lock_wait_s: float = 60.0,
                 sources: dict | None = None):
        super().__init__(sources)
        self.spec = spec
        self.name = spec.name
        self.owner = owner
        self.t = SshTransport(spec, trust_new_host_key)
        self.lock_ttl_s, self.lock_wait_s = lock_ttl_s, lock_wait_s
        self.info: dict | None = None
        self.setup_error: str | None = None
        # what kind of failure setup was (HostUnreachable, HostBusy, HostIOError): every later
        # job on the host fails the same way at once
        self.setup_failure: type[Exception] = HostUnreachable
        self.busy = False  # setup failed because another coordinator holds the host
        self.work: str | None = None  # the host's work directory, absolute
        self.agent_root: str | None = None  # the unpacked agent on the host (its PYTHONPATH)
        self._blobs: set[str] | None = None
        self._locked = False

    # -- setup ----------------------------------------------------------------------
    def _py(self, argv: list[str], python: str | None = None, timeout: float = 120):
        env = f"PYTHONPATH={shlex.quote(self.agent_root)} " if self.agent_root else ""
        return self.t.run([python or self.spec.python] + argv, timeout=timeout, env_prefix=env)

    def _ctl(self, *args: str, timeout: float = 300) -> dict:
        """Run ``hostctl VERB ARGS`` on the host; its JSON answer. Raises HostctlFailed, or
        HostUnreachable when the connection died under the call."""
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
        if r.rc != 0 and not self.t.alive():
            raise HostUnreachable(f"{self.name}: connection lost during hostctl {args[0]} "
                                  f"(exit {r.rc})")
        if r.rc != 0 or "error" in out:
            why = str(out.get("error") or f"hostctl {args[0]} exited {r.rc}")
            if _OS_ERROR.search(why):  # the host's filesystem failed: not a refusal
                raise HostIOError(f"{self.name}: hostctl {args[0]} failed on the host: {why}")
            raise HostctlFailed(why, out.get("held_by"))
        return out

    def _must(self, argv: list[str], doing: str) -> None:
        """Run ``argv`` on the host (60 s at most), which must succeed. Raises HostIOError with
        the host's reason (read-only, disk full, permissions), HostUnreachable when the host
        stopped answering."""
        r = self.t.run(argv, timeout=60)
        if r.rc == 0:
            return
        # a host going away fails its commands first (killed: exit -1, 129, 143; or a
        # timeout): only a host still answering has refused the write itself
        if not self.t.alive() or self._lost_after(r.rc):
            raise HostUnreachable(f"{self.name}: the host stopped answering while {doing}")
        raise HostIOError(f"{self.name}: {doing} failed on the host: "
                          f"{plain_cause(r.stderr or r.stdout) or f'exit {r.rc}'}")

    def _mkdir(self, path: str) -> None:
        """``mkdir -p path`` on the host (see _must)."""
        self._must(["mkdir", "-p", path], f"creating {path}")

    def setup(self, lock: bool = True) -> dict:
        """The host's probe (cached); ``lock``: take the host's lock first. Raises
        HostUnreachable or HostBusy, and again on every later call."""
        if self.setup_error is not None:
            raise self.setup_failure(self.setup_error)
        if self.info is not None:
            return self.info
        try:
            self._connect()
            if lock:
                self._lock()
            self.info = self._ctl("probe")
        except (HostBusy, HostUnreachable, HostIOError) as e:
            self.setup_error, self.setup_failure = str(e), type(e)
            self.busy = isinstance(e, HostBusy)
            raise
        except HostctlFailed as e:  # the host answered, but the agent's probe failed there
            self.setup_error, self.setup_failure = f"{self.name}: {e}", HostIOError
            raise HostIOError(self.setup_error) from None
        if self.spec.arch and self.info.get("arch") != self.spec.arch:
            self.info["arch_mismatch"] = f"inventory says {self.spec.arch}"
        return self.info

    def _connect(self) -> None:
        """The host's work directory, resolved, and the agent on the host."""
        if self.work is not None and self.agent_root is not None:
            return
        code = "import os,sys; print(os.path.abspath(os.path.expanduser(sys.argv[1])))"
        r = self.t.run([self.spec.python, "-c", code, self.spec.workdir], timeout=60)
        if r.rc != 0:  # reached, but the host cannot run the agent: the host's failure
            raise HostIOError(f"{self.name}: {self.spec.python} does not run on the host: "
                              f"{plain_cause(r.stderr or r.stdout) or f'exit {r.rc}'}")
        self.work = r.stdout.strip().splitlines()[-1]
        self._push_agent()

    def _lock(self) -> None:
        acquire(self._ctl, self.work, self.owner, self.lock_ttl_s, self.lock_wait_s, self.name)
        self._locked = True

    def _push_agent(self) -> None:
        """The agent package on the host under WORK/agent/<sha256[:16]>, unpacked once.

        The tarball is streamed from memory (no coordinator file another local user could
        swap), checked against its sha256 on the host before it is unpacked, and unpacked into
        a private temporary directory renamed into place, so two coordinators setting up the
        same host at once both end with one complete copy."""
        sha, raw = agent_tarball()
        self.agent_root = f"{self.work}/agent/{sha[:16]}"
        check = self.t.run(["test", "-f", f"{self.agent_root}/.complete"], timeout=60)
        if check.rc == 0:
            return
        upload = f"{self.work}/agent/.{sha[:16]}-{secrets.token_hex(6)}.tar"
        self._mkdir(f"{self.work}/agent")
        self.t.put(io.BytesIO(raw), upload)
        self.transfers.append({"host": self.name, "kind": "agent", "name": AGENT_PKG,
                               "bytes": len(raw), "sha256": sha})
        r = self.t.run([self.spec.python, "-c", _UNPACK_AGENT, self.agent_root, sha, upload],
                       timeout=120)
        if r.rc == 124 or (r.rc != 0 and not self.t.alive()):
            raise HostUnreachable(f"{self.name}: connection lost while unpacking the agent "
                                  f"(exit {r.rc})")
        if r.rc != 0:  # reached, but the host could not unpack it (disk full, read-only)
            raise HostIOError(f"{self.name}: unpacking the agent failed: "
                              f"{plain_cause(r.stderr or r.stdout) or f'exit {r.rc}'}")

    # -- content-addressed files ------------------------------------------------------
    def push(self, path: str | Path, kind: str) -> str:
        """Remote path of ``path`` under WORK/blobs/<sha256>; sent only if not there yet.
        Raises HostIOError (the copy failed on the host), HostUnreachable, HostBusy."""
        local = Path(path)
        self.setup()
        sha = sha256_file(local)
        remote = f"{self.work}/blobs/{sha}"
        try:
            if self._blobs is None:
                self._blobs = set(self._ctl("have", f"{self.work}/blobs")["names"])
            if sha in self._blobs:
                return remote
            tmp = f"{remote}.part"
            self._mkdir(f"{self.work}/blobs")
            self.t.put(local, tmp)
            # verified on the host before it gets its final name: a torn copy is never used
            self._ctl("verify", tmp, sha)
        except HostctlFailed as e:
            raise HostIOError(f"{self.name}: pushing {local.name} failed: {e}") from None
        self._must(["mv", "-f", tmp, remote], f"renaming {tmp}")
        self._blobs.add(sha)
        self.transfers.append({"host": self.name, "kind": kind, "name": local.name,
                               "bytes": os.path.getsize(local), "sha256": sha})
        return remote

    def forget(self, path: str | Path) -> None:
        if self._blobs is not None:
            self._blobs.discard(sha256_file(path))

    def device_dir(self, name: str) -> str:
        self.setup()
        d = f"{self.work}/scratch/{name}"
        self._mkdir(d)
        return d

    def remove_device_dir(self, name: str) -> None:
        if self.work is None:
            return
        try:
            self.t.run(["rm", "-rf", f"{self.work}/scratch/{name}"])
        except Exception:  # noqa: BLE001 - best effort: a lost host keeps its scratch files
            pass

    # -- engine runtimes ------------------------------------------------------------------
    def runtime(self, engine: str, version: str) -> str:
        """The Python on the host that runs (engine, version), provisioning it if needed.
        Raises NoRuntime, HostUnreachable, HostBusy."""
        self.setup()  # a host lost since the last job fails fast, before any launch
        return super().runtime(engine, version)

    def _find_runtime(self, engine: str, version: str) -> str:
        info = self.setup()
        have = (info.get("engines") or {}).get(engine, {})
        if version == "installed":
            if "version" in have:
                return self.spec.python
            raise NoRuntime(f"{engine} is not importable with {self.spec.python} on "
                            f"{self.name} ({have.get('error', 'not installed')}); name a version "
                            "to have the harness provision it")
        if (engine, version) in self.sources:
            wheel = self.built_wheel(engine, version)
            env_name = self.builds[(engine, version)]["key"]
        else:
            if have.get("version") == version:
                return self.spec.python
            pkg = adapter_class(engine).PIP_PACKAGE
            try:
                wheel = download(pkg, version, info["python_tag"], info["arch"],
                                 info.get("glibc"))
            except NoWheel as e:
                raise NoRuntime(str(e)) from None
            env_name = f"{engine}-{version}-{info['python_tag']}"
        remote_wheel = self.push(wheel, "wheel")
        # pip needs the real wheel file name to install it
        named = f"{self.work}/wheels/{wheel.name}"
        self._mkdir(f"{self.work}/wheels")
        self._must(["cp", "-f", remote_wheel, named], f"copying {remote_wheel} to {named}")
        env_dir = f"{self.work}/envs/{env_name}"
        try:
            out = self._ctl("venv", env_dir, named, timeout=900)
        except HostctlFailed as e:
            raise NoRuntime(f"{engine} {version} could not be installed on {self.name}: "
                            f"{e}") from None
        return out["python"]

    def build_target(self):
        """This host's BuildTarget: this machine's own Python headers when the host's Python
        is the same kind (architecture and version), else the host's headers, copied from it
        (its ``Python.h``, ``pyconfig.h`` and numpy's headers). Raises NoBuild when the host
        has none (a Python without its development files: Debian's python3-dev)."""
        from ..builds.target import HEADERS_PROBE, BuildTarget, this_python_target
        info = self.setup()
        here = this_python_target()
        if (info["arch"], info["python_tag"]) == (here.arch, here.python_tag):
            return here
        r = self._py(["-c", HEADERS_PROBE], timeout=60)
        try:
            paths = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise NoBuild(f"{self.name}: could not ask {self.spec.python} where its headers are "
                          f"(exit {r.rc}): {plain_cause(r.stderr)}") from None
        if not paths.get("numpy"):
            raise NoBuild(f"{self.name}: numpy is not importable with {self.spec.python}; "
                          "engines' Python modules are built against the host's numpy")
        check = self.t.run(["test", "-f", f"{paths['include']}/Python.h"], timeout=30)
        if check.rc != 0:
            raise NoBuild(f"{self.name}: no {paths['include']}/Python.h on the host (install "
                          f"Python's development files there, e.g. Debian's "
                          f"libpython{paths['include'].rsplit('python', 1)[-1]}-dev)")
        copied = self._copy_dirs(paths["copy"])
        return BuildTarget(arch=info["arch"], python_tag=info["python_tag"],
                           ext_suffix=paths["ext_suffix"] or ".so",
                           include_dirs=tuple(str(copied / d.lstrip("/"))
                                              for d in paths["include_dirs"] if d),
                           glibc=info.get("glibc"))

    def _copy_dirs(self, dirs: list[str]) -> Path:
        """Copy the host's directories ``dirs`` (absolute, symlinks followed) into this
        machine's build cache, under the folder returned (host paths keep their layout)."""
        import shutil
        import tarfile

        from ..cache import cache_root
        remote = f"{self.work}/scratch/headers.tar"
        self._mkdir(f"{self.work}/scratch")
        self._must(["tar", "-chf", remote, "-C", "/"] + [d.lstrip("/") for d in dirs],
                   f"packing {', '.join(dirs)}")
        here = cache_root() / "builds" / "headers" / f"{self.name}-{self.info['python_tag']}"
        shutil.rmtree(here, ignore_errors=True)
        here.mkdir(parents=True)
        local = here / "headers.tar"
        self.t.get(remote, local)
        with tarfile.open(local) as tf:
            tf.extractall(here, filter="data")
        local.unlink()
        return here

    # -- the agent process ---------------------------------------------------------------------
    def _failure(self, e: Exception) -> dict:
        if isinstance(e, HostUnreachable):
            self.setup_error = str(e)  # every later job on this host is unreachable at once
        return super()._failure(e)

    def _launch(self, python: str, mode: str, job: dict, timeout_s: float) -> AgentExit:
        job = dict(job)
        job["state_dir"] = f"{self.work}/state"
        if self._locked:
            # the agent renews this coordinator's lease before it measures, and refuses
            # (host_busy) a host whose lease another coordinator took: a sweep longer than the
            # lease keeps the host, without a round trip of its own
            job["lease"] = {"dir": self.work, "owner": self.owner,
                            "ttl_s": self.lock_ttl_s + timeout_s}
        # the job travels in argv (base64: nothing in it can be shell syntax)
        blob = base64.b64encode(json.dumps(job).encode()).decode()
        # setsid: a new process group, so that timeout's signal reaches the whole group
        # (engine threads, children), which closing the SSH channel would not; --wait
        # because setsid forks when it already leads a group, and the exit status must be
        # the command's.
        argv = ["setsid", "--wait", "timeout", "-k", str(KILL_AFTER_S),
                str(int(timeout_s) + 1), python, "-m", AGENT_PKG, mode, "--b64", blob]
        t0 = time.monotonic()
        r = self.t.run(argv, timeout=timeout_s + KILL_AFTER_S + SSH_SLACK_S,
                       env_prefix=f"PYTHONPATH={shlex.quote(self.agent_root)} ")
        elapsed = time.monotonic() - t0
        if RESULT_MARKER not in r.stdout and (not self.t.alive() or self._lost_after(r.rc)):
            # the host went away under the job: infrastructure, not an engine failure
            how = "no exit status" if r.rc < 0 else f"exit {r.rc}"  # paramiko: -1
            cause = plain_cause(r.stderr, 200)
            raise HostUnreachable(f"{self.name}: connection lost during a measurement "
                                  f"({how}{': ' + cause if cause else ''})")
        return AgentExit(r.rc, r.stdout, r.stderr[-2000:], elapsed)

    def _lost_after(self, rc: int) -> bool:
        """Whether the host went away after killing the agent from outside: a host shutting
        down (or its sshd stopped) sends SIGTERM or SIGHUP to its sessions before its
        connections drop, so the agent's end can come a moment before the connection's."""
        if rc not in (-1, 128 + signal.SIGTERM, 128 + signal.SIGHUP):
            return False
        time.sleep(1.0)
        return not self.t.alive()

    def close(self) -> None:
        try:
            if self._locked and not self.setup_error:  # a lost host's lease just expires
                # kills whatever still measures under this lease, then releases it
                self._ctl("unlock", self.work, self.owner, timeout=60)
        except Exception:  # noqa: BLE001 - the lock expires on its own
            pass
        self.t.close()

    def release(self) -> dict:
        """For a coordinator on its way out (Ctrl-C, SIGTERM) whose worker for this host is
        gone: over a connection of its own, kill what measures under ``owner``'s lease on the
        host and release the lease. Raises HostUnreachable, HostctlFailed."""
        try:
            self._connect()
            return self._ctl("unlock", self.work, self.owner, timeout=30)
        finally:
            self.t.close()
