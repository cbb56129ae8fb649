"""SSH to a host with fabric, with the security defaults fabric lacks.

fabric's Connection accepts any host key (AutoAddPolicy) and loads no known_hosts file; here
only keys already in known_hosts are accepted, unless the inventory trusts the host explicitly.
Every remote command is built from an argument list, each argument shell-quoted.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import HarnessError
from .inventory import HostSpec


# Seconds to wait for the host to open a channel (a command, an SFTP session), and for any one
# SFTP answer during a transfer: generous for a loaded board, short against a frozen one.
CHANNEL_TIMEOUT_S = 30
TRANSFER_TIMEOUT_S = 120
# Seconds for the host's SSH banner, and for authentication, after the TCP connection.
BANNER_TIMEOUT_S = 15
AUTH_TIMEOUT_S = 15

# paramiko logs a failed handshake at ERROR; with no handler, Python's last-resort handler would
# print it raw on stderr beside the one line in which the harness says what failed.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class HostUnreachable(HarnessError):
    """The host could not be reached or refused us (network, auth, host key)."""


class HostBusy(HarnessError):
    """Another coordinator holds the host's lock."""


class HostIOError(HarnessError):
    """The host is reachable but a file operation failed there (disk full, permissions)."""


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


def quote_argv(argv: list[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


def _event_remote_runner():
    """fabric's remote runner, waiting for a command's end on the channel's exit-status event
    rather than in invoke's 10 ms polling loop (`Runner.wait`). Each host's worker thread
    waits out every measurement in `wait`; 200 hosts polling 100 times a second cost the
    coordinator about 0.1 s of CPU per host per configuration (fleet_scale, 200 hosts)."""
    from fabric.runners import Remote

    class EventRemote(Remote):
        def wait(self) -> None:
            # the same two conditions as invoke's loop; the 0.1 s bound is for a reader
            # thread that died, which sets no event
            while not (self.process_is_finished or self.has_dead_threads):
                self.channel.status_event.wait(0.1)

    return EventRemote


class SshTransport:
    def __init__(self, spec: HostSpec, trust_new_host_key: bool = False):
        self.spec = spec
        self.trust = spec.trust_host_key or trust_new_host_key
        self._conn = None

    @property
    def conn(self):
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self):
        import paramiko
        from fabric import Config, Connection
        s = self.spec
        # Every wait on the host is bounded: a host whose TCP port answers but whose sshd does
        # not (frozen, SIGSTOP) would otherwise hold a session open for paramiko's default
        # hour, and with it the whole run.
        kw = {"look_for_keys": s.identity_file is None, "allow_agent": True,
              "banner_timeout": BANNER_TIMEOUT_S, "auth_timeout": AUTH_TIMEOUT_S,
              "channel_timeout": CHANNEL_TIMEOUT_S}
        if s.identity_file:
            kw["key_filename"] = os.path.expanduser(s.identity_file)
            if not os.path.isfile(kw["key_filename"]):  # say so, not "cannot reach"
                raise HostUnreachable(f"{s.name}: identity_file {kw['key_filename']} does not "
                                      "exist")
        cfg = Config(overrides={"load_ssh_configs": True,
                                "runners": {"remote": _event_remote_runner()}})
        # An ~/.ssh/config alias brings its own HostName, Port, User and IdentityFile.
        conn = Connection(s.host, user=s.user, port=None if s.ssh_config_alias else s.port,
                          connect_kwargs=kw, config=cfg, connect_timeout=15)
        kh = os.path.expanduser(s.known_hosts or "~/.ssh/known_hosts")
        revoked: set[str] = set()
        # the target and every ProxyJump gateway before it (fabric builds those with
        # AutoAddPolicy and no known_hosts): the same known_hosts, the same policy
        hop = conn
        while isinstance(hop, Connection):
            revoked |= load_known_hosts(hop.client.get_host_keys(), kh)
            # Explicitly trusted: accept a new key and record it, so the next run verifies it.
            hop.client.set_missing_host_key_policy(
                paramiko.AutoAddPolicy() if self.trust else paramiko.RejectPolicy())
            hop = hop.gateway
        t0 = time.monotonic()
        try:
            conn.open()
        except paramiko.BadHostKeyException:
            raise HostUnreachable(f"{s.name}: the host key of {s.target} CHANGED (not the one "
                                  f"in {kh}); refusing to connect") from None
        except paramiko.SSHException as e:
            if "not found in known_hosts" in str(e):  # paramiko's RejectPolicy
                server = str(e).split("'")[1] if str(e).count("'") >= 2 else s.target
                raise HostUnreachable(
                    f"{s.name}: unknown host key for {server} (not in {kh}); add it to "
                    "known_hosts, or trust it explicitly (trust_host_key = true in the "
                    "inventory, or --trust-new-host-key)") from None
            # paramiko's own words for a silent server are "No existing session"
            why = _no_handshake(conn, time.monotonic() - t0)
            if why:
                raise HostUnreachable(f"{s.name}: {why}") from None
            raise HostUnreachable(f"{s.name}: SSH to {s.target} failed: {e}") from None
        except (OSError, EOFError) as e:
            why = _no_handshake(conn, time.monotonic() - t0)
            if why:
                raise HostUnreachable(f"{s.name}: {why}") from None
            raise HostUnreachable(f"{s.name}: cannot reach {s.target}: "
                                  f"{getattr(e, 'strerror', None) or e}") from None
        # a dead peer is noticed between commands too, not only when one waits on it
        conn.client.get_transport().set_keepalive(15)
        if conn.client.get_transport().get_remote_server_key().get_base64() in revoked:
            conn.close()
            raise HostUnreachable(f"{s.name}: the host key of {s.target} is marked @revoked in "
                                  f"{kh}; refusing to connect")
        if self.trust:
            _record_new_key(conn, kh)
        return conn

    def run(self, argv: list[str], timeout: float | None = None, env_prefix: str = "") -> Result:
        cmd = env_prefix + quote_argv(argv)
        try:
            r = self.conn.run(cmd, hide=True, warn=True, timeout=timeout, in_stream=False)
        except HarnessError:
            raise
        except Exception as e:  # fabric raises many kinds; all mean the command did not finish
            if type(e).__name__ == "CommandTimedOut":
                return Result(124, "", f"timed out after {timeout} s")
            why = str(e).strip() or type(e).__name__
            raise HostUnreachable(f"{self.spec.name}: SSH command failed, connection lost? "
                                  f"({why})") from None
        return Result(r.return_code, r.stdout, r.stderr)

    def alive(self) -> bool:
        """Whether the host still answers on this connection (a trivial command round trip)."""
        try:
            tr = self._conn.client.get_transport() if self._conn is not None else None
            if tr is None or not tr.is_active():
                return False
            # bounded at every step: opening the channel too (fabric's run would wait for a
            # channel from a frozen host for as long as paramiko lets it)
            ch = tr.open_session(timeout=10)
            try:
                ch.settimeout(10)
                ch.exec_command("true")
                return ch.status_event.wait(10) and ch.recv_exit_status() == 0
            finally:
                ch.close()
        except Exception:
            return False

    def put(self, local: Path | IO[bytes], remote: str) -> None:
        """Copy a local file, or a binary file object (streamed, never written locally), to
        ``remote``. Raises HostIOError (the host refused the write), HostUnreachable."""
        try:
            # each SFTP request waits at most this long for the host's answer
            self.conn.sftp().get_channel().settimeout(TRANSFER_TIMEOUT_S)
            self.conn.put(local if hasattr(local, "read") else str(local), remote)
        except OSError as e:
            # sftp reports a full disk or a permission problem as an OSError with the server's
            # status (or a short copy); the connection itself is fine, so this is not an
            # unreachable host.
            if self._conn is not None and self._conn.is_connected:
                why = self._why_write_failed(remote, _size(local),
                                             e.strerror or str(e) or type(e).__name__)
                raise HostIOError(f"{self.spec.name}: writing {remote} failed: {why}") from None
            raise HostUnreachable(f"{self.spec.name}: copy to {remote} failed: {e}") from None
        except Exception as e:
            raise HostUnreachable(f"{self.spec.name}: copy to {remote} failed: {e}") from None

    def get(self, remote: str, local: Path) -> None:
        """Copy the host's file ``remote`` to ``local``. Raises HostIOError (no such file, not
        readable), HostUnreachable."""
        try:
            self.conn.sftp().get_channel().settimeout(TRANSFER_TIMEOUT_S)
            self.conn.get(remote, str(local))
        except OSError as e:
            if self._conn is not None and self._conn.is_connected:
                raise HostIOError(f"{self.spec.name}: reading {remote} failed: "
                                  f"{e.strerror or e}") from None
            raise HostUnreachable(f"{self.spec.name}: copy from {remote} failed: {e}") from None
        except Exception as e:
            raise HostUnreachable(f"{self.spec.name}: copy from {remote} failed: {e}") from None

    def _why_write_failed(self, remote: str, size: int | None, why: str) -> str:
        """Why writing ``size`` bytes to ``remote`` failed, as the host sees it: the torn copy
        is removed (it must not keep the disk full), then a disk with less free space than the
        file is said to be full; otherwise ``why`` (SFTP's own words)."""
        d = posixpath.dirname(remote) or "."
        try:
            self.run(["rm", "-f", remote], timeout=30)
            r = self.run(["df", "-Pk", d], timeout=30)
            free_kib = int(r.stdout.strip().splitlines()[-1].split()[3])
        except Exception:  # noqa: BLE001 - no better reason than SFTP's own
            return why
        if size is not None and free_kib * 1024 < size:
            return (f"No space left on device ({free_kib} KiB free in {d}, "
                    f"{-(-size // 1024)} KiB needed)")
        return why

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _no_handshake(conn, waited_s: float) -> str | None:
    """What went wrong before authentication on a connection that failed: the server accepted
    the TCP connection but sent no SSH banner (a stopped or hung sshd, or no SSH server at all
    on that port), or sent one and did not finish the key exchange; None when neither (the
    failure came later, or the TCP connection itself failed)."""
    t = conn.client.get_transport()
    if t is None:
        return None
    where = f"{conn.host}:{conn.port or 22}"
    if not t.remote_version:
        if waited_s >= BANNER_TIMEOUT_S - 1:
            return (f"{where} accepted the connection but sent no SSH banner within "
                    f"{BANNER_TIMEOUT_S} s (sshd hung or stopped, or not an SSH server)")
        return f"{where} closed the connection without sending an SSH banner"
    if not t.initial_kex_done:
        return (f"{where} sent its SSH banner ({t.remote_version}) but did not finish the key "
                "exchange")
    return None


def _size(local) -> int | None:
    """Bytes in a local file or a seekable file object, None when unknown."""
    try:
        if hasattr(local, "getbuffer"):
            return local.getbuffer().nbytes
        return os.path.getsize(local)
    except (OSError, TypeError, ValueError):
        return None


def load_known_hosts(keys, path: str) -> set[str]:
    """Add the host keys of an OpenSSH known_hosts file to ``keys`` (a paramiko HostKeys) the
    way OpenSSH reads it: a line it cannot parse is skipped, not fatal (paramiko's own loader
    stops at a bad base64 line); ``@cert-authority`` lines hold CA keys, not host keys. Returns
    the base64 of the keys marked ``@revoked``, which are refused whatever else says."""
    from paramiko.hostkeys import HostKeyEntry
    revoked: set[str] = set()
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return revoked
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker = None
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
        try:
            entry = HostKeyEntry.from_line(line.strip(), lineno)
        except Exception:  # noqa: BLE001 - OpenSSH skips what it cannot read
            continue
        if entry is None or entry.key is None:
            continue
        if marker == "@revoked":
            revoked.add(entry.key.get_base64())
        elif marker is None:
            for host in entry.hostnames:
                keys.add(host, entry.key.get_name(), entry.key)
    return revoked


def _record_new_key(conn, known_hosts: str) -> None:
    """Append the host key of an explicitly trusted host to ``known_hosts`` when it is not
    there yet: one line, appended (O_APPEND) and fsync'd, as OpenSSH's accept-new does. The rest
    of the file, comments and key types paramiko cannot parse included, is left as it is."""
    import paramiko
    key = conn.client.get_transport().get_remote_server_key()
    host, port = conn.host, conn.port or 22
    entry = host if port == 22 else f"[{host}]:{port}"
    known = paramiko.HostKeys()
    load_known_hosts(known, known_hosts)
    if known.check(entry, key):
        return
    Path(known_hosts).parent.mkdir(parents=True, exist_ok=True)
    line = f"{entry} {key.get_name()} {key.get_base64()}\n".encode()
    fd = os.open(known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        with open(known_hosts, "rb") as f:  # keep the last line whole: start on a new one
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
