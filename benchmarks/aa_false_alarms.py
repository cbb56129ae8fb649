"""A/A false alarms: how often `harness compare` calls a change between identical runs.

    python benchmarks/aa_false_alarms.py [--suite suites/smoke.toml] [--repeats 3] [--out DIR]
                                         [--background-load DUTY]

Runs the suite repeats + 1 times back to back on this machine (the local executor, real
engines), compares each run with the one before it (`compare(..., "run_id", ...)`, every
configuration held equal) and prints, per aspect and verdict, how many pairs got it and the
rate per pair. Any slower/faster, larger/smaller, wrong/drift is a false alarm: nothing
changed between the runs. Also prints the wall time per run and the gate's exit code
(slower,larger,wrong) per comparison. Asserts nothing.

--background-load DUTY (0..1) runs a busy process beside every second run (runs 1, 3, ...),
busy DUTY of each 20 ms, as another job on a shared machine would: the latency verdicts are
then counted with compare's CPU-contention rule (Thresholds.max_contention) and without it
(max_contention = inf), to show what the rule turns from a false `slower` into `unstable`.
The latency verdicts are also counted without the core-to-core latency rule
(max_core_latency_change = inf), and each run prints the range of the machine's core-to-core
latency over its multi-thread rows: on a virtual machine whose host moves the vCPUs, that rule
is what stands between a changed machine and a false `slower`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FALSE_ALARMS = {"latency": ("slower", "faster"), "memory": ("larger", "smaller"),
                "correctness": ("wrong", "drift")}
GATE = "slower,larger,wrong"
# busy `duty` of every 20 ms period, sleeping the rest
HOG = ("import sys, time\nduty = float(sys.argv[1])\nwhile True:\n    t = time.perf_counter()\n"
       "    while time.perf_counter() - t < 0.02 * duty: pass\n"
       "    time.sleep(0.02 * (1 - duty))\n")


def main(argv=None) -> int:
    from harness.compare import compare
    from harness.coordinator import run_suite
    from harness.results import load
    from harness.config.suite import load_suite

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default=str(ROOT / "suites" / "smoke.toml"))
    ap.add_argument("--repeats", type=int, default=3, help="A/A comparisons (runs - 1)")
    ap.add_argument("--data", default=None, help="dataset directory (default: a temporary one)")
    ap.add_argument("--background-load", type=float, default=0.0, metavar="DUTY",
                    help="a busy process beside every second run, busy DUTY (0..1) of the time")
    args = ap.parse_args(argv)

    suite = load_suite(args.suite)
    out = Path(args.data or tempfile.mkdtemp(prefix="aa-"))
    run_ids, walls = [], []
    for i in range(args.repeats + 1):
        hog = (subprocess.Popen([sys.executable, "-c", HOG, str(args.background_load)])
               if args.background_load > 0 and i % 2 else None)
        try:
            rep = run_suite(suite, out, progress=False)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        run_ids.append(rep.run_id)
        walls.append(rep.wall_s)
        busy = [r["cpu_contention"] for r in rep.rows if r.get("cpu_contention") is not None]
        c2c = [r[k] for r in rep.rows if r["threads"] > 1
               for k in ("core_to_core_ns_start", "core_to_core_ns_end") if r.get(k)]
        print(f"run {i}: {rep.run_id} {len(rep.rows)} rows in {rep.wall_s:.1f} s"
              f"{' beside a busy process' if hog is not None else ''}; CPU contention "
              f"max {100 * max(busy, default=0):.1f} %; core-to-core latency "
              f"{min(c2c, default=0):.0f}-{max(c2c, default=0):.0f} ns", flush=True)

    counts = {a: Counter() for a in FALSE_ALARMS}
    phase_counts = Counter()
    pairs_total = 0
    gates = []
    blind = Counter()  # latency verdicts without the contention rule
    unmoved = Counter()  # ... without the core-to-core latency rule
    for base, head in zip(run_ids, run_ids[1:]):
        df = load(out, run_id=[base, head])
        res = compare(df, "run_id", base, head)
        blind.update(compare(df, "run_id", base, head, max_contention=float("inf"))
                     .pairs["latency"].astype(str))
        unmoved.update(compare(df, "run_id", base, head, max_core_latency_change=float("inf"))
                       .pairs["latency"].astype(str))
        pairs_total += len(res.pairs)
        gates.append(res.exit_code(GATE))
        for a in FALSE_ALARMS:
            counts[a].update(res.pairs[a].astype(str))
        for ph in ("load", "first", "steady"):
            phase_counts.update(f"{ph}:{v}" for v in res.pairs[f"rss_{ph}"].astype(str))
        bad = res.failures(GATE)
        for _, p in bad.iterrows():
            print(f"  {base} -> {head}: {p['model']} {p['engine']} t{p['threads']}: latency "
                  f"{p['latency']} (ratio {p['ratio']:.3f}), memory {p['memory']}, "
                  f"correctness {p['correctness']}")

    print(f"\nsuite {suite.name}: {args.repeats} A/A comparisons, {pairs_total} pairs; "
          f"wall per run {min(walls):.1f}-{max(walls):.1f} s; dataset {out}")
    for a, alarms in FALSE_ALARMS.items():
        line = ", ".join(f"{v} {n}" for v, n in counts[a].most_common())
        rate = sum(counts[a][v] for v in alarms) / max(pairs_total, 1)
        print(f"{a:12s} false-alarm rate {100 * rate:5.1f} %   ({line})")
        for v in alarms:
            print(f"  {v:10s} {counts[a][v]:4d} / {pairs_total}  = "
                  f"{100 * counts[a][v] / max(pairs_total, 1):5.1f} %")
    print("latency without the CPU-contention rule: "
          + ", ".join(f"{v} {n}" for v, n in blind.most_common()))
    print("latency without the core-to-core latency rule: "
          + ", ".join(f"{v} {n}" for v, n in unmoved.most_common()))
    print("memory per phase: " + ", ".join(f"{k} {n}" for k, n in sorted(phase_counts.items())))
    print(f"gate --fail-on {GATE}: exit codes {gates}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
