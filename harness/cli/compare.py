"""`harness compare`: pair configurations that differ in one dimension and judge them."""

from __future__ import annotations

import argparse
import sys

from ._common import (add_ci_flags, add_data_flag, add_json_flag, emit, row_filters,
                      write_ci_files)

FORMATS = ("table", "markdown", "html")
# what each compare threshold means; every Thresholds field is a flag (--min-ratio, ...),
# so the README's "all thresholds are options" stays true as fields are added
_THRESHOLD_HELP = {
    "alpha": "one-sided Mann–Whitney significance level",
    "min_ratio": "smallest ratio of medians called slower",
    "ci_margin": "CI bound must clear 1+margin",
    "ci_level": "confidence level of the latency CI",
    "max_cv": "CV above which a side is unstable",
    "cv_kind": "robust (p10-p90 spread) or classic (sd/mean)",
    "min_samples": "fewer samples per side: insufficient",
    "min_processes": "latency: fewer processes per side: insufficient",
    "rss_min_processes": "memory: fewer processes per side: insufficient",
    "resamples": "bootstrap resamples",
    "seed": "bootstrap seed",
    "rss_abs_kb": "memory: smallest delta in kB",
    "rss_rel": "memory: smallest relative delta",
    "temp_rise_c": "a row's temperature rise (°C) above which latency is unstable",
    "max_contention": "a row's CPU contention (0..1) above which latency is unstable and a "
                      "memory change is not judged",
    "max_core_latency_change": "the change of the machine's core-to-core latency (between the "
                               "sides' medians, or within one measurement) above which a "
                               "multi-thread latency is unstable",
    "bootstrap_budget": "bootstrap work cap in drawn samples, summed over pairs",
    "min_resamples": "fewest bootstrap resamples for a pair that may be slower/faster",
    "drift_cos_abs": "correctness: smallest growth of 1 - cosine that can be drift",
    "drift_rel_abs": "correctness: smallest growth of rel_err that can be drift",
    "drift_factor": "correctness: how many times worse than base is drift",
    "int8_cosine": "correctness: the cosine an int8/int8-weight head must reach",
}


def _threshold_flags():
    """(flag, field, type, help) for every Thresholds field."""
    from dataclasses import fields

    from ..compare.verdicts import _FIELD_KINDS, Thresholds
    default = Thresholds()
    return [("--" + f.name.replace("_", "-"), f.name, _FIELD_KINDS[f.type],
             f"{_THRESHOLD_HELP.get(f.name, 'compare threshold')} "
             f"(default {getattr(default, f.name)})")
            for f in fields(Thresholds)]


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
    for flag, field, typ, hlp in _threshold_flags():
        c.add_argument(flag, dest=f"th_{field}", type=typ, default=None, help=hlp,
                       metavar=field.upper())
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compare base and head; the exit code is 1 when a --fail-on verdict occurs."""
    from ..compare import gate
    from ..compare.core import compare
    from ..compare.load import load_sides
    from ..compare.result import parse_fail_on
    from ..compare.verdicts import Thresholds
    fail_on = parse_fail_on(args.fail_on)
    opts = {f: getattr(args, f"th_{f}") for _, f, _, _ in _threshold_flags()
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
