"""What a coordinator measures is stopped with it, and nothing measures beside a leftover:
real `harness run` processes, real signals, a real loopback sshd host, real concurrent local
runs.

- Ctrl-C (SIGINT) or SIGTERM mid-measurement: the coordinator kills its agent on the host and
  releases the lease on its way out, within a few seconds; the next run starts at once.
- A SIGKILLed coordinator leaves its agent measuring on the host: the next run kills it after
  taking the lease over and before its own first measurement starts (no overlap).
- Two local runs at once: the second waits for the first (never measures beside it), or, when
  it cannot wait that long, records host_busy naming the holder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import tiny_suite, write_inventory
from tests.hosts import procs, start_x86_host
from tests.hosts.sshd import TOKEN_ENV

pytestmark = [pytest.mark.hosts, pytest.mark.slow]

# From the signal to the last agent process gone: Ray's shutdown, one SSH connection, two
# short remote commands; generous for 2 shared cores.
STOP_WITHIN_S = 20


def _suite(path: Path, secs: float, procs_: int = 1) -> Path:
    path.write_text(tiny_suite("lease", secs=secs, procs=procs_, timeout_s=240))
    return path


def _interruptible() -> None:
    # A shell's background job (`cmd &` without job control) starts with SIGINT ignored, and
    # Python then leaves it ignored: Ctrl-C reaches a foreground coordinator, so the test's
    # coordinator gets SIGINT's default whatever the test run was started from.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _harness(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "run", *args, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True, preexec_fn=_interruptible, **kw)


def _agents(name: str, value: str) -> set[int]:
    """Live agent processes (python -m harness_agent, the timeout/setsid around it) whose
    environment holds NAME=VALUE; hostctl calls are not measurements."""
    out = set()
    for pid in procs.pids_with_env(name, value):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"harness_agent" in cmd and b"hostctl" not in cmd and procs.alive(pid):
            out.add(pid)
    return out


def _wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout:g} s")


def _rows(out: Path) -> pd.DataFrame:
    from harness.results import load
    return load(out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_interrupted_coordinator_stops_its_remote_measurement(tmp_path, sig, fault_ledger):
    host = start_x86_host(tmp_path / "h", f"int-{sig.name.lower()}")
    try:
        inv = write_inventory(tmp_path / "inv.toml", [host.inventory_entry()])
        out = tmp_path / "out"
        p = _harness(str(_suite(tmp_path / "long.toml", 200)), "--data", str(out),
                     "--inventory", str(inv))
        try:
            agents = _wait_for(lambda: _agents(TOKEN_ENV, host.token), 240, "agent on the host")
            time.sleep(1.0)  # into the measurement
            os.kill(p.pid, sig)  # the coordinator alone, as `kill` does
            t0 = time.monotonic()
            try:
                _wait_for(lambda: not _agents(TOKEN_ENV, host.token) or None, STOP_WITHIN_S,
                          "end of the agent after the signal")
            except AssertionError as e:  # say what the coordinator was doing
                p.kill()
                raise AssertionError(f"{e}; coordinator: {p.communicate()[1][-3000:]}") from None
            stopped_s = time.monotonic() - t0
            _, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        assert p.returncode == (130 if sig == signal.SIGINT else 143), err[-2000:]
        assert all(not procs.alive(a) for a in agents)
        print(f"{sig.name}: remote agent gone {stopped_s:.1f} s after the signal")
        # the lease was released: the next run neither waits nor finds anything running
        assert not (host.local_path(host.workdir) / "lock").exists()
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "harness", "run",
                            str(_suite(tmp_path / "short.toml", 0.3)), "--data", str(out),
                            "--inventory", str(inv), "--no-progress"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert time.monotonic() - t0 < 60  # no wait on a lease (lock_wait_s is 60)
        df = _rows(out)
        assert list(df.status) == ["ok"]
        fault_ledger.record(faults=1, expected=1, present=len(df))
    finally:
        host.stop()


def test_a_killed_coordinators_measurement_is_stopped_before_the_next_run_measures(
        tmp_path, fault_ledger):
    host = start_x86_host(tmp_path / "h", "leftover")
    seen: list[tuple[float, set[int]]] = []
    done = threading.Event()
    try:
        inv = write_inventory(tmp_path / "inv.toml", [host.inventory_entry()])
        out = tmp_path / "out"
        p = _harness(str(_suite(tmp_path / "long.toml", 200)), "--data", str(out),
                     "--inventory", str(inv))
        try:
            _wait_for(lambda: _agents(TOKEN_ENV, host.token), 240, "agent on the host")
            time.sleep(1.0)
        finally:
            os.killpg(p.pid, signal.SIGKILL)  # the coordinator, its Ray, all it started here
            p.wait()
        time.sleep(1.0)
        # the fault: the measurement on the host outlives its coordinator
        leftover = _agents(TOKEN_ENV, host.token)
        assert leftover, "the agent died with the coordinator"

        def watch():  # every agent process of the host, every 10 ms, until the next run ends
            while not done.is_set():
                seen.append((time.time(), _agents(TOKEN_ENV, host.token)))
                time.sleep(0.01)

        w = threading.Thread(target=watch, daemon=True)
        w.start()
        r = subprocess.run([sys.executable, "-m", "harness", "run",
                            str(_suite(tmp_path / "short.toml", 0.3, 2)), "--data", str(out),
                            "--inventory", str(inv), "--no-progress"],
                           capture_output=True, text=True, timeout=300)
        done.set()
        w.join(10)
        assert r.returncode == 0, r.stdout[-1000:] + r.stderr[-2000:]
        # reclaimed at once (its owner is provably dead), not after the lease's 15 minutes
        gone = next((t for t, pids in seen if not pids & leftover), None)
        assert gone is not None, "the leftover measurement was never stopped"
        new = [(t, pids) for t, pids in seen if pids - leftover]
        assert new, "the next run started no agent"
        assert all(not (pids & leftover) for t, pids in new)  # never both at once
        assert new[0][0] >= gone
        df = _rows(out)
        mine = df[df.run_id != df.run_id.iloc[0]] if df.run_id.nunique() > 1 else df
        assert list(mine.status) == ["ok", "ok"]
        first = pd.Timestamp(mine.started_at.min())
        first = (first.tz_localize("UTC") if first.tzinfo is None else first).timestamp()
        assert first >= gone - 0.05  # the first measurement began after
        fault_ledger.record(faults=1, expected=2, present=len(mine))
    finally:
        done.set()
        host.stop()


BUSY = """
import json, sys
from pathlib import Path
from harness.config.suite import load_suite
from harness.coordinator import run_suite
r = run_suite(load_suite(sys.argv[1]), Path(sys.argv[2]), progress=False, lock_wait_s=2)
print(json.dumps([[x["status"], x.get("error")] for x in r.rows]))
"""


def test_two_local_runs_take_turns(tmp_path, fault_ledger):
    env = dict(os.environ, HARNESS_LOCAL_WORKDIR=str(tmp_path / "local"))
    env_a, env_b = dict(env, LEASE_TEST_RUN="a"), dict(env, LEASE_TEST_RUN="b")
    seen: list[tuple[float, set[int], set[int]]] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.append((time.time(), _agents("LEASE_TEST_RUN", "a"),
                         _agents("LEASE_TEST_RUN", "b")))
            time.sleep(0.02)

    w = threading.Thread(target=watch, daemon=True)
    a = _harness(str(_suite(tmp_path / "a.toml", 15, 2)), "--data", str(tmp_path / "a"),
                 env=env_a)
    b = c = None
    try:
        _wait_for(lambda: _agents("LEASE_TEST_RUN", "a"), 240, "agent of the first run")
        w.start()
        b = _harness(str(_suite(tmp_path / "b.toml", 0.3, 2)), "--data", str(tmp_path / "b"),
                     env=env_b)
        # a third one that waits only 2 s: host_busy, naming the first run as the holder
        c = subprocess.run([sys.executable, "-c", BUSY, str(tmp_path / "b.toml"),
                            str(tmp_path / "c")], capture_output=True, text=True, timeout=240,
                           env=dict(env, LEASE_TEST_RUN="c"))
        assert c.returncode == 0, c.stderr[-2000:]
        _, a_err = a.communicate(timeout=300)
        _, b_err = b.communicate(timeout=300)
    finally:
        done.set()
        for p in (a, b):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert a.returncode == 0 and b.returncode == 0, a_err[-1500:] + b_err[-1500:]
    rows_a, rows_b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert set(rows_a.status) == {"ok"} and set(rows_b.status) == {"ok"}
    # the second run waited: its first measurement began after the first run's last ended
    assert rows_b.started_at.min() >= rows_a.ended_at.max()
    assert not any(pa and pb for _, pa, pb in seen)  # never an agent of each at once
    busy = json.loads(c.stdout.strip().splitlines()[-1])
    run_a = rows_a.run_id.iloc[0]
    assert [s for s, _ in busy] == ["host_busy", "host_busy"]
    assert all(f":{run_a}:" in e and "locked by" in e for _, e in busy), busy
    fault_ledger.record(faults=2, expected=len(rows_a) + len(rows_b) + len(busy),
                        present=len(rows_a) + len(rows_b) + len(busy))


def test_a_run_that_fails_midway_leaves_this_machine_free(tmp_path, ray_instance,
                                                           fault_ledger):
    """A coordinator that lives on after a failed run (a notebook, a test: the Ray instance is
    the caller's, and keeps the host workers) releases its lease: the next run does not wait."""
    from harness.config.suite import load_suite
    from harness.coordinator import run_suite
    from harness.executors.local import local_workdir
    suite = load_suite(_suite(tmp_path / "s.toml", 0.2))

    def boom(cfg, job):
        raise RuntimeError("injected coordinator failure")

    with pytest.raises(RuntimeError, match="injected"):
        run_suite(suite, tmp_path / "out", progress=False, job_hook=boom)
    assert not (Path(local_workdir()) / "lock").exists()
    report = run_suite(suite, tmp_path / "out", progress=False, lock_wait_s=0)
    assert [r["status"] for r in report.rows] == ["ok"]
    fault_ledger.record(faults=1, expected=1, present=len(report.rows))
