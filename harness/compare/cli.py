"""The `harness compare` and `harness history` sub-commands.

harness/cli.py calls register(sub) with its sub-parsers object; each handler takes the parsed
namespace and returns the exit code (0 fine, 1 gate failed). Bad input raises InputError
(printed as one line by harness.cli.main, exit code 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc

from ..errors import InputError
from ..results import DatasetError, load
from ..store.schema import SCHEMA_VERSION
from .pairing import DIMENSIONS, SERIES_KEY, dimension_column, key_columns
from .result import parse_fail_on
from .verdicts import Thresholds

FORMATS = ("table", "markdown", "json", "html")
_THRESHOLD_FLAGS = (  # flag, Thresholds field, type, help
    ("--alpha", "alpha", float, "one-sided Mann–Whitney significance level (0.01)"),
    ("--min-ratio", "min_ratio", float, "smallest ratio of medians called slower (1.05)"),
    ("--ci-margin", "ci_margin", float, "CI bound must clear 1+margin (0.02)"),
    ("--max-cv", "max_cv", float, "CV above which a side is unstable (0.10)"),
    ("--cv-kind", "cv_kind", str, "robust (p10-p90 spread, default) or classic (sd/mean)"),
    ("--min-samples", "min_samples", int, "fewer samples per side: insufficient (30)"),
    ("--resamples", "resamples", int, "bootstrap resamples (2000)"),
    ("--seed", "seed", int, "bootstrap seed (0)"),
    ("--rss-abs-kb", "rss_abs_kb", float, "memory: smallest delta in kB (1024)"),
    ("--rss-rel", "rss_rel", float, "memory: smallest relative delta (0.02)"),
)


def _split(values) -> list[str]:
    out = []
    for v in values or []:
        out += [s.strip() for s in str(v).split(",") if s.strip()]
    return out


def _where(items) -> dict:
    filters: dict[str, list[str]] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--where {item!r}", "is not COLUMN=VALUE", "e.g. --where threads=4")
        k, v = item.split("=", 1)
        filters.setdefault(k.strip(), []).extend(_split([v]))
    return filters


def register(subparsers) -> None:
    """Add `compare` and `history` to the harness CLI's sub-parsers."""
    c = subparsers.add_parser(
        "compare", help="compare two versions, hosts, precisions, backends, runs or sweeps",
        description="Pair configurations that differ only in one dimension and judge latency "
                    "(Mann–Whitney U + hierarchical bootstrap CI), peak RSS per phase and output "
                    "correctness. Exit code 1 when --fail-on verdicts occur.")
    c.add_argument("--data", default="results", help="dataset directory (default: results)")
    c.add_argument("--dimension", default="engine_version", choices=sorted(DIMENSIONS),
                   help="what differs between base and head (default: engine_version)")
    c.add_argument("--engine", help="engine (mnn, ncnn); usual with --dimension engine_version")
    c.add_argument("--base", required=True, help="the reference value (e.g. 3.4.0)")
    c.add_argument("--head", required=True, help="the value under test (e.g. 3.6.1)")
    c.add_argument("--model", action="append", help="only these models (repeat or a,b)")
    c.add_argument("--where", action="append", metavar="COLUMN=VALUE",
                   help="extra row filter, e.g. threads=4 or host=pi5 (repeatable)")
    c.add_argument("--format", default="table", choices=FORMATS, help="output format")
    c.add_argument("--output", help="write the output to this file instead of stdout")
    c.add_argument("--fail-on", default="",
                   help="comma list of verdicts that make the exit code 1: "
                        "slower,larger,wrong (also drift, unstable, insufficient, missing)")
    for flag, field, typ, hlp in _THRESHOLD_FLAGS:
        c.add_argument(flag, dest=f"th_{field}", type=typ, default=None, help=hlp)
    c.set_defaults(func=cmd_compare)

    h = subparsers.add_parser(
        "history", help="a metric across sweeps per configuration, with change points",
        description="Per configuration (model, input shape, engine, backend, precision, "
                    "threads, cores, host), the metric's median per run in start order; "
                    "persistent shifts are flagged once (robust binary segmentation).")
    h.add_argument("--data", default="results", help="dataset directory (default: results)")
    h.add_argument("--metric", default="median_ms", help="numeric column (default median_ms)")
    h.add_argument("--tag", help="only sweeps with this sweep_tag")
    h.add_argument("--engine", help="only this engine")
    h.add_argument("--model", action="append", help="only these models (repeat or a,b)")
    h.add_argument("--where", action="append", metavar="COLUMN=VALUE", help="extra row filter")
    h.add_argument("--all", action="store_true",
                   help="list every series (default: only series with change points)")
    h.add_argument("--format", default="table", choices=("table", "markdown", "json"))
    h.add_argument("--output", help="write the output to this file instead of stdout")
    h.add_argument("--min-seg", type=int, default=3, help="shortest segment (default 3)")
    h.add_argument("--z-min", type=float, default=4.5, help="significance (default 4.5)")
    h.add_argument("--min-rel", type=float, default=0.02,
                   help="smallest relative shift (default 0.02)")
    h.set_defaults(func=cmd_history)


def _emit(text: str, output: str | None) -> None:
    if output:
        path = Path(output)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        except OSError as e:
            raise InputError(f"--output {output}", f"cannot be written ({e.strerror})",
                             "a writable path") from None
        print(f"wrote {path}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _compare_columns(dimension: str) -> list[str]:
    col = dimension_column(dimension)
    cols = set(key_columns(dimension)) | {col, "engine", "status", "latency_ms",
                                          "engine_version", "engine_version_requested",
                                          "backend_requested", "precision_requested",
                                          "governor_start", "governor_end", "temp_max_c_start",
                                          "temp_max_c_end", "notes", "extra_json", "out_sha256",
                                          "out_nan", "out_inf", "out_rel_err", "out_cosine",
                                          "has_reference", "median_ms", "model_weight_bytes",
                                          "model_activation_lower_bound_bytes"}
    cols |= {f"rss_{ph}_peak_kb" for ph in ("load", "first", "steady")}
    return sorted(cols)


def cmd_compare(args: argparse.Namespace) -> int:
    from .core import compare
    fail_on = parse_fail_on(args.fail_on)
    opts = {f: getattr(args, f"th_{f}") for _, f, _, _ in _THRESHOLD_FLAGS
            if getattr(args, f"th_{f}", None) is not None}
    th = Thresholds().with_options(**opts)
    col = dimension_column(args.dimension)
    filters = _where(args.where)
    if args.engine:
        filters["engine"] = [args.engine]
    models = _split(args.model)
    if models:
        filters["model"] = models
    # rows of either side; for engine_version/backend/precision also rows that failed before
    # the effective value was known (their *_requested column holds the value)
    where = pc.field(col).isin([args.base, args.head])
    if col in ("engine_version", "backend", "precision"):
        where = where | pc.field(f"{col}_requested").isin([args.base, args.head])
    try:
        df = load(args.data, columns=_compare_columns(args.dimension), where=where, **filters)
    except DatasetError as e:
        if "no rows match" not in str(e):
            raise
        extra = ", ".join(f"{k}={v}" for k, v in filters.items())
        raise DatasetError(str(args.data), f"no rows with {col} {args.base!r} or {args.head!r}"
                           + (f" and {extra}" if extra else "")) from None
    res = compare(df, args.dimension, args.base, args.head, engine=args.engine, thresholds=th)
    _emit(res.render(args.format), args.output)
    code = res.exit_code(fail_on)
    if fail_on:  # on stderr, so JSON/HTML on stdout stay clean
        bad = res.failures(fail_on)
        n = len(bad) + (len(res.missing) if "missing" in fail_on else 0)
        print(f"gate --fail-on {','.join(sorted(fail_on))}: "
              f"{'FAILED' if code else 'passed'} ({n} pair(s))", file=sys.stderr)
    return code


def _history_frame(hist: pd.DataFrame, show_all: bool) -> pd.DataFrame:
    key = hist.attrs.get("key", list(SERIES_KEY))
    rows = []
    groups = hist.groupby([hist[c].astype(object).fillna("-") for c in key], sort=True,
                          dropna=False)
    for kv, g in groups:
        g = g.sort_values("step")
        cps = g[g["change_point"].astype(bool)]
        if cps.empty and not show_all:
            continue
        kv = kv if isinstance(kv, tuple) else (kv,)
        desc = "; ".join(f"{r.run_id} ({r.engine_version}) {100 * r.shift:+.1f}%"
                         for r in cps.itertuples()) or "-"
        rows.append({**{c: str(v) for c, v in zip(key, kv)}, "runs": len(g),
                     "first": f"{g['value'].iloc[0]:.4g}", "last": f"{g['value'].iloc[-1]:.4g}",
                     "change points": desc})
    frame = pd.DataFrame(rows)
    if len(frame):  # drop key columns that are the same everywhere
        frame = frame[[c for c in frame.columns if c not in key or frame[c].nunique() > 1]
                      or list(frame.columns)]
    return frame


def cmd_history(args: argparse.Namespace) -> int:
    from .history import history
    from .render import _md_table, _text_table
    filters = _where(args.where)
    if args.engine:
        filters["engine"] = [args.engine]
    models = _split(args.model)
    if models:
        filters["model"] = models
    if args.tag:
        filters["sweep_tag"] = [args.tag]
    if args.metric not in _known_columns():
        raise InputError(f"--metric {args.metric!r}", "is not a dataset column",
                         "a numeric column such as median_ms, p90_ms, rss_steady_peak_kb")
    cols = sorted(set(SERIES_KEY) | {args.metric, "run_id", "sweep_tag", "started_at",
                                     "engine_version", "engine_version_requested",
                                     "backend_requested", "precision_requested", "status"})
    df = load(args.data, columns=cols, **filters)
    hist = history(df, metric=args.metric, tag=args.tag, min_seg=args.min_seg,
                   z_min=args.z_min, min_rel=args.min_rel)
    if args.format == "json":
        out = hist.copy()
        out["started_at"] = out["started_at"].astype(str)
        out["schema_version"] = SCHEMA_VERSION  # per record: the JSON is a list of records
        text = out.to_json(orient="records", indent=2)
    else:
        frame = _history_frame(hist, args.all)
        hkey = hist.attrs.get("key", list(SERIES_KEY))
        n_series = (hist.groupby([hist[c].astype(object).fillna("-") for c in hkey]).ngroups
                    if len(hist) else 0)
        n_cp = int(hist["change_point"].astype(bool).sum()) if len(hist) else 0
        head = (f"history of {args.metric}" + (f" (tag {args.tag})" if args.tag else "")
                + f": {n_series} series, {n_cp} change point(s)")
        if args.format == "markdown":
            text = f"## {head}\n\n" + (_md_table(frame) if len(frame) else "_none_") + "\n"
        else:
            text = head + "\n\n" + (_text_table(frame) if len(frame) else "(none)")
    _emit(text, args.output)
    return 0


def _known_columns() -> set[str]:
    from ..results import ALL_COLUMNS
    return set(ALL_COLUMNS)
