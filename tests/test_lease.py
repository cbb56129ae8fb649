"""The host lease (hostctl lock/renew/unlock): taken atomically, so concurrent coordinators
never hold one host together; renewed by each job; a job on a host whose lease another
coordinator holds is refused."""

from __future__ import annotations

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
    assert unlock(d, "b") == {"ok": True}
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
