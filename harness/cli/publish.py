"""`harness publish`: the trend site of a dataset (static HTML, opens from disk)."""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._common import add_data_flag, row_filters


def add_arguments(subparsers) -> None:
    """Add the `publish` command to the harness sub-parsers."""
    p = subparsers.add_parser(
        "publish", help="a static trend site: every configuration series across sweeps",
        description="Write a static site (no server, no scripts, no network references; open "
                    "SITE/index.html from disk): an index of every configuration series "
                    "(model, input, engine, version, backend, precision, threads, cores, host) "
                    "and a page each with median latency (p10-p90 whiskers) and steady-state "
                    "peak RSS per run in time order, the change points `harness history` finds "
                    "marked, and links to the sweep reports of DATA/_reports (copied into the "
                    "site). A directory written by an earlier publish is replaced.")
    add_data_flag(p)
    p.add_argument("--output", metavar="SITE", required=True,
                   help="the site directory (new, empty, or an earlier publish's)")
    p.add_argument("--engine", help="only this engine")
    p.add_argument("--model", action="append", help="only these models (repeat or a,b)")
    p.add_argument("--where", action="append", metavar="COLUMN=VALUE",
                   help="extra row filter, e.g. host=pi5 (repeatable)")
    p.add_argument("--min-seg", type=int, default=3, help="shortest segment (default 3)")
    p.add_argument("--z-min", type=float, default=4.5, help="significance (default 4.5)")
    p.add_argument("--min-rel", type=float, default=0.02,
                   help="smallest relative shift (default 0.02)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the site; exit 0, 2 on bad input or an empty dataset."""
    from ..publish import publish
    if args.min_seg < 1:
        raise InputError("--min-seg", f"got {args.min_seg}", "at least 1")
    counts = publish(args.data, args.output, row_filters(args.where, args.engine, args.model),
                     min_seg=args.min_seg, z_min=args.z_min, min_rel=args.min_rel)
    print(f"wrote {args.output}/index.html: {counts['series']} series, {counts['reports']} "
          "sweep reports")
    return 0
