"""Failures at the edges, through the CLI as real processes (`harness run`, `harness devices
check`) against real loopback sshd hosts: each is recorded as what actually failed, with its
plain cause, and nothing finished is lost.

- infrastructure vs engine: an agent that cannot start on the host, a write that fails there
  (read-only work dir, full work dir, a disk that fills after setup) and a connection that
  drops mid-measurement are `host_error` / `unreachable` (measured again by --resume), never
  the engine's `error`;
- an sshd that accepts the TCP connection but says nothing, and a missing key file, say so;
- two coordinators setting up one fresh host at once both finish;
- the coordinator's own disk filling up mid-run: one line, exit 2, the rows written before
  kept and the run finished by --resume.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import tiny_suite, write_inventory
from tests.hosts import procs, start_x86_host
from tests.hosts.sshd import TOKEN_ENV

pytestmark = [pytest.mark.hosts, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def _suite(tmp_path: Path, secs: float = 0.2, procs: int = 2) -> Path:
    p = tmp_path / f"suite-{secs}-{procs}.toml"
    p.write_text(tiny_suite("edges", secs=secs, procs=procs, timeout_s=60))
    return p


def _env() -> dict:
    # subprocesses import this tree's harness, whatever the editable install points at
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _harness(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, timeout=timeout, env=_env(), cwd=ROOT)


def _rows(out: Path) -> list[dict]:
    from harness.store.journal import read_journal
    runs = sorted(p.stem for p in (out / "_journal").glob("*.jsonl"))
    return [r for run in runs for r in read_journal(out, run)]


def _plain(text: str) -> bool:
    """One line, no escape codes, no traceback."""
    return "\n" not in text and "\x1b" not in text and "Traceback" not in text


@contextmanager
def _tmpfs(path: Path, size: str, ro: bool = False):
    """A small tmpfs at ``path`` for the length of the ``with`` (we are root)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path) -> None:
    """Fill the filesystem of ``directory`` to the last block."""
    subprocess.run(["dd", "if=/dev/zero", f"of={directory}/_filler", "bs=4k"],
                   capture_output=True, timeout=60)


def _unpack_agent(work: Path) -> Path:
    """The agent as a coordinator would leave it under WORK/agent/<sha16>; its root."""
    from harness.executors.ssh import agent_tarball
    sha, raw = agent_tarball()
    root = work / "agent" / sha[:16]
    root.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        tar.extractall(root)
    (root / ".complete").write_text("")
    return root


# -- 1. infrastructure, not the engine --------------------------------------------------------
def test_host_failures_are_infrastructure_with_their_cause_and_resume_measures_them(
        tmp_path, fault_ledger):
    names = ("nopython", "noagent", "rodisk", "fulldisk", "fullafter", "dropped")
    hosts = {n: start_x86_host(tmp_path / n, n) for n in names}
    started = list(hosts.values())  # every host this test started, to stop
    work = {n: h.local_path(h.workdir) for n, h in hosts.items()}
    entries = {n: h.inventory_entry() for n, h in hosts.items()}
    mounts = []
    stop_killer = threading.Event()
    try:
        # the host's Python is not there
        entries["nopython"]["python"] = "/nonexistent/bin/python3"
        # the agent's copy on the host is complete but broken: it cannot start
        broken = _unpack_agent(work["noagent"]) / "harness_agent" / "runner.py"
        good_runner = broken.read_text()
        broken.write_text("import no_such_module_on_this_host\n")
        # the work directory cannot be written at all, or has no room for the agent
        for n, size, ro in (("rodisk", "64k", True), ("fulldisk", "16k", False),
                            ("fullafter", "2m", False)):
            mounts.append(_tmpfs(work[n], size, ro))
            mounts[-1].__enter__()
        # the agent is there, then the disk filled up: the lease cannot be written
        _unpack_agent(work["fullafter"])
        _fill(work["fullafter"])

        def drop_mid_measurement():  # sshd and every session killed while the agent runs
            h = hosts["dropped"]
            deadline = time.time() + 240
            while time.time() < deadline and not stop_killer.is_set():
                for pid in procs.pids_with_env(TOKEN_ENV, h.token):
                    try:
                        if b"harness_agent\x00measure" in Path(f"/proc/{pid}/cmdline") \
                                .read_bytes():
                            time.sleep(0.3)  # into the measurement, past its start
                            h.stop()
                            return
                    except OSError:
                        pass
                time.sleep(0.02)

        killer = threading.Thread(target=drop_mid_measurement, daemon=True)
        killer.start()
        inv = write_inventory(tmp_path / "inv.toml", list(entries.values()))
        suite, out = _suite(tmp_path, secs=1.0), tmp_path / "out"
        p = _harness("run", str(suite), "--inventory", str(inv), "--data", str(out),
                     "--no-progress")
        killer.join(timeout=10)
        assert p.returncode == 1, p.stdout + p.stderr
        assert "Traceback" not in p.stderr, p.stderr
        rows = _rows(out)
        by_host = {n: [r for r in rows if r["host"] == n] for n in names}
        assert all(len(rs) == 2 for rs in by_host.values()), {n: len(v) for n, v in
                                                               by_host.items()}
        # nothing here is the engine's failure
        assert not [r for r in rows if r["status"] == "error"], rows
        expect = {
            "nopython": ("host_error", "/nonexistent/bin/python3 does not run on the host: "),
            "noagent": ("host_error", "the agent could not start (exit 3): harness_agent "
                        "cannot start on this host: ModuleNotFoundError: No module named "
                        "'no_such_module_on_this_host'"),
            "rodisk": ("host_error", "Read-only file system"),
            "fulldisk": ("host_error", "No space left on device ("),
            "fullafter": ("host_error", "No space left on device"),
        }
        for n, (status, says) in expect.items():
            for r in by_host[n]:
                assert r["status"] == status and says in r["error"], (n, r["error"])
        dropped = by_host["dropped"]
        assert {r["status"] for r in dropped} <= {"ok", "unreachable"}, dropped
        assert any(r["status"] == "unreachable" for r in dropped), dropped
        lost = [r for r in dropped if r["status"] == "unreachable"]
        assert all(r["error"].startswith("dropped: ") and "connection lost" in r["error"]
                   for r in lost), lost
        # the error column holds the cause: one plain line
        for r in rows:
            if r["status"] != "ok":
                assert _plain(r["error"]) and len(r["error"]) <= 500, r["error"]
        run_id = rows[0]["run_id"]
        assert f"--resume {run_id}" in p.stdout

        # the faults repaired, --resume measures every one of them again
        for m in mounts:
            m.__exit__(None, None, None)
        mounts.clear()
        entries["nopython"]["python"] = hosts["nopython"].python
        broken.write_text(good_runner)
        hosts["dropped"] = start_x86_host(tmp_path / "dropped2", "dropped")
        started.append(hosts["dropped"])
        entries["dropped"] = hosts["dropped"].inventory_entry()
        inv2 = write_inventory(tmp_path / "inv2.toml", list(entries.values()))
        r = _harness("run", str(suite), "--inventory", str(inv2), "--data", str(out),
                     "--no-progress", "--resume", run_id)
        assert r.returncode == 0, r.stdout + r.stderr
        from harness.results import load
        final = load(out, run_id=run_id)
        assert len(final) == 2 * len(names) and set(final.status) == {"ok"}, \
            final[["host", "status", "error"]].to_dict("records")
        fault_ledger.record(faults=len(names), expected=2 * len(names), present=len(final))
    finally:
        stop_killer.set()
        for m in mounts:
            m.__exit__(None, None, None)
        for h in started:
            h.stop()


# -- 2. say what is wrong -------------------------------------------------------------------
class SilentServer:
    """A TCP server that accepts connections and never sends a byte (a hung sshd)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_a_silent_sshd_and_a_missing_key_say_what_is_wrong(tmp_path, fault_ledger):
    from harness.fleet.transport import BANNER_TIMEOUT_S
    good = start_x86_host(tmp_path / "good", "good")
    stopped = start_x86_host(tmp_path / "stopped", "stopped")
    silent = SilentServer()
    no_banner = f"accepted the connection but sent no SSH banner within {BANNER_TIMEOUT_S} s"
    missing = tmp_path / "no_such_key"
    os.kill(stopped._proc.pid, signal.SIGSTOP)  # its listening sshd: TCP accepts, no banner
    try:
        entries = [dict(good.inventory_entry(), name="silent", port=silent.port),
                   stopped.inventory_entry(),
                   dict(good.inventory_entry(), name="nokey", identity_file=str(missing))]
        inv = write_inventory(tmp_path / "inv.toml", entries)
        p = _harness("devices", "check", str(inv))
        assert p.returncode == 1
        lines = {ln.split()[0]: ln for ln in p.stdout.splitlines() if "FAIL" in ln}
        assert f"127.0.0.1:{silent.port} {no_banner}" in lines["silent"], p.stdout
        assert f"127.0.0.1:{stopped.port} {no_banner}" in lines["stopped"], p.stdout
        assert f"identity_file {missing} does not exist" in lines["nokey"], p.stdout
        assert "No existing session" not in p.stdout + p.stderr
        assert p.stderr == "", p.stderr  # paramiko's own log lines are not printed

        out = tmp_path / "out"
        p = _harness("run", str(_suite(tmp_path, procs=1)), "--inventory", str(inv),
                     "--data", str(out), "--no-progress")
        assert p.returncode == 1 and "Traceback" not in p.stderr
        errs = {r["host"]: (r["status"], r["error"]) for r in _rows(out)}
        assert errs["silent"][0] == errs["stopped"][0] == errs["nokey"][0] == "unreachable"
        assert f"silent: 127.0.0.1:{silent.port} {no_banner}" in errs["silent"][1]
        assert no_banner in errs["stopped"][1]
        assert f"identity_file {missing} does not exist" in errs["nokey"][1]
        assert f"host silent: 127.0.0.1:{silent.port} {no_banner}" in p.stderr, p.stderr
        n_rows = len(errs)

        for target, key, says in ((f"root@127.0.0.1:{silent.port}", good.identity_file,
                                   f"127.0.0.1:{silent.port} {no_banner}"),
                                  (f"root@127.0.0.1:{good.port}", missing,
                                   f"identity_file {missing} does not exist")):
            out = tmp_path / f"out-{len(str(key))}-{target[-5:]}"
            p = _harness("run", str(_suite(tmp_path, procs=1)), "--on", target,
                         "--identity-file", str(key), "--known-hosts", str(good.known_hosts),
                         "--data", str(out), "--no-progress")
            assert p.returncode == 1 and says in p.stderr, p.stderr
            assert "No existing session" not in p.stderr and "Traceback" not in p.stderr
            rows = _rows(out)
            assert [r["status"] for r in rows] == ["unreachable"] and says in rows[0]["error"]
            n_rows += len(rows)
        fault_ledger.record(faults=5, expected=n_rows, present=n_rows)
    finally:
        os.kill(stopped._proc.pid, signal.SIGCONT)
        silent.close()
        good.stop()
        stopped.stop()


# -- 3. setup is safe to run concurrently -----------------------------------------------------
def test_two_coordinators_set_up_one_fresh_host_at_once(tmp_path, fault_ledger):
    host = start_x86_host(tmp_path / "fresh", "fresh")
    try:
        inv = write_inventory(tmp_path / "inv.toml", [host.inventory_entry()])
        suite = _suite(tmp_path)
        work = host.local_path(host.workdir)
        assert not (work / "agent").exists()  # fresh: nothing set up yet
        runs = [subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite),
                                  "--inventory", str(inv), "--data", str(tmp_path / f"o{i}"),
                                  "--no-progress"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
                for i in (0, 1)]
        results = [p.communicate(timeout=400) for p in runs]
        for p, (o, e) in zip(runs, results):
            # one may have waited for the other's lease; both measured
            assert p.returncode == 0, o + e
            assert "unpacking the agent failed" not in o + e
        rows = [_rows(tmp_path / f"o{i}") for i in (0, 1)]
        assert [len(r) for r in rows] == [2, 2]
        assert {r["status"] for rs in rows for r in rs} == {"ok"}
        # one complete copy of the agent, no upload or half-unpacked directory left behind
        left = sorted(p.name for p in (work / "agent").iterdir())
        assert len(left) == 1 and (work / "agent" / left[0] / ".complete").exists(), left
        fault_ledger.record(faults=1, expected=4, present=sum(len(r) for r in rows))
    finally:
        host.stop()


# -- 4. the coordinator's disk fills up -------------------------------------------------------
def test_results_disk_filling_up_mid_run(tmp_path, fault_ledger):
    from harness.results import DatasetError, load
    from harness.store.journal import read_journal
    suite = _suite(tmp_path, secs=0.3, procs=12)
    out = tmp_path / "out"
    with _tmpfs(out, "4m"):
        p = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite), "--data",
                              str(out), "--no-progress"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
        jdir, j = out / "_journal", []
        deadline = time.time() + 240
        while time.time() < deadline and p.poll() is None:
            j = list(jdir.glob("*.jsonl")) if jdir.exists() else []
            if j and len(j[0].read_bytes().splitlines()) >= 3:
                break
            time.sleep(0.05)
        assert j, "no journal before the run ended"
        _fill(out)
        before = [json.loads(ln) for ln in j[0].read_bytes().splitlines()]
        try:  # the dataset's own files only (_models/ and the like are side tables)
            parquet_before = len(load(out, allow_empty=True))
        except DatasetError:
            parquet_before = 0
        o, e = p.communicate(timeout=300)
        run_id = j[0].stem
        assert p.returncode == 2, o + e
        lines = e.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in e, e
        assert lines[0].startswith(f"harness: error: {out}: the disk is full"), e
        assert f"--resume {run_id}" in lines[0]
        # nothing written before is lost; no half-written file
        raw = j[0].read_bytes()
        assert raw.endswith(b"\n") and all(json.loads(ln) for ln in raw.splitlines())
        kept = read_journal(out, run_id)
        assert len(kept) >= len(before) and len(kept) < 12
        assert f"the {len(kept)} rows written before are kept" in lines[0]
        if parquet_before:
            assert len(load(out)) >= parquet_before
        assert not [f for f in out.rglob(".*") if f.name != "_filler"], list(out.rglob(".*"))
        # space freed, --resume finishes the run with every row
        (out / "_filler").unlink()
        r = _harness("run", str(suite), "--data", str(out), "--no-progress", "--resume",
                     run_id)
        assert r.returncode == 0, r.stdout + r.stderr
        final = load(out, run_id=run_id)
        assert len(final) == 12 and set(final.status) == {"ok"}
        assert {row["process"] for row in kept} <= set(final.process)
        fault_ledger.record(faults=1, expected=12, present=len(final))
