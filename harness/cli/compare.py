"""`harness compare`: pair configurations that differ in one dimension and judge them."""

from __future__ import annotations

import argparse
import sys

from ._common import (add_ci_flags, add_data_flag, add_json_flag, emit, row_filters,
                      write_ci_files)

FORMATS = ("table", "markdown", "html")
_THRESHOLD_FLAGS = (  # flag, Thresholds field, type, help
    ("--alpha", "alpha", float, "one-sided Mann–Whitney significance level (0.01)"),
    ("--min-ratio", "min_ratio", float, "smallest ratio of medians called slower (1.05)"),
    ("--ci-margin", "ci_margin", float, "CI bound must clear 1+margin (0.02)"),
    ("--max-cv", "max_cv", float, "CV above which a side is unstable (0.10)"),
    ("--cv-kind", "cv_kind", str, "robust (p10-p90 spread, default) or classic (sd/mean)"),
    ("--min-samples", "min_samples", int, "fewer samples per side: insufficient (30)"),
    ("--min-processes", "min_processes", int,
     "latency: fewer processes per side: insufficient (3)"),
    ("--rss-min-processes", "rss_min_processes", int,
     "memory: fewer processes per side: insufficient (3)"),
    ("--resamples", "resamples", int, "bootstrap resamples (2000)"),
    ("--seed", "seed", int, "bootstrap seed (0)"),
    ("--rss-abs-kb", "rss_abs_kb", float, "memory: smallest delta in kB (1024)"),
    ("--rss-rel", "rss_rel", float, "memory: smallest relative delta (0.02)"),
)


def add_arguments(subparsers) -> None:
    """Add the `compare` command to the harness sub-parsers."""
    from ..compare.pairing import DIMENSIONS
    c = subparsers.add_parser(
        "compare", help="compare two versions, hosts, precisions, backends, runs or sweeps",
        description="Pair configurations that differ only in one dimension and judge latency "
                    "(Mann–Whitney U + hierarchical bootstrap CI), peak RSS per phase and output "
                    "correctness. Exit code 1 when --fail-on verdicts occur.")
    add_data_flag(c)
    c.add_argument("--dimension", default="engine_version", choices=sorted(DIMENSIONS),
                   help="what differs between base and head (default: engine_version)")
    c.add_argument("--engine", help="engine (mnn, ncnn); usual with --dimension engine_version")
    c.add_argument("--base", required=True, help="the reference value (e.g. 3.4.0)")
    c.add_argument("--head", required=True, help="the value under test (e.g. 3.6.1)")
    c.add_argument("--model", action="append", help="only these models (repeat or a,b)")
    c.add_argument("--where", action="append", metavar="COLUMN=VALUE",
                   help="extra row filter, e.g. threads=4 or host=pi5 (repeatable)")
    out = c.add_mutually_exclusive_group()
    out.add_argument("--format", default="table", choices=FORMATS,
                     help="output format (default: table)")
    add_json_flag(out, "the pairs, verdicts and thresholds")
    c.add_argument("--output", metavar="FILE",
                   help="write the output to this file instead of stdout")
    c.add_argument("--fail-on", default="",
                   help="comma list of verdicts that make the exit code 1: "
                        "slower,larger,wrong (also drift, unstable, insufficient, missing)")
    add_ci_flags(c)
    for flag, field, typ, hlp in _THRESHOLD_FLAGS:
        c.add_argument(flag, dest=f"th_{field}", type=typ, default=None, help=hlp)
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compare base and head; the exit code is 1 when a --fail-on verdict occurs."""
    from ..compare import gate
    from ..compare.core import compare
    from ..compare.load import load_sides
    from ..compare.result import parse_fail_on
    from ..compare.verdicts import Thresholds
    fail_on = parse_fail_on(args.fail_on)
    opts = {f: getattr(args, f"th_{f}") for _, f, _, _ in _THRESHOLD_FLAGS
            if getattr(args, f"th_{f}", None) is not None}
    th = Thresholds().with_options(**opts)
    filters = row_filters(args.where, args.engine, args.model)
    df = load_sides(args.data, args.dimension, args.base, args.head, filters)
    res = compare(df, args.dimension, args.base, args.head, engine=args.engine, thresholds=th)
    g = gate.evaluate(res, fail_on)
    emit(res.render("json" if args.json else args.format, gate=g), args.output)
    write_ci_files(args, g, result=res, what=f"compare {res.label}")
    if fail_on:  # on stderr, so JSON/HTML on stdout stay clean
        print(g.line(f"compare {res.label}"), file=sys.stderr)
    return g.exit_code
