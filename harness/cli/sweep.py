"""`harness sweep`: a scheduled sweep: run, compare with the previous sweep of the same tag,
write the report next to the data, exit by the gate."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ._common import add_ci_flags, add_data_flag, write_ci_files
from ._targets import (DEVICES_HELP, INVENTORY_HELP, add_placement_flags,
                       max_parallel_hosts, resolve_hosts)
from .run import run_footer

log = logging.getLogger(__name__)


def add_arguments(subparsers) -> None:
    """Add the `sweep` command to the harness sub-parsers."""
    w = subparsers.add_parser(
        "sweep", help="a scheduled sweep: run, compare with the previous run of the same tag, "
                      "write the report next to the data, exit by the gate",
        description="Run a suite as a sweep with a tag, compare it with the previous sweep of "
                    "the same tag in the dataset, write the report to "
                    "DATA/_reports/TAG-RUN_ID.{html,md,json} and exit 1 when the run failed "
                    "or a --fail-on verdict occurs.")
    w.add_argument("suite", help="suite file (TOML)")
    w.add_argument("--tag", required=True,
                   help="sweep tag, e.g. nightly; the previous sweep with this tag is the base")
    w.add_argument("--inventory", help=INVENTORY_HELP)
    w.add_argument("--devices", help=DEVICES_HELP)
    add_data_flag(w)
    add_placement_flags(w)
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.add_argument("--fail-on", default="slower,larger,wrong",
                   help="verdicts that make the exit code 1 (default slower,larger,wrong; also "
                        "drift, unstable, insufficient, missing)")
    add_ci_flags(w)
    w.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """A scheduled sweep: run, compare with the previous sweep of the tag, report, gate."""
    from ..compare import gate
    from ..compare.result import parse_fail_on
    from ..compare.sweeps import compare_with_previous, write_report
    from ..config.suite import load_suite
    from ..coordinator import run_suite
    from ..fleet.inventory import validate_name
    from ..summary import render, summarize
    validate_name(args.tag, "--tag", "tag")
    fail_on = parse_fail_on(args.fail_on)
    suite = load_suite(args.suite)
    hosts = resolve_hosts(args)
    log.info("sweep %s: hosts %s, dataset %s", args.tag,
             ", ".join(h.name for h in hosts) if hosts else "this machine", args.data)
    report = run_suite(suite, Path(args.data), ray_address=args.ray_address,
                       placement=args.placement,
                       max_parallel_hosts=max_parallel_hosts(args),
                       progress=not args.no_progress, hosts=hosts, sweep_kind="sweep",
                       sweep_tag=args.tag)
    print(render(summarize(report.rows)))
    run_footer(report, args.data)
    result = compare_with_previous(args.data, args.tag, report.run_id)
    g = gate.evaluate(result, fail_on, report.rows)
    what = f"sweep {args.tag} {report.run_id}"
    if result is None:
        print(f"sweep {args.tag}: first run of this tag, nothing to compare with")
        write_ci_files(args, g, run_rows=report.rows, run_id=report.run_id, what=what)
    else:
        from ..compare.sustained import run_section
        paths = write_report(result, Path(args.data) / "_reports" / f"{args.tag}-{report.run_id}",
                             gate=g, extra_html=run_section(args.data, report.run_id))
        print(result.to_table())
        print(f"report: {paths['html']}")
        write_ci_files(args, g, result=result, run_rows=report.rows, run_id=report.run_id,
                       what=what, report=str(paths["html"]))
    print(g.line(f"sweep {args.tag}"))
    return g.exit_code
