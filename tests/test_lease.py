"""The host lease (hostctl lock/renew/unlock): taken atomically, so concurrent coordinators
never hold one host together; renewed by each job; a job on a host whose lease another
coordinator holds is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from harness_agent.hostctl import HostctlError, lock, renew, unlock

pytestmark = pytest.mark.unit

STRESS = textwrap.dedent("""
    import os, sys, time
    from harness_agent.hostctl import lock, unlock
    d, me, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    doubles = 0
    for _ in range(n):
        lock(d, me, 30, 60)
        try:  # while holding: nobody else may
            fd = os.open(os.path.join(d, "holder"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
        except FileExistsError:
            doubles += 1
        else:
            os.unlink(os.path.join(d, "holder"))
        unlock(d, me)
    print(doubles)
""")


def test_three_processes_thousands_of_acquisitions_no_double_holder(tmp_path):
    d = str(tmp_path / "work")
    procs = [subprocess.Popen([sys.executable, "-c", STRESS, d, f"owner{i}", "800"],
                              stdout=subprocess.PIPE, text=True) for i in range(3)]
    doubles = [int(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert doubles == [0, 0, 0]  # 2,400 acquisitions


def test_renew_and_expiry(tmp_path):
    d = str(tmp_path)
    assert lock(d, "a", 30, 0)["ok"]
    with pytest.raises(HostctlError, match="locked by a"):
        lock(d, "b", 30, 0)
    renew(d, "a", 30)
    assert lock(d, "a", 30, 0)["renewed"]
    lock(d, "a", -1, 0)  # expired: another coordinator may take it over
    assert lock(d, "b", 30, 0)["ok"]
    with pytest.raises(HostctlError, match="lease was lost to b"):
        renew(d, "a", 30)
    assert unlock(d, "a") == {"ok": False, "held_by": "b"}
    assert unlock(d, "b")["ok"]
    with pytest.raises(HostctlError, match="lease was lost"):
        renew(d, "b", 30)


def test_a_job_on_a_host_held_by_another_coordinator_is_refused(tmp_path):
    from harness.executors.local import LocalExecutor
    from harness_agent import PROTOCOL
    lock(str(tmp_path), "other-coordinator", 60, 0)
    res = LocalExecutor().run_agent("measure", {
        "protocol": PROTOCOL, "engine": "onnxruntime",
        "lease": {"dir": str(tmp_path), "owner": "me", "ttl_s": 60}}, 60)
    assert res["status"] == "host_busy" and "lost to other-coordinator" in res["error"]


# -- owner identity: a lease is reclaimed at once only from an owner provably dead -------------

HOLDER = textwrap.dedent("""
    import sys, time
    from harness_agent.hostctl import lock, owner_id
    me = owner_id("holder-run")
    lock(sys.argv[1], me, 300, 0)
    print(me, flush=True)
    time.sleep(120)
""")


def _owner(pid: int, machine: str | None = None, start: int | None = None,
           host: str = "same-name") -> str:
    from harness_agent.hostctl import machine_id, proc_start
    return ":".join([host, str(pid), "run", machine_id() if machine is None else machine,
                     str(proc_start(pid) if start is None else start), "n0nce"])


def machine_ns_other() -> str:
    """This machine's boot with another PID namespace."""
    from harness_agent.hostctl import machine_id
    boot, ns = machine_id().split(".")
    return f"{boot}.{int(ns) + 1}"


def test_owner_ids_name_one_process_uniquely():
    from harness_agent.hostctl import machine_id, owner_dead, owner_id, proc_start
    a, b = owner_id("r"), owner_id("r")
    assert a != b  # the nonce: two coordinators never share a name, wherever they run
    _host, pid, label, machine, start, _ = a.split(":")
    assert (int(pid), label, machine, int(start)) == (os.getpid(), "r", machine_id(),
                                                     proc_start(os.getpid()))
    assert machine and not owner_dead(a)


def test_a_live_or_foreign_owner_is_never_reclaimed_a_dead_local_one_is(tmp_path):
    from harness.executors.lease import acquire, local_ctl
    from harness.fleet.transport import HostBusy
    from harness_agent.hostctl import owner_dead
    d = str(tmp_path)
    me = _owner(os.getpid())
    other_machine = "0" * 32 + ".4026531836"
    # a pid that runs nothing here: the same name and pid on another machine is alive there
    free_pid = max(int(p) for p in os.listdir("/proc") if p.isdigit()) + 5000
    never = [
        _owner(os.getpid(), machine=other_machine),           # same pid, another machine
        _owner(free_pid, machine=other_machine, start=1),     # dead pid here, another machine
        _owner(free_pid, machine=machine_ns_other(), start=1),  # another PID namespace
        f"same-name:{free_pid}:run",                          # an older owner format
    ]
    for holder in never:
        assert not owner_dead(holder), holder
        lock(d, holder, 300, 0)
        with pytest.raises(HostBusy, match="locked by"):
            acquire(local_ctl, d, me, 30, 0.2, "local")
        unlock(d, holder)
    # a pid of this machine now run by another process (another start time): the owner is gone
    reused = _owner(os.getpid(), start=1)
    assert owner_dead(reused)
    lock(d, reused, 300, 0)
    acquire(local_ctl, d, me, 30, 0, "local")
    assert unlock(d, me)["ok"]
    # a real, live coordinator process of this machine: waited for, never stolen; once it is
    # killed, its lease is taken back at once
    p = subprocess.Popen([sys.executable, "-c", HOLDER, d], stdout=subprocess.PIPE, text=True)
    try:
        holder = p.stdout.readline().strip()
        assert not owner_dead(holder)
        with pytest.raises(HostBusy, match="locked by " + holder):
            acquire(local_ctl, d, me, 30, 0.5, "local")
    finally:
        p.kill()
        p.wait(timeout=10)
    assert owner_dead(holder)
    acquire(local_ctl, d, me, 30, 0, "local")
    assert unlock(d, me)["ok"]


# -- what measures under a lease is killed when the lease is released or taken over ------------

MEASURER = textwrap.dedent("""
    import subprocess, sys, time
    from harness_agent.hostctl import own_group, renew
    d, owner, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    renew(d, owner, ttl, own_group())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    print(child.pid, flush=True)
    time.sleep(120)
""")


def _measurer(d: str, owner: str, ttl: float):
    """A stand-in agent in a session of its own, registered under ``owner``'s lease, with a
    child in its group; (process, child pid)."""
    p = subprocess.Popen([sys.executable, "-c", MEASURER, d, owner, str(ttl)],
                         stdout=subprocess.PIPE, text=True, start_new_session=True)
    return p, int(p.stdout.readline())


@pytest.mark.parametrize("how", ["expired", "dead", "released"])
def test_what_a_previous_owner_left_measuring_is_killed_first(tmp_path, how):
    from harness_agent.hostctl import proc_start
    d = str(tmp_path)
    prev = _owner(1, machine="0" * 32 + ".1", start=1)  # alive elsewhere: only expiry frees it
    lock(d, prev, 300, 0)
    # expired: the agent renewed last with a lease already past; dead: a live one, taken over
    # as the lease of a proven-dead owner; released: its own coordinator unlocks on its way out
    p, child = _measurer(d, prev, -1 if how == "expired" else 300)
    try:
        assert proc_start(p.pid) and proc_start(child)
        if how == "released":
            assert unlock(d, prev) == {"ok": True, "groups_killed": 1}
        else:
            got = lock(d, "next", 30, 0, dead=prev if how == "dead" else None)
            assert got["groups_killed"] == 1
        # gone by the time the call returns: nothing of the next owner runs beside it
        assert proc_start(child) is None
        p.wait(timeout=5)
        assert p.returncode == -9
    finally:
        p.kill()
        p.wait()


def test_a_recorded_group_whose_pid_is_reused_is_left_alone(tmp_path):
    from harness_agent.hostctl import kill_groups, machine_id, proc_start
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         start_new_session=True)
    try:
        stale = {"pgid": p.pid, "pid": p.pid, "leader_start": proc_start(p.pid) - 1,
                 "start": proc_start(p.pid) - 1, "machine": machine_id()}
        assert kill_groups([stale]) == []
        assert p.poll() is None  # another process now has that pid: never signalled
    finally:
        p.kill()
        p.wait()
