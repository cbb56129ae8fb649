"""A host whose TCP port answers but whose sshd does not (every process of the host stopped
with SIGSTOP) costs at most the measurement's timeout plus a stated grace: its rows are
`unreachable`, the other host completes, and the run returns."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from harness.config.suite import load_suite
from harness.coordinator import run_suite
from harness.executors.ssh import KILL_AFTER_S, SSH_SLACK_S
from harness.fleet.inventory import load_inventory
from tests.helpers import write_inventory
from tests.hosts import procs, start_x86_host

pytestmark = [pytest.mark.hosts, pytest.mark.slow]

TIMEOUT_S = 20
# after the remote timeout: its kill grace, the SSH-level slack, one bounded liveness check
# + 30 s of scheduling slack on a loaded 2-core CI machine
GRACE_S = KILL_AFTER_S + SSH_SLACK_S + 10 + 30


def test_a_frozen_host_is_unreachable_within_its_timeout(tmp_path):
    a = start_x86_host(tmp_path / "a", "live")
    b = start_x86_host(tmp_path / "b", "frozen")
    stopped: list[int] = []
    guard, done = threading.Lock(), threading.Event()
    try:
        inv = write_inventory(tmp_path / "inv.toml", [a.inventory_entry(), b.inventory_entry()])
        (tmp_path / "s.toml").write_text(
            'name = "frozen"\nengines = { onnxruntime = "installed" }\nthreads = [1]\n'
            "[measure]\nwarmup = 0\nmin_iterations = 3\nmin_seconds = 1.0\nprocesses = 4\n"
            f"timeout_s = {TIMEOUT_S}\n"
            '[[models]]\nname = "m"\nbuiltin = "reduction_sum_block"\n')
        out = tmp_path / "out"
        frozen_at: list[float] = []
        # The freezer must never act after the test: a late SIGSTOP hits whatever now owns
        # those pids (a later test's processes), and a SIGCONT racing a SIGSTOP leaves a
        # process stopped for good. `guard` orders the two; `done` ends the wait.

        def freeze_after_first_row():
            deadline = time.time() + 300
            while time.time() < deadline and not done.is_set():
                rows = [f.read_text() for f in (out / "_journal").glob("*.jsonl")] \
                    if (out / "_journal").exists() else []
                if any('"host": "frozen"' in r for r in rows):
                    break
                time.sleep(0.05)
            else:
                return
            with guard:
                if done.is_set():
                    return
                stopped.extend([b._proc.pid, *procs.descendants(b._proc.pid)])
                for pid in stopped:
                    try:
                        os.kill(pid, signal.SIGSTOP)
                    except ProcessLookupError:
                        pass
                frozen_at.append(time.monotonic())

        freezer = threading.Thread(target=freeze_after_first_row, daemon=True)
        freezer.start()
        report = run_suite(load_suite(tmp_path / "s.toml"), out,
                           hosts=load_inventory(inv), progress=False)
        assert frozen_at, "the frozen host never finished a first row before the run ended"
        took = time.monotonic() - frozen_at[0]
        by_host = {h: [r["status"] for r in report.rows if r["host"] == h]
                   for h in ("live", "frozen")}
        assert by_host["live"] == ["ok"] * 4
        assert len(by_host["frozen"]) == 4 and "unreachable" in by_host["frozen"]
        assert set(by_host["frozen"]) <= {"ok", "unreachable"}
        assert took < TIMEOUT_S + GRACE_S, (took, by_host)
    finally:
        with guard:
            done.set()
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        a.stop()
        b.stop()
