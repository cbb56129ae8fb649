"""Peak-RSS spread between identical processes: one configuration, N fresh agents.

    python benchmarks/rss_spread.py [--suite suites/smoke.toml] [--model M] [--engine ncnn]
        [--threads 2] [-n 6] [--iterations 30] [--seconds 0] [--env NAME=VALUE ...]
        [--option KEY=VALUE ...]

Prepares the suite's models (cached), builds the job of the chosen configuration the way a run
does, and runs it `-n` times through the local executor. Prints each process's per-phase peaks
(MiB) and iteration count, then per phase min, max, range and median. `--env` sets variables
for the agent processes only (e.g. MALLOC_ARENA_MAX=1, MALLOC_MMAP_THRESHOLD_=131072);
`--option` adds engine options to the job; `--iterations`/`--seconds` override the measure
settings. Asserts nothing.

Measured on 2 shared x86 cores (convtranspose_upsampler, ncnn, 2 threads, 6 processes),
steady-phase peak range: 80 MiB with ncnn's Vulkan instance created at import (lavapipe) and
5 iterations / 0.5 s; 80 MiB with it and 30 fixed iterations; 32 MiB without it and a
time-bounded loop (the peak grows ~16 MiB per run over the first ~15 runs); 0.1 MiB without it
and 30 fixed iterations. The level that steady peak settles on is not unique: the same
configuration settled at 545 MiB in every harness run measured and at 593 MiB in some
standalone batches (three 16 MiB heap blocks more), always the same within a batch; only
MALLOC_MMAP_THRESHOLD_=131072 (every large block mapped and unmapped: peak = live memory,
344 MiB) removes the heap's retention entirely, at twice the CPU time per inference for this
model (8.7k page faults per run), so the harness does not set it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIELDS = ("rss_process_start_peak_kb", "rss_load_peak_kb", "rss_first_peak_kb",
          "rss_steady_peak_kb", "rss_steady_rss_kb", "rss_steady_anon_kb")


def main(argv=None) -> int:
    from harness.config.suite import load_suite
    from harness.executors.local import LocalExecutor
    from harness.jobs import build_job
    from harness.models.prepare import prepare_suite
    from harness.plan import expand
    from harness.status import MEASURED

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default=str(ROOT / "suites" / "smoke.toml"))
    ap.add_argument("--model", default="convtranspose_upsampler")
    ap.add_argument("--engine", default="ncnn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-n", type=int, default=6, help="processes")
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)

    suite = load_suite(args.suite)
    cfgs = [c for c in expand(suite, ["local"]) if c.process == 0 and c.model == args.model
            and c.engine == args.engine and c.threads == args.threads]
    if not cfgs:
        sys.exit(f"no configuration {args.model}/{args.engine}/t{args.threads} in {args.suite}")
    cfg = cfgs[0]
    job = build_job(suite, cfg, prepare_suite(suite)[cfg.model])
    if args.iterations is not None:
        job["min_iterations"] = args.iterations
    if args.seconds is not None:
        job["min_seconds"] = args.seconds
    for kv in args.option:
        k, _, v = kv.partition("=")
        job["options"][k] = v
    for kv in args.env:  # inherited by the agent processes (the executor copies os.environ)
        k, _, v = kv.partition("=")
        os.environ[k] = v

    values: dict[str, list[float]] = {f: [] for f in FIELDS}
    print("  ".join(f.replace("rss_", "").replace("_kb", "") for f in FIELDS), " iterations")
    ex = LocalExecutor()
    for _ in range(args.n):
        r = ex.measure(job, suite.measure.timeout_s)
        if r.get("status") not in MEASURED:
            print("failed:", r.get("status"), r.get("error"))
            continue
        for f in FIELDS:
            values[f].append((r.get(f) or float("nan")) / 1024)
        print("  ".join(f"{values[f][-1]:8.1f}" for f in FIELDS), f"{r.get('iterations'):6d}")
    print(f"\n{cfg.model} {cfg.engine} t{cfg.threads}, {args.n} processes (MiB)")
    print(f"{'field':28s} {'min':>8s} {'max':>8s} {'range':>8s} {'median':>8s}")
    for f in FIELDS:
        v = values[f]
        if v:
            print(f"{f:28s} {min(v):8.1f} {max(v):8.1f} {max(v) - min(v):8.1f} "
                  f"{statistics.median(v):8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
