"""`harness run`: measure a suite file, or a one-off suite from flags, and store the rows."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from dataclasses import fields
from pathlib import Path

from ..config.flags import SuiteFlags
from ..errors import InputError
from ._common import add_data_flag
from ._targets import add_placement_flags, max_parallel_hosts, add_target_flags, resolve_hosts

log = logging.getLogger(__name__)

_SUITE_FLAGS = tuple(f.name for f in fields(SuiteFlags))


def add_arguments(subparsers) -> None:
    """Add the `run` command to the harness sub-parsers."""
    r = subparsers.add_parser(
        "run", help="measure a suite (or a one-off from flags) and store rows",
        description="Measure a suite file, or a one-off suite from flags, on this machine or "
                    "on SSH hosts, and store one row per measurement in the dataset.")
    r.add_argument("suite", nargs="?", help="suite file (TOML); or use --model and flags")
    add_data_flag(r)
    add_placement_flags(r)
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--dry-run", action="store_true",
                   help="print the expanded plan (configurations x hosts) without connecting")
    r.add_argument("--resume", metavar="RUN_ID",
                   help="run only what RUN_ID is missing (hosts that were unreachable, a killed "
                        "coordinator); the same suite and hosts as that run")
    a = r.add_argument_group("one-off suite (instead of a suite file)")
    a.add_argument("--model", help="an .onnx/.mnn/.param file or a built-in model name")
    a.add_argument("--shape", help="input shape(s): 1x3x224x224 or NAME:1x3x224x224,...; a "
                   "dtype may follow each (ids:1x16:int64), else the model's is used")
    a.add_argument("--engine", help="engines, optionally pinned: mnn,ncnn or mnn==3.6.1")
    a.add_argument("--threads", help="thread counts, e.g. 1,2,4")
    a.add_argument("--precision", help="precisions, e.g. fp32,fp16,int8,int8-weight")
    a.add_argument("--backend", help="backends, e.g. cpu,vulkan")
    a.add_argument("--cores", action="append",
                   help="cores to pin to: all (default), big, little or a CPU list such as 0-3 "
                        "or 0,2; repeat the flag for several")
    from ..config.suite import Measure
    d = Measure()
    a.add_argument("--iterations", type=int,
                   help=f"minimum timed iterations (default {d.min_iterations})")
    a.add_argument("--seconds", type=float,
                   help=f"minimum timed seconds (default {d.min_seconds:g}; 0 for a fixed "
                        "iteration count)")
    a.add_argument("--processes", type=int,
                   help=f"fresh processes per configuration (default {d.processes}; compare "
                        "needs 3 a side for latency and memory verdicts)")
    a.add_argument("--warmup", type=int, help=f"warmup iterations (default {d.warmup})")
    a.add_argument("--timeout", type=float,
                   help=f"per-measurement timeout (s, default {d.timeout_s:g})")
    a.add_argument("--calibration", metavar="DIR|N",
                   help="int8 calibration: a folder of .npy/.npz samples (one per file) or of "
                        "images (RGB, the input's size, values pixel/255: a suite's "
                        "[models.preprocess] sets others), or a number of seeded random "
                        "samples (default 16)")
    a.add_argument("--save-suite", metavar="FILE", help="also write these flags as a suite file")
    add_target_flags(r)
    r.set_defaults(func=run)


def suite_flags(args: argparse.Namespace) -> SuiteFlags:
    """The one-off suite flags of a parsed `harness run` command line."""
    return SuiteFlags(**{f: getattr(args, f) for f in _SUITE_FLAGS})


def run(args: argparse.Namespace) -> int:
    """Measure; exit 1 when any configuration failed, 2 on bad input."""
    from ..config.suite import load_suite
    from ..coordinator import run_suite
    from ..summary import render, summarize
    # --save-suite writes the suite the flags build: with a suite file there is none to write
    given = [f for f in (*_SUITE_FLAGS, "save_suite") if getattr(args, f) is not None]
    if args.suite and given:
        flag = "--" + given[0].replace("_", "-")
        raise InputError("harness run", f"a suite file and {flag} were both given",
                         "either a suite file or --model and other flags")
    if args.suite:
        suite, kind = load_suite(args.suite), "suite"
    elif args.model:
        from ..config.flags import save_suite, suite_from_flags
        suite, data = suite_from_flags(suite_flags(args))
        kind = "adhoc"
        log.info("one-off suite from flags: model %s, engines %s", suite.models[0].name,
                 ", ".join(f"{e} {'/'.join(v)}" for e, v in suite.engines.items()))
        if args.save_suite:
            save_suite(data, args.save_suite)
            print(f"suite saved to {args.save_suite}", file=sys.stderr)
    else:
        raise InputError("harness run", "nothing to run", "a suite file or --model")
    hosts = resolve_hosts(args)
    log.info("hosts: %s", ", ".join(f"{h.name} ({h.target})" for h in hosts) if hosts
             else "this machine")
    if args.dry_run:
        from ..plan import expand
        configs = expand(suite, [h.name for h in hosts] if hosts else ["local"])
        for c in configs:
            cores = "" if c.cores == "all" else f"\tcores {c.cores}"
            print(f"{c.host}\t{c.model}\t{c.engine}=={c.version}\t{c.backend}\t{c.precision}"
                  f"\t{c.threads}t{cores}\tprocess {c.process}")
        print(f"{len(configs)} configurations on {len(hosts) if hosts else 1} host(s); "
              "nothing was run")
        return 0
    log.info("dataset: %s%s", args.data, f" (resuming {args.resume})" if args.resume else "")
    report = run_suite(suite, Path(args.data), ray_address=args.ray_address,
                       placement=args.placement,
                       max_parallel_hosts=max_parallel_hosts(args),
                       progress=not args.no_progress, hosts=hosts, sweep_kind=kind,
                       trust_new_host_key=args.trust_new_host_key, resume=args.resume)
    log.info("run %s: %d rows in %.1f s", report.run_id, len(report.rows), report.wall_s)
    for h, info in sorted(report.hosts.items()):
        if info.get("error"):
            print(f"host {h}: {str(info['error']).removeprefix(f'{h}: ')}", file=sys.stderr)
    print(render(summarize(report.rows)))
    return run_footer(report, args.data)


# statuses whose rows share one reason per version or model (a build, a conversion, a host
# that cannot run the engine): printed once each at the end of a run
_SAID_ONCE = ("build_error", "convert_error", "unsupported")


def _core_latency_line(rows: list[dict], factor: float) -> None:
    """One line when the machine's core-to-core latency (harness_agent.corelatency) varied by
    more than ``factor`` over the run's multi-thread rows: a hypervisor moved its vCPUs, and
    those rows' latencies depend on which state each ran in."""
    by_host: dict[str, list[float]] = {}
    for r in rows:
        if (r.get("threads") or 1) > 1:
            for k in ("core_to_core_ns_start", "core_to_core_ns_end"):
                if r.get(k):
                    by_host.setdefault(r["host"], []).append(float(r[k]))
    for host, ns in sorted(by_host.items()):
        if max(ns) > factor * min(ns):
            print(f"core-to-core latency on {host} varied {min(ns):.0f}-{max(ns):.0f} ns during "
                  "this run (on a virtual machine: the host moved its CPUs); multi-thread "
                  "latencies measured in different states differ, and compare calls such "
                  "pairs unstable")


def run_footer(report, data) -> int:
    """Print per-host counts and where the rows went; the exit code: 1 when any configuration
    failed (a failed status, or outputs judged wrong or NaN/Inf), else 0."""
    from ..compare.verdicts import Thresholds
    from ..status import MEASURED, RETRY, failed
    bad = [r for r in report.rows if failed(r)]
    by_host: dict[str, Counter] = {}
    for r in report.rows:
        by_host.setdefault(r["host"], Counter())[r["status"]] += 1
    if len(by_host) > 1 or bad:
        for h, c in sorted(by_host.items()):
            print(f"host {h}: " + ", ".join(f"{n} {s}" for s, n in sorted(c.items())))
    reasons: dict = {}
    for r in report.rows:  # why a version or model never ran: one line per distinct reason
        if r["status"] in _SAID_ONCE and r.get("error"):
            reasons.setdefault((r["status"], r["host"], str(r["error"])), None)
    for status, h, error in sorted(reasons):
        print(f"{status} on {h}: {error}")
    said = Thresholds().max_contention  # above it, compare calls the latency unstable
    busy = [r for r in report.rows if (r.get("cpu_contention") or 0.0) > said]
    if busy:  # said here, not only in a later compare: the user can rerun on a quiet machine
        worst = max(busy, key=lambda r: r["cpu_contention"])
        print(f"{len(busy)} of {len(report.rows)} rows shared their CPUs with other work "
              f"(CPU contention > {100 * said:g}%, worst "
              f"{100 * worst['cpu_contention']:.0f}%: {worst['model']} {worst['engine']} "
              f"{worst['threads']} threads on {worst['host']}); compare calls their latency "
              "unstable")
    _core_latency_line(report.rows, Thresholds().max_core_latency_change)
    unknown = [r for r in report.rows
               if r["status"] in MEASURED and r.get("cpu_contention") is None]
    if unknown:  # a short loop is not a quiet one: say that it was not looked at
        print(f"{len(unknown)} of {len(report.rows)} rows had timed loops too short (< 0.2 s) "
              "to measure CPU contention; a longer loop (more iterations, or min_seconds) "
              "measures it")
    print(f"\nrun {report.run_id}: {len(report.rows)} rows in {report.wall_s:.1f} s -> "
          f"{data} ({len(report.files)} file(s)); {len(bad)} failed")
    if any(r["status"] in RETRY for r in report.rows):
        print(f"resume with: harness run ... --resume {report.run_id}")
    if any(r.get("throttle_ratio") is not None for r in report.rows):
        from ..compare.sustained import write_page
        page = write_page(data, report.run_id)
        if page is not None:
            print(f"sustained runs: {page}")
    return 1 if bad else 0
