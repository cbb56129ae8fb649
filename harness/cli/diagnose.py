"""`harness diagnose`: the first layer whose output goes wrong, and a verified fix.

Exits 0 when nothing diverges, 1 when something does (like diff), 2 on bad input."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import add_data_flag, add_layer_config_flags, positive_int
from ._targets import add_target_flags, one_host_executor


def add_arguments(subparsers) -> None:
    """Add the `diagnose` command to the harness sub-parsers."""
    d = subparsers.add_parser(
        "diagnose", help="find the first layer whose output goes wrong, and a verified fix",
        description="Run a model under a suspect configuration and a reference, compare every "
                    "intermediate output in topological order and name the first divergent "
                    "layer; for ncnn, search a verified per-layer feature mask (param key 31).")
    add_layer_config_flags(d, "suspect ")
    d.add_argument("--reference", default=None,
                   help="BACKEND,PRECISION[,THREADS] of the same engine (default cpu,fp32,1) "
                        "or onnxruntime (every ONNX intermediate)")
    d.add_argument("--onnx", default=None,
                   help="the ONNX source of an .mnn/.param model (for --reference onnxruntime)")
    add_data_flag(d, None, "dataset directory: rows go to "
                  "DIR/_diagnoses/date=YYYY-MM-DD/part-ID.parquet (the leading _ keeps them "
                  "out of the measurement dataset), the HTML report to DIR/_diagnoses/_reports "
                  "(default: neither is written)")
    d.add_argument("--fix", dest="fix", action=argparse.BooleanOptionalAction, default=True,
                   help="search a verified fix (ncnn: feature masks; MNN: precision=high)")
    d.add_argument("--timeout", type=float, default=300.0, help="per device run (s)")
    d.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_target_flags(d, devices=False)
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Diagnose one configuration; exit 1 when an output diverges, 0 when none does."""
    from ..diagnose.run import Config, diagnose, parse_reference
    from ..diagnose.text import render_diagnosis
    cfg = Config(args.backend, args.precision, positive_int("--threads", args.threads))
    ref = parse_reference(args.reference)
    log = None if args.quiet else (lambda m: print(f"  .. {m}", file=sys.stderr, flush=True))
    ex = one_host_executor(args)
    try:
        d = diagnose(args.model, args.engine, cfg, ref, shape=args.shape, inputs=args.input,
                     out_dir=args.data, fix=args.fix, timeout_s=args.timeout, onnx=args.onnx,
                     executor=ex, log=log)
    finally:
        if ex is not None:
            ex.close()
    text = render_diagnosis(d)
    print(text)
    if args.data:
        from ..diagnose.html import write_html
        print(f"report: {write_html(d, text, Path(args.data))}")
    return 1 if d.diverged else 0
