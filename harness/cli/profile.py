"""`harness profile`: the layers that take the most time, for one configuration."""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._common import positive_int
from ._targets import add_target_flags, one_host_executor


def add_arguments(subparsers) -> None:
    """Add the `profile` command to the harness sub-parsers."""
    p = subparsers.add_parser(
        "profile", help="the layers that take the most time, for one configuration",
        description="Per-layer times: MNN through its before/after op callbacks; ncnn's Python "
                    "binding has no per-layer timing, so approximate extract deltas are shown.")
    p.add_argument("--model", required=True,
                   help="an .onnx/.mnn/.param file or a built-in model name")
    p.add_argument("--shape", help="input shape(s): 1x3x224x224 or NAME:1x3x224x224,...")
    p.add_argument("--engine", required=True, help="ncnn or mnn")
    p.add_argument("--backend", default="cpu", help="backend (default cpu)")
    p.add_argument("--precision", default="fp32", help="precision (default fp32)")
    p.add_argument("--threads", default="1", help="thread count (default 1)")
    p.add_argument("--top", type=int, default=10, help="how many layers to list (default 10)")
    p.add_argument("--iterations", type=int, default=10, help="timed runs (default 10)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="per device run (s, default 300)")
    add_target_flags(p, devices=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the slowest layers of one configuration."""
    from ..diagnose.run import Config, profile
    from ..diagnose.text import render_profile
    if args.top < 1:
        raise InputError("--top", f"got {args.top}", "at least 1")
    cfg = Config(args.backend, args.precision, positive_int("--threads", args.threads))
    ex = one_host_executor(args)
    try:
        p = profile(args.model, args.engine, cfg, shape=args.shape, iterations=args.iterations,
                    timeout_s=args.timeout, executor=ex)
    finally:
        if ex is not None:
            ex.close()
    print(render_profile(p, args.top))
    return 0
