"""Fault injection with real processes and real SSH hosts: nothing finished is ever lost.

Each test records into the session's fault ledger; the figure line is printed at the end of
the test run (faults injected, rows expected, rows present, rows lost).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from harness.coordinator import run_suite
from harness.fleet.inventory import load_inventory
from harness.config.suite import load_suite
from tests.hosts.sshd import start_x86_host
from tests.helpers import write_inventory

pytestmark = [pytest.mark.engines, pytest.mark.slow]

SMALL = """
name = "rel"
engines = {{ ncnn = "installed", mnn = "installed" }}
threads = [1, 2]
[measure]
warmup = 0
min_iterations = 3
min_seconds = {secs}
processes = {procs}
timeout_s = {timeout}
[[models]]
name = "reduce"
builtin = "reduction_sum_block"
"""


def _suite(tmp_path, secs=0.0, procs=1, timeout=120, extra=""):
    p = tmp_path / f"s-{uuid.uuid4().hex[:6]}.toml"
    p.write_text(SMALL.format(secs=secs, procs=procs, timeout=timeout) + extra)
    return load_suite(p)


def _configs(df):
    return df[["host", "series", "process"]].drop_duplicates()


@pytest.mark.hosts
def test_host_lost_mid_sweep_then_resume(tmp_path, ray_instance, fault_ledger):
    a = start_x86_host(tmp_path / "a", "lost-a")
    b = start_x86_host(tmp_path / "b", "lost-b")
    try:
        inv = write_inventory(tmp_path / "inv.toml", [a.inventory_entry(), b.inventory_entry()])
        suite = _suite(tmp_path, secs=0.4, procs=2)
        out = tmp_path / "out"
        started = {"n": 0}

        # kill host b (its sshd and every session) while one of its measurements is running,
        # once a couple of rows are in
        from tests.hosts import procs
        from tests.hosts.sshd import TOKEN_ENV

        def agent_running_on_b() -> bool:
            for pid in procs.pids_with_env(TOKEN_ENV, b.token):
                try:
                    if b"harness_agent" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        return True
                except OSError:
                    pass
            return False

        def killer():
            jdir = out / "_journal"
            deadline = time.time() + 120
            while time.time() < deadline:
                rows = sum(len(p.read_text().splitlines()) for p in jdir.glob("*.jsonl")) \
                    if jdir.exists() else 0
                if rows >= 3 and agent_running_on_b():
                    time.sleep(0.2)  # into the measurement, past interpreter start
                    b.stop()
                    started["n"] = rows
                    return
                time.sleep(0.02)

        t = threading.Thread(target=killer)
        t.start()
        report = run_suite(suite, out, hosts=load_inventory(inv), progress=False)
        t.join()
        df = pd.DataFrame(report.rows)
        assert (df[df.host == "lost-a"].status == "ok").all()
        lost = df[df.host == "lost-b"]
        assert (lost.status == "unreachable").any(), lost.status.tolist()
        # infrastructure errors are never recorded as engine failures
        assert not (df.status == "error").any()
        assert lost[lost.status == "unreachable"].error.str.contains("lost-b").all()
        assert started["n"] >= 3  # the kill happened, mid-measurement
        # the measurement that was running when the host died is unreachable too (either the
        # SSH call fails or the agent's channel closes without a result)
        assert len(lost) == 8 and (lost.status.isin(["ok", "unreachable"])).all(), \
            list(zip(lost.status, lost.error))
        # the CLI's exit code for such a run is non-zero (checked through its footer)
        from harness.cli.run import run_footer
        assert run_footer(report, out) == 1

        b2 = start_x86_host(tmp_path / "b2", "lost-b")
        try:
            inv2 = write_inventory(tmp_path / "inv2.toml", [a.inventory_entry(),
                                                            b2.inventory_entry()])
            again = run_suite(suite, out, hosts=load_inventory(inv2), progress=False,
                              resume=report.run_id)
        finally:
            b2.stop()
        n_unreachable = int((lost.status == "unreachable").sum())
        assert len(again.rows) == len(report.rows)
        final = pd.read_parquet(out)
        final = final[final.run_id == report.run_id]
        expected = 2 * 2 * 2 * 2  # hosts x engines x threads x processes
        assert len(final) == expected and len(_configs(final)) == expected
        assert set(final.status) == {"ok"}
        fault_ledger.record(faults=1, expected=expected, present=len(final))
        assert n_unreachable > 0
    finally:
        a.stop()
        b.stop()


def _cgroup_dir(name: str) -> Path | None:
    """A fresh memory cgroup below ours (v1 or v2), or None where we cannot make one."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrl, path = line.split(":", 2)
        if ctrl == "memory":
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            limit_file = "memory.limit_in_bytes"
            break
    else:
        path = next(ln.split(":", 2)[2] for ln in Path("/proc/self/cgroup").read_text()
                    .splitlines() if ln.startswith("0::"))
        base, limit_file = Path("/sys/fs/cgroup") / path.lstrip("/"), "memory.max"
    d = base / name
    try:
        d.mkdir(exist_ok=True)
        (d / limit_file).write_text(str(300 << 20))
    except OSError:
        return None
    return d


def test_out_of_memory_is_a_row_and_the_sweep_goes_on(tmp_path, ray_instance, fault_ledger):
    cg = _cgroup_dir(f"harness-oom-{uuid.uuid4().hex[:6]}")
    if cg is None:
        pytest.skip("no memory cgroup can be created here")
    try:
        extra = '[[models]]\nname = "up"\nbuiltin = "convtranspose_upsampler"\nengines = ["ncnn"]\n'
        suite = _suite(tmp_path, extra=extra)

        def in_cgroup(cfg, job):
            if cfg.model == "up":  # ncnn needs ~600 MiB for it; the cgroup allows 300
                job["cgroup"] = str(cg)

        report = run_suite(suite, tmp_path / "out", progress=False, job_hook=in_cgroup)
        df = pd.DataFrame(report.rows)
        up = df[df.model == "up"]
        assert (up.status == "oom").all(), up[["status", "error"]].to_dict("records")
        assert (up.rss_last_peak_kb > 0).all()  # the last peak seen before the kill
        assert (df[df.model == "reduce"].status == "ok").all()
        fault_ledger.record(faults=len(up), expected=len(df),
                            present=len(pd.read_parquet(tmp_path / "out")))
    finally:
        for p in cg.iterdir() if cg.exists() else []:
            pass
        try:
            os.rmdir(cg)
        except OSError:
            pass


def _stray(marker: str) -> list[str]:
    p = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True)
    return [ln for ln in p.stdout.splitlines() if marker in ln and "ps -eo" not in ln]


def test_hang_is_killed_with_its_process_group(tmp_path, x86_host_a, ray_instance,
                                               fault_ledger):
    suite = _suite(tmp_path, timeout=4)
    marker = f"hang-{uuid.uuid4().hex[:8]}"

    def hang(cfg, job):
        if cfg.threads == 2:
            job["inject"] = {"hang_in": "first", "spawn_child": True}
            job["options"] = dict(job.get("options") or {})
        job["marker"] = marker  # travels in the job, so it is on the agent's command line

    inv = write_inventory(tmp_path / "inv.toml", [x86_host_a.inventory_entry()])
    for hosts in (None, load_inventory(inv)):
        t0 = time.time()
        report = run_suite(suite, tmp_path / "out", hosts=hosts, progress=False, job_hook=hang)
        df = pd.DataFrame(report.rows)
        hung = df[df.threads == 2]
        assert (hung.status == "timeout").all(), hung[["status", "error"]].to_dict("records")
        assert (df[df.threads == 1].status == "ok").all()
        assert time.time() - t0 < 60
        time.sleep(0.5)
        leftovers = _stray(marker) + _stray("time.sleep(100000)")
        assert leftovers == [], leftovers
        fault_ledger.record(faults=len(hung), expected=len(df), present=len(df))


def test_coordinator_killed_then_resumed(tmp_path, fault_ledger):
    suite = tmp_path / "s.toml"
    suite.write_text(SMALL.format(secs=0.5, procs=3, timeout=120))
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite), "--data", str(out),
                          "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    jdir = out / "_journal"
    deadline = time.time() + 180
    while time.time() < deadline:
        j = list(jdir.glob("*.jsonl")) if jdir.exists() else []
        if j and len(j[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)  # the coordinator and everything it started
    p.wait()
    run_id = j[0].stem
    finished = len(j[0].read_text().splitlines())
    assert 3 <= finished < 12
    # no partial file reads as data; every row finished before the kill is there after recovery
    from harness.store.writer import recover_orphans
    recover_orphans(out)
    df = pd.read_parquet(out)
    assert len(df) >= finished
    r = subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--data", str(out),
                        "--no-progress", "--resume", run_id], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_parquet(out)
    assert len(df) == 12 and len(_configs(df)) == 12 and set(df.run_id) == {run_id}
    assert not list(out.rglob(".*.tmp"))
    fault_ledger.record(faults=1, expected=12, present=len(df))


def test_coordinator_killed_host_lock_is_reclaimed(tmp_path, x86_host_b, fault_ledger):
    inv = write_inventory(tmp_path / "inv.toml", [x86_host_b.inventory_entry()])
    suite = tmp_path / "s.toml"
    suite.write_text(SMALL.format(secs=0.5, procs=2, timeout=120))
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite), "--data", str(out),
                          "--inventory", str(inv), "--no-progress"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    lock = x86_host_b.local_path(x86_host_b.workdir) / "lock"
    deadline = time.time() + 120
    jdir = out / "_journal"
    while time.time() < deadline:
        j = list(jdir.glob("*.jsonl")) if jdir.exists() else []
        if lock.exists() and j and j[0].read_text().strip():
            break
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert lock.exists()  # the dead coordinator's lock is still there...
    r = subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--data", str(out),
                        "--inventory", str(inv), "--no-progress", "--resume", j[0].stem],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-1000:] + r.stderr[-2000:]  # ...and was reclaimed
    df = pd.read_parquet(out)
    assert len(df) == 8 and set(df.status) == {"ok"}
    assert not lock.exists()
    fault_ledger.record(faults=1, expected=8, present=len(df))


def test_corrupted_model_on_host_is_caught_and_repushed(tmp_path, x86_host_a, ray_instance,
                                                        fault_ledger):
    inv = load_inventory(write_inventory(tmp_path / "inv.toml", [x86_host_a.inventory_entry()]))
    suite = _suite(tmp_path)
    first = run_suite(suite, tmp_path / "out", hosts=inv, progress=False)
    assert {r["status"] for r in first.rows} == {"ok"}
    blobs = x86_host_a.local_path(x86_host_a.workdir) / "blobs"
    mnn_sha = next(r["artifact_sha256"] for r in first.rows if r["engine"] == "mnn")
    victim = blobs / mnn_sha
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    second = run_suite(suite, tmp_path / "out", hosts=inv, progress=False)
    df = pd.DataFrame(second.rows)
    assert set(df.status) == {"ok"}, df[["status", "error"]].to_dict("records")
    mnn = df[df.engine == "mnn"]
    assert mnn.notes.str.contains("re-pushed").any()
    repushed = [t for t in second.transfers if t["sha256"] == mnn_sha]
    assert len(repushed) == 1

    # a file that stays damaged whatever is sent (a failing disk): the expected hash of the
    # model never matches, so after one re-push the row says corrupt and the sweep goes on
    def failing_disk(cfg, job):
        if cfg.engine == "mnn":
            path = job["files"]["mnn"]
            job["sha256"][path] = "0" * 64

    third = run_suite(suite, tmp_path / "out", hosts=inv, progress=False, job_hook=failing_disk)
    df3 = pd.DataFrame(third.rows)
    assert set(df3[df3.engine == "mnn"].status) == {"corrupt"}
    assert df3[df3.engine == "mnn"].error.str.contains("still damaged after a re-push").all()
    assert set(df3[df3.engine == "ncnn"].status) == {"ok"}
    fault_ledger.record(faults=2, expected=len(df) + len(df3), present=len(df) + len(df3))


@pytest.mark.hosts
def test_disk_full_on_host_is_an_error_row(tmp_path, ray_instance, fault_ledger):
    host = start_x86_host(tmp_path / "full", "full-disk")
    work = host.local_path(host.workdir)
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(work)], check=True)
    try:
        extra = '[[models]]\nname = "det"\nbuiltin = "ppocr_det"\nengines = ["ncnn"]\nthreads = [1]\n'
        suite = _suite(tmp_path, extra=extra)
        inv = load_inventory(write_inventory(tmp_path / "inv.toml", [host.inventory_entry()]))
        report = run_suite(suite, tmp_path / "out", hosts=inv, progress=False)
        df = pd.DataFrame(report.rows)
        det = df[df.model == "det"]
        assert (det.status == "host_error").all(), det[["status", "error"]].to_dict("records")
        assert det.error.str.contains("writing").all()
        # the coordinator kept going: the small model fits and was measured
        assert (df[df.model == "reduce"].status == "ok").all()
        fault_ledger.record(faults=1, expected=len(df),
                            present=len(pd.read_parquet(tmp_path / "out")))
    finally:
        host.stop()
        subprocess.run(["umount", "-l", str(work)])


def test_second_coordinator_waits_then_fails_clearly(tmp_path, x86_host_b, ray_instance,
                                                     fault_ledger):
    e = x86_host_b.inventory_entry()
    inv = load_inventory(write_inventory(tmp_path / "inv.toml", [e]))
    suite = _suite(tmp_path)
    # first make sure the agent is on the host, then hold its lock as another coordinator would
    run_suite(suite, tmp_path / "out", hosts=inv, progress=False)
    work = x86_host_b.local_path(x86_host_b.workdir)
    agent_root = next((work / "agent").iterdir())
    env = dict(os.environ, PYTHONPATH=str(agent_root))
    subprocess.run([sys.executable, "-m", "harness_agent.hostctl", "lock", str(work),
                    "other-coordinator:1:x", "60", "0"], env=env, check=True)
    try:
        t0 = time.time()
        report = run_suite(suite, tmp_path / "out", hosts=inv, progress=False, lock_wait_s=2)
        waited = time.time() - t0
        df = pd.DataFrame(report.rows)
        assert set(df.status) == {"host_busy"}
        assert df.error.str.contains("locked by other-coordinator").all()
        assert waited >= 2
        fault_ledger.record(faults=1, expected=len(df), present=len(df))
    finally:
        subprocess.run([sys.executable, "-m", "harness_agent.hostctl", "unlock", str(work),
                        "other-coordinator:1:x"], env=env, check=True)
