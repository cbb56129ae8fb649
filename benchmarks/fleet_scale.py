"""What the coordinator costs per host: N loopback sshd hosts, one tiny configuration each.

    python benchmarks/fleet_scale.py [--hosts 1,10,50,200] [--placement threads,ray]

Run as root (it starts sshd test hosts, as the tests do). For each N and placement it runs
`harness run` as a subprocess over an inventory of N hosts and prints:

- wall time of the run (s) and setup time per host (the run's wall minus the one measurement,
  divided by N: connecting, leasing, probing, pushing the agent and the model);
- coordinator peak RSS: the whole process tree of `harness run` (Ray's processes included when
  placed on Ray; the agents are not in it: they are children of the hosts' sshd), sampled every
  0.1 s from /proc;
- coordinator CPU seconds (user + system of the process tree: getrusage of the reaped
  children, or the per-process counters sampled from /proc where that is more, as for Ray's
  own daemons) and per host.
Hosts are set up once before the figures (the agent pushed), so every run finds them warm.
At most `--max-parallel-hosts` (20) hosts measure at once: the loopback hosts share this
machine's two cores, and 200 agents started together starve every host's sshd (remote
commands time out). The coordinator still holds all N connections and workers.

Targets (issue 16): 200 hosts, peak RSS <= 1.5 GiB including Ray, CPU <= 0.1 s per host per
configuration beyond SSH itself; no host's rows lost. The hosts' agents share this machine's
cores, so the wall time says little about the coordinator; its RSS and CPU do.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SUITE = """
name = "fleet-scale"
engines = { ncnn = "installed" }
threads = [1]
[measure]
warmup = 0
min_iterations = 1
min_seconds = 0.0
processes = 1
timeout_s = 600
[[models]]
name = "r"
builtin = "reduction_sum_block"
"""


TICK = os.sysconf("SC_CLK_TCK")


def tree_sample(root: int, cpu: dict) -> int:
    """Summed VmRSS (KiB) of `root` and its live descendants; records each one's CPU seconds
    so far (utime + stime) in `cpu` by (pid, start time)."""
    from tests.hosts import procs
    total = 0
    for pid in (root, *procs.descendants(root)):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            stat = Path(f"/proc/{pid}/stat").read_text()
            f = stat[stat.rfind(")") + 2:].split()
            cpu[(pid, f[19])] = (int(f[11]) + int(f[12])) / TICK
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_once(inv: Path, suite: Path, out: Path, placement: str, parallel: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite), "--inventory",
                          str(inv), "--data", str(out), "--no-progress", "--placement",
                          placement, "--max-parallel-hosts", str(parallel)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak, seen = [0], {}

    def sample() -> None:
        while p.poll() is None:
            peak[0] = max(peak[0], tree_sample(p.pid, seen))
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    output, _ = p.communicate()
    wall = time.perf_counter() - t0
    th.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Reaped children are counted by getrusage; Ray's daemons are not the coordinator's to
    # reap, so their CPU is what the sampler saw (up to 0.1 s short per process).
    cpu = max((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
              sum(seen.values()))
    from harness.results import load
    try:
        df = load(out)
        rows, ok = len(df), int((df["status"] == "ok").sum())
        measured = float((df["load_ms"].fillna(0).sum() + df["warmup_ms"].fillna(0).sum())
                         / 1e3 + df["timed_s"].fillna(0).sum())
    except Exception as e:  # a run that wrote nothing: say so in the figures
        rows = ok = 0
        measured = 0.0
        output += f"\n(no rows: {e})"
    return {"wall_s": wall, "peak_rss_mib": peak[0] / 1024, "cpu_s": cpu, "rows": rows,
            "ok": ok, "measured_s": measured, "rc": p.returncode, "tail": output[-600:]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", default="1,10,50,200")
    ap.add_argument("--placement", default="threads,ray")
    ap.add_argument("--max-parallel-hosts", type=int, default=20,
                    help="hosts measuring at once: these hosts share this machine's cores, "
                         "and 200 agents started together starve every host's sshd past the "
                         "harness's 60 s per remote command (default 20)")
    a = ap.parse_args()
    counts = [int(x) for x in a.hosts.split(",")]
    placements = a.placement.split(",")
    from tests.helpers import write_inventory
    from tests.hosts.sshd import start_x86_host
    tmp = Path(tempfile.mkdtemp(prefix="fleet-scale-"))
    suite = tmp / "suite.toml"
    suite.write_text(SUITE)
    hosts = []
    try:
        subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--data",
                        str(tmp / "warm"), "--no-progress"], check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})  # conversions cached
        t = time.perf_counter()
        for i in range(max(counts)):
            hosts.append(start_x86_host(tmp / f"h{i}", f"h{i:03d}"))
        print(f"started {len(hosts)} sshd hosts in {time.perf_counter() - t:.1f} s")
        inv = write_inventory(tmp / "inv-all.toml", [h.inventory_entry() for h in hosts])
        t = time.perf_counter()
        warm = run_once(inv, suite, tmp / "out-warm", "threads", a.max_parallel_hosts)
        print(f"first run on all {len(hosts)} hosts (agent pushed): {warm['wall_s']:.1f} s, "
              f"{warm['ok']}/{len(hosts)} ok")
        print("hosts  placement  wall_s  setup_s/host  peak_rss_MiB  cpu_s  cpu_s/host  "
              "rows ok/expected")
        for n in counts:
            inv = write_inventory(tmp / f"inv-{n}.toml", [h.inventory_entry()
                                                          for h in hosts[:n]])
            for placement in placements:
                r = run_once(inv, suite, tmp / f"out-{n}-{placement}", placement,
                             a.max_parallel_hosts)
                setup = (r["wall_s"] - r["measured_s"] / max(n, 1)) / n
                print(f"{n:5d}  {placement:9s}  {r['wall_s']:6.1f}  {setup:12.3f}  "
                      f"{r['peak_rss_mib']:12.0f}  {r['cpu_s']:5.1f}  {r['cpu_s'] / n:10.3f}  "
                      f"{r['ok']}/{n}", flush=True)
                if r["ok"] != n:
                    print(f"       rc {r['rc']}: {r['tail']}")
    finally:
        for h in hosts:
            h.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
