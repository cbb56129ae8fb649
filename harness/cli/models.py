"""`harness models stats MODEL`: static analysis of an ONNX model (params, MACs/FLOPs,
activation memory) at fixed input shapes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(subparsers) -> None:
    """Add the `models stats` command to the harness sub-parsers."""
    from ..models.registry import builtin_names
    m = subparsers.add_parser("models", help="model tools", description="Model tools.")
    msub = m.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND")
    p = msub.add_parser(
        "stats",
        help="static analysis of an ONNX model: params, MACs/FLOPs, activation memory",
        description="Per-layer and total parameters, MACs/FLOPs (1 MAC = 2 FLOPs), output "
                    "sizes, im2col workspace and activation memory (naive / liveness lower "
                    "bound / greedy plan) of an ONNX model at fixed input shapes.")
    p.add_argument("model", help="path to an .onnx file, or a built-in name: "
                                 + ", ".join(builtin_names()))
    p.add_argument("--shape", help="input shape, e.g. 1x3x640x640, or x:1x3x640x640,y:1x4 for "
                                   "several inputs (default: the built-in model's default, "
                                   "else the model's static shape)")
    p.add_argument("--json", action="store_true",
                   help="print the full statistics as JSON instead of a table")
    p.add_argument("--data", metavar="DIR",
                   help="also merge a row into the dataset's models table, "
                        "DIR/_models/models.parquet (where harness run keeps it)")
    p.add_argument("--models-table", metavar="DIR",
                   help="also merge a row into DIR/models.parquet")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`models stats`; AnalysisError (exit 2) for a model or shape that cannot be analysed."""
    from ..analysis.onnx_stats import analyze_onnx, check_onnx_path
    from ..analysis.report import models_table_row, render_table
    from ..models.registry import builtin, resolve_onnx
    from ..models.shapes import parse_shape
    from ..store.schema import SCHEMA_VERSION
    path, name = resolve_onnx(args.model)
    check_onnx_path(path)
    if args.shape:
        shapes = parse_shape(args.shape)
    elif name:
        default = builtin(name).shapes
        # several inputs need names to bind; the file's declared shapes serve then
        shapes = default[0] if len(default) == 1 else None
    else:
        shapes = None  # analyze_onnx asks for --shape if the model's inputs are dynamic
    stats = analyze_onnx(path, shapes)
    tables = ([Path(args.data) / "_models"] if args.data else []) + (
        [Path(args.models_table)] if args.models_table else [])
    if tables:
        from ..analysis.models_table import write_models_table
        for table in tables:
            write_models_table([models_table_row(stats)], table)
    if args.json:
        print(json.dumps({"schema_version": SCHEMA_VERSION, **stats.to_dict()}, indent=2))
    else:
        print(render_table(stats))
    return 0
