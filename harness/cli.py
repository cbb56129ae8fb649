"""The `harness` command: a thin layer over the library API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import HarnessError, InputError


_ADHOC_FLAGS = ("model", "shape", "engine", "threads", "precision", "backend", "iterations",
                "seconds", "processes", "warmup")


def _cmd_run(args) -> int:
    from .coordinator import run_suite
    from .summary import render, summarize
    from .suite import load_suite
    adhoc = [f for f in _ADHOC_FLAGS if getattr(args, f) is not None]
    if args.suite and adhoc:
        raise InputError("harness run", f"a suite file and --{adhoc[0]} were both given",
                         "either a suite file or --model and other flags")
    if args.suite:
        suite, kind = load_suite(args.suite), "suite"
    elif args.model:
        from .adhoc import save_suite, suite_from_flags
        suite, data = suite_from_flags(args)
        kind = "adhoc"
        if args.save_suite:
            save_suite(data, args.save_suite)
            print(f"suite saved to {args.save_suite}", file=sys.stderr)
    else:
        raise InputError("harness run", "nothing to run", "a suite file or --model")
    from .adhoc import resolve_hosts
    hosts = resolve_hosts(args)
    if args.dry_run:
        from .plan import expand
        configs = expand(suite, [h.name for h in hosts] if hosts else ["local"])
        for c in configs:
            print(f"{c.host}\t{c.model}\t{c.engine}=={c.version}\t{c.backend}\t{c.precision}"
                  f"\t{c.threads}t\tprocess {c.process}")
        print(f"{len(configs)} configurations on {len(hosts) if hosts else 1} host(s); "
              "nothing was run")
        return 0
    report = run_suite(suite, Path(args.out), ray_address=args.ray_address,
                       progress=not args.no_progress, hosts=hosts, sweep_kind=kind,
                       trust_new_host_key=args.trust_new_host_key, resume=args.resume)
    for h, info in sorted(report.hosts.items()):
        if info.get("error"):
            print(f"host {h}: {info['error']}", file=sys.stderr)
    print(render(summarize(report.rows)))
    return _run_footer(report, args.out)


def _run_footer(report, out) -> int:
    """Per-host counts and the exit code: non-zero when any configuration failed."""
    from collections import Counter
    from .status import FAILED, RETRY
    bad = [r for r in report.rows if r["status"] in FAILED]
    by_host: dict[str, Counter] = {}
    for r in report.rows:
        by_host.setdefault(r["host"], Counter())[r["status"]] += 1
    if len(by_host) > 1 or bad:
        for h, c in sorted(by_host.items()):
            print(f"host {h}: " + ", ".join(f"{n} {s}" for s, n in sorted(c.items())))
    print(f"\nrun {report.run_id}: {len(report.rows)} rows in {report.wall_s:.1f} s -> "
          f"{out} ({len(report.files)} file(s)); {len(bad)} failed")
    if any(r["status"] in RETRY for r in report.rows):
        print(f"resume with: harness run ... --resume {report.run_id}")
    return 1 if bad else 0


def _cmd_sweep(args) -> int:
    """A scheduled sweep: run, compare with the previous sweep of the tag, report, gate."""
    from .compare.cli import parse_fail_on
    from .compare.sweeps import compare_with_previous, write_report
    from .coordinator import run_suite
    from .fleet.inventory import load_inventory, select
    from .suite import load_suite
    from .summary import render, summarize
    from .fleet.inventory import validate_name
    validate_name(args.tag, "--tag", "tag")
    fail_on = parse_fail_on(args.fail_on)
    suite = load_suite(args.suite)
    hosts = select(load_inventory(args.inventory), args.devices) if args.inventory else None
    report = run_suite(suite, Path(args.out), ray_address=args.ray_address,
                       progress=not args.no_progress, hosts=hosts, sweep_kind="sweep",
                       sweep_tag=args.tag)
    print(render(summarize(report.rows)))
    code = _run_footer(report, args.out)
    result = compare_with_previous(args.out, args.tag, report.run_id)
    if result is None:
        print(f"sweep {args.tag}: first run of this tag, nothing to compare with")
        return code
    paths = write_report(result, Path(args.out) / "_reports" / f"{args.tag}-{report.run_id}")
    print(result.to_table())
    print(f"report: {paths['html']}")
    return max(code, result.exit_code(fail_on))


def _cmd_devices_check(args) -> int:
    from .fleet.check import check_hosts
    from .fleet.inventory import load_inventory, select
    hosts = select(load_inventory(args.inventory), args.devices)
    results = check_hosts(hosts, args.trust_new_host_key)
    for r in results:
        print(r.line())
    bad = sum(not r.ok for r in results)
    print(f"{len(results) - bad} of {len(results)} hosts ok")
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    p = argparse.ArgumentParser(prog="harness", description=__doc__)
    p.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="measure a suite (or a one-off from flags) and store rows")
    r.add_argument("suite", nargs="?", help="suite file (TOML); or use --model and flags")
    r.add_argument("--out", default="results", help="dataset directory (default: results)")
    r.add_argument("--ray-address", default=None,
                   help="Ray cluster to use (default: a private local instance; RAY_ADDRESS)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--dry-run", action="store_true",
                   help="print the expanded plan (configurations x hosts) without connecting")
    r.add_argument("--resume", metavar="RUN_ID",
                   help="run only what RUN_ID is missing (hosts that were unreachable, a killed "
                        "coordinator); the same suite and hosts as that run")
    a = r.add_argument_group("one-off suite (instead of a suite file)")
    a.add_argument("--model", help="an .onnx/.mnn/.param file or a built-in model name")
    a.add_argument("--shape", help="input shape(s): 1x3x224x224 or NAME:1x3x224x224,...")
    a.add_argument("--engine", help="engines, optionally pinned: mnn,ncnn or mnn==3.6.1")
    a.add_argument("--threads", help="thread counts, e.g. 1,2,4")
    a.add_argument("--precision", help="precisions, e.g. fp32,fp16")
    a.add_argument("--backend", help="backends, e.g. cpu,vulkan")
    a.add_argument("--iterations", type=int, help="minimum timed iterations")
    a.add_argument("--seconds", type=float, help="minimum timed seconds")
    a.add_argument("--processes", type=int, help="fresh processes per configuration")
    a.add_argument("--warmup", type=int, help="warmup iterations")
    a.add_argument("--timeout", type=float, help="per-measurement timeout (s)")
    a.add_argument("--save-suite", metavar="FILE", help="also write these flags as a suite file")
    from .adhoc import add_target_flags
    add_target_flags(r)
    r.set_defaults(func=_cmd_run)

    d = sub.add_parser("devices", help="inventory tools")
    dsub = d.add_subparsers(dest="devices_command", required=True)
    dc = dsub.add_parser("check", help="probe every host of an inventory in parallel")
    dc.add_argument("inventory")
    dc.add_argument("--devices", help="a subset: name1,name2 or tag:KEY[=VALUE]")
    dc.add_argument("--trust-new-host-key", action="store_true")
    dc.set_defaults(func=_cmd_devices_check)

    w = sub.add_parser("sweep", help="a scheduled sweep: run, compare with the previous run of "
                       "the same tag, write the report next to the data, exit by the gate")
    w.add_argument("suite")
    w.add_argument("--tag", required=True, help="sweep tag, e.g. nightly")
    w.add_argument("--inventory", help="devices inventory (default: this machine)")
    w.add_argument("--devices", help="hosts of the inventory: name1,name2 or tag:KEY[=VALUE]")
    w.add_argument("--out", default="results")
    w.add_argument("--ray-address", default=None)
    w.add_argument("--no-progress", action="store_true")
    w.add_argument("--fail-on", default="slower,larger,wrong",
                   help="verdicts that make the exit code 1 (default slower,larger,wrong)")
    w.set_defaults(func=_cmd_sweep)

    from .compare.cli import register as register_compare
    from .diagnose.cli import register as register_diagnose
    register_compare(sub)
    register_diagnose(sub)

    m = sub.add_parser("models", help="model tools")
    msub = m.add_subparsers(dest="models_command", required=True)
    from .analysis.cli import add_parser as add_stats
    add_stats(msub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
