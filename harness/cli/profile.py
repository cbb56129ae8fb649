"""`harness profile`: per-layer times of one configuration, kept in DATA/_profiles; or two kept
profiles compared per layer type (`--compare A B`)."""

from __future__ import annotations

import argparse
import json

from ..errors import InputError
from ._common import (
    add_data_flag,
    add_json_flag,
    add_layer_config_flags,
    emit,
    positive_int,
    split_csv,
)
from ._targets import add_target_flags, one_host_executor


def add_arguments(subparsers) -> None:
    """Add the `profile` command to the harness sub-parsers."""
    p = subparsers.add_parser(
        "profile", help="per-layer times of one configuration (kept), or two profiles compared",
        description="Per-layer times (MNN through its before/after op callbacks; the ncnn "
                    "wheel has no per-layer timing, so approximate extract deltas, labelled "
                    "so), each layer's FLOPs from the static analysis of the ONNX source and "
                    "the GFLOP/s it achieved, per layer and per layer type. The result is kept "
                    "in DATA/_profiles (one Parquet file per profile, named by its id). "
                    "--compare A B compares two kept profiles (e.g. of two engine versions, "
                    "hosts or datasets) per layer type instead of profiling.",
        epilog="Two engine versions: --engine mnn==3.4.0,mnn==3.6.1 profiles both (each is "
               "kept) and compares them per layer type; kept profiles of two hosts, datasets "
               "or runs: --compare ID_A ID_B.")
    add_layer_config_flags(p, required=False, engine_help=(
        "mnn or ncnn, optionally pinned as in `harness run` (mnn==3.6.1; default: the "
        "installed one); two of them (mnn==3.4.0,mnn==3.6.1) are both profiled and compared "
        "per layer type"))
    p.add_argument("--onnx", default=None,
                   help="the ONNX source of an .mnn/.param model (for FLOPs per layer)")
    p.add_argument("--top", type=int, default=10, help="how many layers to list (default 10)")
    p.add_argument("--iterations", type=int, default=10, help="timed runs (default 10)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="per device run (s, default 300)")
    p.add_argument("--no-flops", action="store_true",
                   help="no FLOPs (skips the static analysis and, for ncnn, the matching run)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="compare two kept profiles per layer type instead of profiling: "
                        "profile ids in --data, or paths to profile files (A is the base)")
    add_data_flag(p, help="dataset directory: profiles are kept in DIR/_profiles "
                          "(default: results)")
    add_json_flag(p, "the profile (configuration, layers, types, total) or the comparison")
    p.add_argument("--output", metavar="FILE", help="write the output to this file")
    add_target_flags(p, devices=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Profile one configuration and keep it, or compare two kept profiles; exit 0, 2 on bad
    input."""
    if args.compare:
        return _compare(args)
    from ..diagnose.profiles import profile_json
    from ..diagnose.run import Config, profile, write_profile
    from ..diagnose.text import render_profile
    for flag in ("model", "engine"):
        if not getattr(args, flag):
            raise InputError(f"--{flag}", "is required to profile", "it, or --compare A B")
    if args.top < 1:
        raise InputError("--top", f"got {args.top}", "at least 1")
    cfg = Config(args.backend, args.precision, positive_int("--threads", args.threads))
    engines = _engines(args.engine)
    ex = one_host_executor(args)
    profiles = []
    try:
        for engine, version in engines:
            p = profile(args.model, engine, cfg, shape=args.shape, inputs=args.input,
                        iterations=args.iterations, timeout_s=args.timeout, executor=ex,
                        onnx=args.onnx, flops=not args.no_flops, version=version)
            write_profile(args.data, p)  # kept at once: a failing second one keeps the first
            profiles.append(p)
    finally:
        if ex is not None:
            ex.close()
    if len(profiles) == 1:
        (p,) = profiles
        emit(json.dumps(profile_json(p, p.file), indent=1) if args.json
             else render_profile(p, args.top), args.output)
        return 0
    from ..diagnose.profiles import compare_profiles, profile_rows
    from ..diagnose.text import render_profile_comparison
    c = compare_profiles(*(profile_rows(p) for p in profiles))
    if args.json:
        text = json.dumps({"profiles": [profile_json(p, p.file) for p in profiles],
                           "comparison": c}, indent=1)
    else:
        text = "\n\n".join([render_profile(p, args.top) for p in profiles]
                            + ["per layer type, a against b:\n" + render_profile_comparison(c)])
    emit(text, args.output)
    return 0


def _engines(text: str) -> list[tuple[str, str]]:
    """--engine as [(engine, version)]: one, or two to compare ("installed" when unpinned)."""
    items = split_csv([text])
    if not 1 <= len(items) <= 2:
        raise InputError("--engine", f"got {text!r}",
                         "ENGINE[==VERSION], or two of them to compare (mnn==3.4.0,mnn==3.6.1)")
    out = []
    for item in items:
        name, _, version = item.partition("==")
        out.append((name.strip(), version.strip() or "installed"))
    return out


def _compare(args: argparse.Namespace) -> int:
    from ..diagnose.profiles import compare_profiles, find_profile
    from ..diagnose.text import render_profile_comparison
    from ..store.tables import read_profile_rows
    given = [f"--{f}" for f in ("model", "engine", "onnx") if getattr(args, f)]
    if given:
        raise InputError("--compare", f"given with {given[0]}",
                         "either a configuration to profile or --compare A B")
    a, b = (read_profile_rows(find_profile(args.data, ref)) for ref in args.compare)
    c = compare_profiles(a, b)
    emit(json.dumps(c, indent=1) if args.json else render_profile_comparison(c), args.output)
    return 0
