"""A/A false alarms: how often `harness compare` calls a change between identical runs.

    python benchmarks/aa_false_alarms.py [--suite suites/smoke.toml] [--repeats 3] [--out DIR]

Runs the suite repeats + 1 times back to back on this machine (the local executor, real
engines), compares each run with the one before it (`compare(..., "run_id", ...)`, every
configuration held equal) and prints, per aspect and verdict, how many pairs got it and the
rate per pair. Any slower/faster, larger/smaller, wrong/drift is a false alarm: nothing
changed between the runs. Also prints the wall time per run and the gate's exit code
(slower,larger,wrong) per comparison. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FALSE_ALARMS = {"latency": ("slower", "faster"), "memory": ("larger", "smaller"),
                "correctness": ("wrong", "drift")}
GATE = "slower,larger,wrong"


def main(argv=None) -> int:
    from harness.compare import compare
    from harness.coordinator import run_suite
    from harness.results import load
    from harness.config.suite import load_suite

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default=str(ROOT / "suites" / "smoke.toml"))
    ap.add_argument("--repeats", type=int, default=3, help="A/A comparisons (runs - 1)")
    ap.add_argument("--data", default=None, help="dataset directory (default: a temporary one)")
    args = ap.parse_args(argv)

    suite = load_suite(args.suite)
    out = Path(args.data or tempfile.mkdtemp(prefix="aa-"))
    run_ids, walls = [], []
    for i in range(args.repeats + 1):
        rep = run_suite(suite, out, progress=False)
        run_ids.append(rep.run_id)
        walls.append(rep.wall_s)
        print(f"run {i}: {rep.run_id} {len(rep.rows)} rows in {rep.wall_s:.1f} s", flush=True)

    counts = {a: Counter() for a in FALSE_ALARMS}
    phase_counts = Counter()
    pairs_total = 0
    gates = []
    for base, head in zip(run_ids, run_ids[1:]):
        res = compare(load(out, run_id=[base, head]), "run_id", base, head)
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
    print("memory per phase: " + ", ".join(f"{k} {n}" for k, n in sorted(phase_counts.items())))
    print(f"gate --fail-on {GATE}: exit codes {gates}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
