"""The `harness` command: a thin layer over the library API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import HarnessError


def _cmd_run(args) -> int:
    from .coordinator import run_suite
    from .summary import render, summarize
    from .suite import load_suite
    suite = load_suite(args.suite)
    report = run_suite(suite, Path(args.out), ray_address=args.ray_address,
                       progress=not args.no_progress)
    print(render(summarize(report.rows)))
    bad = [r for r in report.rows if r["status"] not in ("ok", "fallback", "unsupported")]
    print(f"\nrun {report.run_id}: {len(report.rows)} rows in {report.wall_s:.1f} s -> "
          f"{args.out} ({len(report.files)} file(s)); {len(bad)} failed")
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    p = argparse.ArgumentParser(prog="harness", description=__doc__)
    p.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="measure a suite and write rows to the dataset")
    r.add_argument("suite", help="suite file (TOML)")
    r.add_argument("--out", default="results", help="dataset directory (default: results)")
    r.add_argument("--ray-address", default=None,
                   help="Ray cluster to use (default: a private local instance; RAY_ADDRESS)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
