"""Integration tests of the real SSH test hosts (tests/hosts): three x86_64 sshd's on
loopback (one with the Mesa lavapipe Vulkan device visible) and one armv7l sshd in
an armhf chroot under qemu-user.  Needs root; skipped otherwise."""

from __future__ import annotations

import re
import socket
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.hosts, pytest.mark.slow]

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # `tests` is a namespace package rooted at the repo
    sys.path.insert(0, str(_ROOT))

import paramiko  # noqa: E402

from tests.hosts import read_marker, start_armv7_host, start_x86_host  # noqa: E402
from tests.hosts.armhf import _mounts_under  # noqa: E402
from tests.hosts.fixtures import *  # noqa: E402,F401,F403
from tests.hosts.keys import known_hosts_host  # noqa: E402

EXPECTED_ARCH = {"x86-a": "x86_64", "x86-b": "x86_64", "gpu": "x86_64", "armv7": "armv7l"}
FIXTURE_OF = {"x86-a": "x86_host_a", "x86-b": "x86_host_b", "gpu": "gpu_host", "armv7": "armv7_host"}
INVENTORY_KEYS = {"name", "host", "port", "user", "identity_file", "known_hosts", "arch", "workdir", "python", "tags"}


def sh(client: paramiko.SSHClient, command: str, timeout: float = 120) -> tuple[int, str, str]:
    """Run COMMAND on the host; (exit status, stdout, stderr). Every wait is bounded:
    paramiko's own `exec_command` opens its channel with an hour's timeout and waits for the
    exit status without one, so a host that stops answering would hang the session."""
    chan = client.get_transport().open_session(timeout=30)
    chan.settimeout(timeout)
    chan.exec_command(command)
    out = chan.makefile("rb").read().decode(errors="replace")
    err = chan.makefile_stderr("rb").read().decode(errors="replace")
    if not chan.status_event.wait(timeout):
        chan.close()
        raise TimeoutError(f"no exit status within {timeout} s: {command}")
    return chan.recv_exit_status(), out, err


@pytest.fixture(scope="module")
def clients(test_hosts):
    """One strict (RejectPolicy + known_hosts) paramiko connection per host."""
    conns = {name: host.paramiko_client() for name, host in test_hosts.items()}
    yield conns
    for c in conns.values():
        c.close()


def test_inventory_entries(test_hosts):
    assert set(test_hosts) == set(EXPECTED_ARCH)
    entries = [h.inventory_entry() for h in test_hosts.values()]
    for e in entries:
        assert set(e) == INVENTORY_KEYS
        assert e["host"] == "127.0.0.1" and e["user"] == "root"
        assert e["arch"] == EXPECTED_ARCH[e["name"]]
        assert Path(e["identity_file"]).is_file() and Path(e["known_hosts"]).is_file()
        assert all(isinstance(v, (str, int, dict)) for v in e.values())
    assert len({e["port"] for e in entries}) == 4
    assert len({e["workdir"] for e in entries}) == 4
    assert test_hosts["gpu"].tags == {"gpu": "vulkan"}
    assert "gpu" not in test_hosts["x86-a"].tags and "gpu" not in test_hosts["armv7"].tags
    assert "Host x86-a" in test_hosts["x86-a"].ssh_config()


@pytest.mark.parametrize("name", list(EXPECTED_ARCH))
def test_unknown_or_wrong_host_key_is_refused(request, tmp_path, name):
    host = request.getfixturevalue(FIXTURE_OF[name])
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    client = paramiko.SSHClient()
    client.load_host_keys(str(empty))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        client.connect(host.host, port=host.port, username=host.user, key_filename=str(host.identity_file),
                       look_for_keys=False, allow_agent=False, timeout=30, banner_timeout=60)
    client.close()

    # Another host's key recorded for this host:port must be refused too.
    other = request.getfixturevalue(FIXTURE_OF["x86-b" if name == "x86-a" else "x86-a"])
    other_key = " ".join(Path(other.known_hosts).read_text().split()[1:3])  # "ssh-ed25519 AAAA..."
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"{known_hosts_host(host.host, host.port)} {other_key}\n")
    client = paramiko.SSHClient()
    client.load_host_keys(str(wrong))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect(host.host, port=host.port, username=host.user, key_filename=str(host.identity_file),
                       look_for_keys=False, allow_agent=False, timeout=30, banner_timeout=60)
    client.close()


@pytest.mark.parametrize("name", list(EXPECTED_ARCH))
def test_uname_and_workdir(clients, test_hosts, name):
    host = test_hosts[name]
    rc, out, err = sh(clients[name], f"uname -m; test -d {host.workdir} && test -w {host.workdir} && echo ok")
    assert rc == 0, err
    assert out.split() == [EXPECTED_ARCH[name], "ok"]


@pytest.mark.parametrize("name", list(EXPECTED_ARCH))
def test_sftp_roundtrip(clients, test_hosts, tmp_path, name):
    host = test_hosts[name]
    src = tmp_path / "payload.txt"
    src.write_text(f"hello {name}\n")
    remote = f"{host.workdir}/payload.txt"
    sftp = clients[name].open_sftp()
    sftp.get_channel().settimeout(60)
    try:
        sftp.put(str(src), remote)
        assert sftp.stat(remote).st_size == src.stat().st_size
    finally:
        sftp.close()
    rc, out, _ = sh(clients[name], f"cat {remote} && rm {remote}")
    assert rc == 0 and out == f"hello {name}\n"
    assert not host.local_path(remote).exists()


GPU_PROBE = (
    "import ncnn; n = ncnn.get_gpu_count(); "
    "print('GPUS', n); print('NAME', ncnn.get_gpu_info(0).device_name() if n else '-')"
)


@pytest.mark.parametrize("name,expect_gpu", [("x86-a", False), ("x86-b", False), ("gpu", True)])
def test_vulkan_visibility(clients, test_hosts, name, expect_gpu):
    host = test_hosts[name]
    rc, out, err = sh(clients[name], f"{host.python} -c \"{GPU_PROBE}\"")
    assert rc == 0, err
    count = int(re.search(r"^GPUS (\d+)$", out, re.M).group(1))
    device = re.search(r"^NAME (.*)$", out, re.M).group(1)
    if expect_gpu:
        assert count >= 1 and "llvmpipe" in device
    else:
        assert count == 0


@pytest.mark.parametrize("name", ["x86-a", "x86-b", "gpu"])
def test_x86_python_has_engines(clients, test_hosts, name):
    host = test_hosts[name]
    assert host.python == sys.executable
    rc, out, err = sh(clients[name], f"{host.python} -c 'import ncnn, MNN, numpy; print(\"IMPORTS-OK\")'")
    assert rc == 0 and "IMPORTS-OK" in out, err


def test_armv7_python_has_ncnn(clients, armv7_host):
    rc, out, err = sh(clients["armv7"], "python3 -c 'import ncnn, numpy, platform; "
                                         "print(ncnn.__version__, numpy.__version__, platform.machine())'",
                      timeout=300)
    assert rc == 0, err
    ncnn_version, _numpy_version, machine = out.split()[-3:]
    assert machine == "armv7l"
    assert ncnn_version == read_marker(armv7_host.local_root)["ncnn_version"]
    assert armv7_host.tags["ncnn"] == ncnn_version
    assert armv7_host.python == "/usr/bin/python3"


def _group_members(client: paramiko.SSHClient, pgid: int) -> list[str]:
    _, out, _ = sh(client, "ps -e -o pgid=,pid=,comm=")
    return [line.split(None, 2)[2] for line in out.splitlines() if line.split()[0] == str(pgid)]


def start_sleeper(client: paramiko.SSHClient) -> int:
    """`setsid timeout 30 sleep 1000` in the background; returns its pid (= its pgid)."""
    rc, out, err = sh(client, "setsid timeout 30 sleep 1000 </dev/null >/dev/null 2>&1 & echo $!")
    assert rc == 0, err
    return int(out.split()[-1])


@pytest.mark.parametrize("name", list(EXPECTED_ARCH))
def test_remote_process_group_kill(clients, name):
    client = clients[name]
    pgid = start_sleeper(client)
    deadline = time.monotonic() + 30
    while True:
        members = _group_members(client, pgid)
        if {"timeout", "sleep"} <= set(members) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {"timeout", "sleep"} <= set(members), members
    rc, _, err = sh(client, f"kill -KILL -- -{pgid}")
    assert rc == 0, err
    deadline = time.monotonic() + 10
    while _group_members(client, pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _group_members(client, pgid) == []


def _pid_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("kind", ["x86", "armv7"])
def test_stop_kills_sessions_and_leaves_nothing(tmp_path, host_deps, request, kind):
    if kind == "x86":
        host = start_x86_host(tmp_path, "scratch")
    else:
        rootfs = request.getfixturevalue("armhf_rootfs")
        host = start_armv7_host(tmp_path, rootfs.parent, name="scratch-arm")
    try:
        client = host.paramiko_client()
        pgid = start_sleeper(client)  # escapes sshd's tree (setsid, reparented)
        client.close()
        assert _pid_alive(pgid)
        workdir_here = host.local_path(host.workdir)
        assert workdir_here.is_dir()
    finally:
        host.stop()
    assert not host.alive
    deadline = time.monotonic() + 10
    while _pid_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pid_alive(pgid), "a process started over SSH survived stop()"
    with pytest.raises(OSError):
        socket.create_connection((host.host, host.port), timeout=2).close()
    if kind == "armv7":
        assert _mounts_under(host.local_root) == [], "mounts leaked into this mount namespace"
        assert not workdir_here.exists()
        assert not (host.local_root / "etc/ssh/harness" / host.token).exists()
