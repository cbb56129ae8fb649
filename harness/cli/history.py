"""`harness history`: a metric across sweeps per configuration, with change points."""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._common import add_data_flag, add_json_flag, emit, row_filters


def add_arguments(subparsers) -> None:
    """Add the `history` command to the harness sub-parsers."""
    h = subparsers.add_parser(
        "history", help="a metric across sweeps per configuration, with change points",
        description="Per configuration (model, input shape, engine, backend, precision, "
                    "threads, cores, host), the metric's median per run in start order; "
                    "persistent shifts are flagged once (robust binary segmentation).")
    add_data_flag(h)
    h.add_argument("--metric", default="median_ms", help="numeric column (default median_ms)")
    h.add_argument("--tag", help="only sweeps with this sweep_tag")
    h.add_argument("--engine", help="only this engine")
    h.add_argument("--model", action="append", help="only these models (repeat or a,b)")
    h.add_argument("--where", action="append", metavar="COLUMN=VALUE",
                   help="extra row filter, e.g. threads=4 or host=pi5 (repeatable)")
    h.add_argument("--all", action="store_true",
                   help="list every series (default: only series with change points)")
    out = h.add_mutually_exclusive_group()
    out.add_argument("--format", default="table", choices=("table", "markdown"),
                     help="output format (default: table)")
    add_json_flag(out, "every series step (value, change point, shift) as records")
    h.add_argument("--output", metavar="FILE",
                   help="write the output to this file instead of stdout")
    h.add_argument("--min-seg", type=int, default=3, help="shortest segment (default 3)")
    h.add_argument("--z-min", type=float, default=4.5, help="significance (default 4.5)")
    h.add_argument("--min-rel", type=float, default=0.02,
                   help="smallest relative shift (default 0.02)")
    h.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print (or write) the history of a metric; exit 0, 2 on bad input."""
    from ..compare.history import history
    from ..compare.load import load_history_rows
    from ..compare.render import render_history
    from ..results import ALL_COLUMNS
    filters = row_filters(args.where, args.engine, args.model)
    if args.tag:
        filters["sweep_tag"] = [args.tag]
    if args.metric not in ALL_COLUMNS:
        raise InputError(f"--metric {args.metric!r}", "is not a dataset column",
                         "a numeric column such as median_ms, p90_ms, rss_steady_peak_kb")
    df = load_history_rows(args.data, args.metric, filters)
    hist = history(df, metric=args.metric, tag=args.tag, min_seg=args.min_seg,
                   z_min=args.z_min, min_rel=args.min_rel)
    emit(render_history(hist, args.metric, args.tag, "json" if args.json else args.format,
                        args.all), args.output)
    return 0
