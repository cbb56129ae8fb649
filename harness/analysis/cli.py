"""`harness models stats MODEL [--shape 1x3x640x640] [--json] [--models-table DIR]`.

The lead wires `add_parser` under the `models` sub-command; `run_stats` is the handler.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..models.registry import builtin, builtin_names, resolve_onnx
from ..models.shapes import ShapeArg, parse_shape
from ..store.schema import SCHEMA_VERSION
from .onnx_stats import analyze_onnx, check_onnx_path
from .report import models_table_row, render_table


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "stats",
        help="static analysis of an ONNX model: params, MACs/FLOPs, activation memory",
        description="Per-layer and total parameters, MACs/FLOPs (1 MAC = 2 FLOPs), output sizes, "
                    "im2col workspace and activation memory (naive / liveness lower bound / greedy plan) "
                    "of an ONNX model at fixed input shapes.",
    )
    p.add_argument("model", help=f"path to an .onnx file, or a built-in name: {', '.join(builtin_names())}")
    p.add_argument("--shape", help="input shape, e.g. 1x3x640x640, or x:1x3x640x640,y:1x4 for several inputs "
                                   "(default: the built-in model's default, else the model's static shape)")
    p.add_argument("--json", action="store_true", help="print the full statistics as JSON instead of a table")
    p.add_argument("--models-table", metavar="DIR", help="also merge a row into DIR/models.parquet")
    p.set_defaults(func=run_stats)
    return p


def run_stats(args: argparse.Namespace) -> int:
    """Raises AnalysisError (an InputError) for a model or shape that cannot be analysed."""
    path, name = resolve_onnx(args.model)
    check_onnx_path(path)
    shapes: ShapeArg | None
    if args.shape:
        shapes = parse_shape(args.shape)
    elif name:
        default = builtin(name).shapes
        # several inputs need names to bind; the file's declared shapes serve then
        shapes = default[0] if len(default) == 1 else None
    else:
        shapes = None  # analyze_onnx asks for --shape if the model's inputs are dynamic
    stats = analyze_onnx(path, shapes)
    if getattr(args, "models_table", None):
        from .models_table import write_models_table

        write_models_table([models_table_row(stats)], args.models_table)
    if args.json:
        print(json.dumps({"schema_version": SCHEMA_VERSION, **stats.to_dict()}, indent=2))
    else:
        print(render_table(stats))
    return 0
