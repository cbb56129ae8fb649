"""`harness profile`: the layers that take the most time, for one configuration."""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._common import add_layer_config_flags, positive_int
from ._targets import add_target_flags, one_host_executor


def add_arguments(subparsers) -> None:
    """Add the `profile` command to the harness sub-parsers."""
    p = subparsers.add_parser(
        "profile", help="the layers that take the most time, for one configuration",
        description="Per-layer times: MNN through its before/after op callbacks; ncnn's Python "
                    "binding has no per-layer timing, so approximate extract deltas are shown.")
    add_layer_config_flags(p)
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
        p = profile(args.model, args.engine, cfg, shape=args.shape, inputs=args.input,
                    iterations=args.iterations, timeout_s=args.timeout, executor=ex)
    finally:
        if ex is not None:
            ex.close()
    print(render_profile(p, args.top))
    return 0
