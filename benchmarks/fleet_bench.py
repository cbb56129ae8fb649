"""Fleet benchmarks over real loopback SSH hosts (run as root; starts two sshd test hosts).

    python benchmarks/fleet_bench.py

Prints: scale-out (two x86 hosts ÷ the slower host alone; target <= 1.2), per-configuration
overhead over SSH minus local (target <= 0.5 s), and model bytes pushed on a first and second run.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SUITE = """
name = "fleet-bench"
engines = { mnn = "installed", ncnn = "installed" }
threads = [1]
[measure]
warmup = 1
min_iterations = 10
min_seconds = 0.3
processes = 3
[[models]]
name = "cls"
builtin = "ppocr_cls"
[[models]]
name = "reduce"
builtin = "reduction_sum_block"
"""


def overhead_s(report) -> float:
    rows = report.rows
    measured = sum((r.get("load_ms") or 0) + (r.get("warmup_ms") or 0) for r in rows) / 1e3
    measured += sum(r.get("timed_s") or 0 for r in rows)
    return (report.wall_s - measured) / len(rows)


def main() -> None:
    from harness.coordinator import run_suite
    from harness.fleet.inventory import HostSpec
    from harness.raysession import ray_session
    from harness.config.suite import parse_suite
    import tomllib
    from tests.hosts.sshd import start_x86_host

    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    suite = parse_suite(tomllib.loads(SUITE), "bench", tmp)
    hosts = [start_x86_host(tmp / n, n) for n in ("bench-a", "bench-b")]
    try:
        specs = [HostSpec(**h.inventory_entry()) for h in hosts]
        with ray_session():
            run_suite(suite, tmp / "warm", progress=False)  # conversions cached
            first = run_suite(suite, tmp / "r", hosts=specs, progress=False)
            second = run_suite(suite, tmp / "r", hosts=specs, progress=False)
            alone = [run_suite(suite, tmp / "r", hosts=[s], progress=False) for s in specs]
            local = run_suite(suite, tmp / "r", progress=False)
        b1 = sum(t["bytes"] for t in first.transfers if t["kind"] != "agent")
        b2 = sum(t["bytes"] for t in second.transfers if t["kind"] != "agent")
        m1 = sum(t["bytes"] for t in first.transfers if t["kind"] == "model")
        m2 = sum(t["bytes"] for t in second.transfers if t["kind"] == "model")
        print(f"bytes pushed: first run {b1} ({m1} model bytes), second run {b2} "
              f"({m2} model bytes), agent {sum(t['bytes'] for t in first.transfers if t['kind'] == 'agent')}")
        slower = max(a.wall_s for a in alone)
        print(f"scale-out: two hosts {second.wall_s:.1f} s / slower host alone {slower:.1f} s = "
              f"{second.wall_s / slower:.2f} (target <= 1.2; {len(second.rows)} vs "
              f"{len(alone[0].rows)} configurations)")
        o_ssh, o_local = overhead_s(alone[0]), overhead_s(local)
        print(f"overhead per configuration: ssh {o_ssh:.3f} s, local {o_local:.3f} s, "
              f"extra {o_ssh - o_local:+.3f} s (target <= 0.5)")
    finally:
        for h in hosts:
            h.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
