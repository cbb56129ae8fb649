"""Real OpenSSH servers on loopback ports that act as benchmark boards for the tests.

``start_x86_host`` runs this machine's ``/usr/sbin/sshd`` (as root, not daemonized,
in its own process group) with a private config, host key, client key and
known_hosts file.  The armv7l host (``armhf.py``) reuses the same pieces with an
sshd that runs inside an armhf chroot under qemu-user.
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import keys, procs

LOOPBACK = "127.0.0.1"
# Environment variable set (sshd_config SetEnv) in every session of a test host; its
# value is the host's random token, used by stop() to find stray remote processes.
TOKEN_ENV = "HARNESS_TEST_HOST_ID"
# Setting both hides every Vulkan ICD from the loader.  Debian bookworm's loader
# (libvulkan1 1.3.239) honours VK_DRIVER_FILES (the current name) and the deprecated
# VK_ICD_FILENAMES alike (checked: each alone makes ncnn.get_gpu_count() == 0).
NO_VULKAN_ENV = {"VK_DRIVER_FILES": "/nonexistent", "VK_ICD_FILENAMES": "/nonexistent"}
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(kw_only=True)
class SshHost:
    """One SSH-reachable test host, as the harness inventory describes a board."""

    name: str
    host: str = LOOPBACK
    port: int
    user: str = "root"
    identity_file: Path
    known_hosts: Path
    arch: str
    workdir: str  # directory on that host (as the remote side sees it) for the harness
    python: str  # interpreter path on that host
    tags: dict[str, str] = field(default_factory=dict)

    # Local bookkeeping, not part of the inventory.
    local_root: Path = field(default=Path("/"), repr=False)  # where the host's "/" is here
    sshd_log: Path | None = field(default=None, repr=False)
    token: str = field(default="", repr=False)
    _proc: subprocess.Popen | None = field(default=None, repr=False, compare=False)
    _cleanups: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)

    # -- inventory / client configuration ------------------------------------------

    def inventory_entry(self) -> dict[str, Any]:
        """A dict for one host table of a TOML inventory (only str/int/dict values)."""
        return {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "identity_file": str(self.identity_file),
            "known_hosts": str(self.known_hosts),
            "arch": self.arch,
            "workdir": self.workdir,
            "python": self.python,
            "tags": dict(self.tags),
        }

    def ssh_options(self) -> list[str]:
        """Arguments for the OpenSSH ``ssh``/``scp`` clients (strict host key checking)."""
        opts = {
            "BatchMode": "yes",
            "IdentitiesOnly": "yes",
            "IdentityFile": str(self.identity_file),
            "UserKnownHostsFile": str(self.known_hosts),
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "ConnectTimeout": "30",
            "LogLevel": "ERROR",
            "Port": str(self.port),
            "User": self.user,
        }
        out = ["-F", "/dev/null"]
        for k, v in opts.items():
            out += ["-o", f"{k}={v}"]
        return out

    def ssh_config(self, alias: str | None = None) -> str:
        """An ``~/.ssh/config``-style block for this host (``Host <name>``)."""
        return (
            f"Host {alias or self.name}\n"
            f"    HostName {self.host}\n"
            f"    Port {self.port}\n"
            f"    User {self.user}\n"
            f"    IdentityFile {self.identity_file}\n"
            f"    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {self.known_hosts}\n"
            f"    GlobalKnownHostsFile /dev/null\n"
            f"    StrictHostKeyChecking yes\n"
            f"    BatchMode yes\n"
        )

    def write_ssh_config(self, path: Path) -> Path:
        Path(path).write_text(self.ssh_config())
        return Path(path)

    def ssh_argv(self, command: str) -> list[str]:
        return ["ssh", *self.ssh_options(), self.host, command]

    def run(self, command: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
        """Run a shell command on the host through the OpenSSH client; text output."""
        return subprocess.run(
            self.ssh_argv(command),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def paramiko_client(self, timeout: float = 30):
        """A connected ``paramiko.SSHClient`` that trusts only ``known_hosts`` (RejectPolicy)."""
        import paramiko

        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            self.host,
            port=self.port,
            username=self.user,
            key_filename=str(self.identity_file),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
        # paramiko opens channels with an hour's timeout by default: bound it like the
        # harness does, so a host that stops answering fails a test instead of hanging it.
        client.get_transport().channel_timeout = timeout
        client.get_transport().set_keepalive(15)
        return client

    def fabric_connection(self):
        """A fabric ``Connection`` with strict host key checking (fabric defaults to AutoAddPolicy)."""
        import fabric
        import paramiko

        conn = fabric.Connection(
            self.host,
            user=self.user,
            port=self.port,
            connect_timeout=30,
            connect_kwargs={
                "key_filename": str(self.identity_file),
                "look_for_keys": False,
                "allow_agent": False,
            },
        )
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        conn.client.load_host_keys(str(self.known_hosts))
        return conn

    def local_path(self, remote_path: str) -> Path:
        """Where a path on the host lies on this machine (differs for the chroot host)."""
        return self.local_root / str(remote_path).lstrip("/")

    # -- lifecycle -----------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Kill sshd, every session it spawned and every process started over it
        (found by the per-host token in the environment), then run cleanups."""
        proc, self._proc = self._proc, None
        if proc is not None:
            victims = [proc.pid, *procs.descendants(proc.pid)]
            if self.token:
                victims += procs.pids_with_env(TOKEN_ENV, self.token)
            try:
                os.killpg(proc.pid, 15)
            except ProcessLookupError:
                pass
            procs.kill_all(victims)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            # Stragglers that started while we were killing.
            if self.token:
                procs.kill_all(procs.pids_with_env(TOKEN_ENV, self.token))
        cleanups, self._cleanups = self._cleanups, []
        for fn in reversed(cleanups):
            try:
                fn()
            except Exception as exc:  # keep going: stop() must release everything it can
                print(f"tests.hosts: cleanup of {self.name} failed: {exc!r}", file=sys.stderr)

    def __enter__(self) -> "SshHost":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# -- helpers shared with armhf.py -------------------------------------------------------


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """A free TCP port below the kernel's ephemeral range (so outgoing connections
    do not grab it between this check and sshd's bind)."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        if port_is_free(port, host):
            return port
    raise RuntimeError("no free loopback port found")


def sshd_config_text(
    *,
    port: int,
    host_key: str,
    pid_file: str,
    authorized_keys: str,
    setenv: dict[str, str],
) -> str:
    """sshd_config for a test host.  Paths are as the sshd process sees them."""
    for k, v in setenv.items():
        if any(c in v for c in ' \t"') or any(c in k for c in " =\t"):
            raise ValueError(f"unsupported SetEnv value {k}={v!r}")
    setenv_line = " ".join(f"{k}={v}" for k, v in setenv.items())
    return "\n".join(
        [
            "# Written by tests/hosts (harness test host); do not edit.",
            f"Port {port}",
            f"ListenAddress {LOOPBACK}",
            f"HostKey {host_key}",
            f"PidFile {pid_file}",
            f"AuthorizedKeysFile {authorized_keys}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PermitUserEnvironment no",
            # No AcceptEnv line: the client's environment is never accepted.
            "Subsystem sftp internal-sftp",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            "X11Forwarding no",
            "MaxStartups 64:30:128",
            "MaxSessions 64",
            "LogLevel INFO",
            # One SetEnv line: environment for every session (first value wins per keyword).
            f"SetEnv {setenv_line}",
            "",
        ]
    )


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` making the child get ``sig`` when this process dies
    (PR_SET_PDEATHSIG; kept across exec of non-setuid programs such as unshare,
    chroot, sshd).  Note: it fires when the *thread* that started the child exits,
    so start hosts from a long-lived thread (pytest's main thread is)."""

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG = 1

    return preexec


def sshd_env() -> dict[str, str]:
    """A minimal environment for sshd itself (it builds the sessions' env from scratch)."""
    return {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}


def spawn_sshd(argv: list[str], log_path: Path, port: int, *, timeout: float = 60) -> subprocess.Popen:
    """Start sshd (``-D -e``) in its own process group and wait until it sends its banner."""
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=sshd_env(),
            # A killed test run must not leave listening sshd's behind.
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
    finally:
        log.close()
    try:
        wait_for_banner(LOOPBACK, port, proc, log_path, timeout=timeout)
    except BaseException:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        raise
    return proc


class SshdStartError(RuntimeError):
    pass


def wait_for_banner(host: str, port: int, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_err: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SshdStartError(
                f"sshd exited with {proc.returncode} before listening on {port}:\n{_tail(log_path)}"
            )
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.settimeout(max(1.0, deadline - time.monotonic()))
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError as exc:
            last_err = exc
        time.sleep(0.05)
    raise SshdStartError(f"sshd on port {port} not ready after {timeout}s ({last_err!r}):\n{_tail(log_path)}")


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def ensure_privsep_dir() -> None:
    """sshd refuses to start without its privilege separation directory."""
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)


def remote_path_env() -> str:
    """PATH for sessions of the x86 hosts: the running interpreter's directory first,
    so ``python3`` over SSH is the interpreter the tests run under (not a pyenv shim).
    (A login shell's rc files may still prepend more.)"""
    return f"{Path(sys.executable).parent}:{DEFAULT_PATH}"


# -- the x86_64 host ----------------------------------------------------------------------


def start_x86_host(tmpdir: Path | str, name: str, gpu: bool = False, *, port: int | None = None) -> SshHost:
    """Start an sshd on a free loopback port that serves this machine as a test host.

    ``gpu=True``: the Vulkan device (Mesa lavapipe) is visible to processes started
    over SSH.  ``gpu=False``: Vulkan ICDs are hidden (``NO_VULKAN_ENV``), so ncnn there
    reports 0 GPUs.  The remote python is ``sys.executable``.
    """
    if shutil.which("/usr/sbin/sshd") is None:
        raise SshdStartError("/usr/sbin/sshd missing: run scripts/install-test-deps.sh")
    tmpdir = Path(tmpdir)
    base = tmpdir / f"sshhost-{name}"
    base.mkdir(parents=True, exist_ok=True)
    workdir = base / "workdir"
    workdir.mkdir(exist_ok=True)
    token = secrets.token_hex(8)

    host_key, host_pub = keys.generate_ed25519(base / "ssh_host_ed25519_key", f"host-{name}")
    client_key, client_pub = keys.generate_ed25519(base / "id_ed25519", f"client-{name}")
    authorized = keys.write_authorized_keys(base / "authorized_keys", client_pub)
    ensure_privsep_dir()

    setenv = {TOKEN_ENV: token, "PATH": remote_path_env()}
    if not gpu:
        setenv.update(NO_VULKAN_ENV)

    last_exc: Exception | None = None
    for attempt in range(3):
        p = port if port is not None else free_port()
        config = base / "sshd_config"
        config.write_text(
            sshd_config_text(
                port=p,
                host_key=str(host_key),
                pid_file=str(base / "sshd.pid"),
                authorized_keys=str(authorized),
                setenv=setenv,
            )
        )
        log_path = base / "sshd.log"
        try:
            proc = spawn_sshd(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], log_path, p)
        except SshdStartError as exc:
            last_exc = exc
            if port is None and "Address already in use" in str(exc):
                continue
            raise
        known = keys.write_known_hosts(base / "known_hosts", LOOPBACK, p, host_pub)
        return SshHost(
            name=name,
            port=p,
            identity_file=client_key,
            known_hosts=known,
            arch="x86_64",
            workdir=str(workdir),
            python=sys.executable,
            tags={"gpu": "vulkan"} if gpu else {},
            sshd_log=log_path,
            token=token,
            _proc=proc,
        )
    raise SshdStartError(f"could not start sshd for {name}: {last_exc}")

