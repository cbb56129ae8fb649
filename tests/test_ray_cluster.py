"""A real two-node Ray cluster on this machine (`ray start --head`, `ray start --address`), each
node offering its own route resource: a suite over two hosts routed one to each node gives rows
from both; killing the second node mid-run makes its host's remaining rows `unreachable` and
no other host's, the run still returns, and `--resume` completes them."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import tiny_suite, write_inventory
from tests.hosts import procs

pytestmark = [pytest.mark.hosts, pytest.mark.slow]

PROCESSES = 6
SUITE = tiny_suite("two-nodes", secs=1.0, procs=PROCESSES, timeout_s=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Cluster:
    """Head (resource lab-a) and a second node (lab-b) with token authentication (Ray's
    default for a head started by `ray start`); the token lives in a private file."""

    def __init__(self, tmp: Path):
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        token = tmp / "ray-token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
                    "RAY_USAGE_STATS_ENABLED": "0"}
        self.env.pop("RAY_ADDRESS", None)
        common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
        self._ray("start", "--head", f"--port={self.port}", "--include-dashboard=false",
                  '--resources={"lab-a": 100}', *common)
        self._ray("start", f"--address={self.address}", '--resources={"lab-b": 100}', *common)

    def _ray(self, *args: str) -> None:
        p = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *args], env=self.env,
                           capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, p.stdout[-1500:] + p.stderr[-1500:]

    def _mine(self) -> list[int]:
        """This cluster's processes (never another Ray instance's): those started with its
        GCS port, and everything they started (workers, actors)."""
        roots = [p for p in procs.all_pids() if f":{self.port}" in _cmdline(p)
                 and p != os.getpid()]
        return sorted({p for r in roots for p in (r, *procs.descendants(r))})

    def kill_second_node(self) -> int:
        """SIGKILL the lab-b node's raylet and what it started; how many processes."""
        raylets = [p for p in self._mine() if "raylet/raylet" in _cmdline(p)
                   and "lab-b" in _cmdline(p)]
        assert len(raylets) == 1, raylets
        victims = [raylets[0], *procs.descendants(raylets[0])]
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(victims)

    def stop(self) -> None:
        procs.kill_all(self._mine(), timeout=3)


def _journal_rows(out: Path) -> list[dict]:
    rows = []
    for f in (out / "_journal").glob("*.jsonl") if (out / "_journal").exists() else []:
        for line in f.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def test_two_node_cluster_loses_a_node_then_resume_completes(x86_host_a, x86_host_b, tmp_path,
                                                             fault_ledger):
    from harness.results import load
    cluster = Cluster(tmp_path)
    try:
        a, b = x86_host_a.inventory_entry(), x86_host_b.inventory_entry()
        a["ray_resource"], b["ray_resource"] = "lab-a", "lab-b"
        inv = write_inventory(tmp_path / "inv.toml", [a, b])
        suite = tmp_path / "s.toml"
        suite.write_text(SUITE)
        out = tmp_path / "out"
        run = subprocess.Popen(
            [sys.executable, "-m", "harness", "run", str(suite), "--inventory", str(inv),
             "--data", str(out), "--ray-address", cluster.address, "--no-progress"],
            env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 240
        while time.time() < deadline and run.poll() is None:
            if any(r.get("host") == b["name"] for r in _journal_rows(out)):
                break
            time.sleep(0.1)
        assert run.poll() is None, run.communicate()
        killed = cluster.kill_second_node()
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 1, stdout[-2000:] + stderr[-2000:]
        rows = _journal_rows(out)
        by_host = {h: [r["status"] for r in rows if r["host"] == h] for h in (a["name"],
                                                                             b["name"])}
        assert by_host[a["name"]] == ["ok"] * PROCESSES, by_host
        lost = by_host[b["name"]]
        assert len(lost) == PROCESSES and "ok" in lost and "unreachable" in lost, by_host
        assert set(lost) <= {"ok", "unreachable"}, by_host
        assert killed >= 1
        run_id = rows[0]["run_id"]

        # the rest, with no cluster at all: host workers as threads of the coordinator
        resumed = subprocess.run(
            [sys.executable, "-m", "harness", "run", str(suite), "--inventory", str(inv),
             "--data", str(out), "--resume", run_id, "--no-progress"],
            env=cluster.env, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
        final = load(out, run_id=run_id)
        assert len(final) == 2 * PROCESSES and set(final["status"]) == {"ok"}
        assert final.groupby(["host", "process"]).size().max() == 1
        fault_ledger.record(faults=1, expected=2 * PROCESSES, present=len(final))
    finally:
        cluster.stop()
