"""Flags and helpers that several commands share: the dataset directory, row filters, output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError


def add_data_flag(p: argparse.ArgumentParser, default: str | None = "results",
                  help: str | None = None) -> None:
    """`--data DIR`: the one name for the dataset directory in every command."""
    p.add_argument("--data", metavar="DIR", default=default,
                   help=help or f"dataset directory (default: {default})")


def add_json_flag(p: argparse.ArgumentParser, what: str = "the result") -> None:
    """`--json`: the one way to ask a command for machine-readable output."""
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def split_csv(values) -> list[str]:
    """Repeated and comma-separated flag values as one list: ['a,b', 'c'] -> ['a', 'b', 'c']."""
    out = []
    for v in values or []:
        out += [s.strip() for s in str(v).split(",") if s.strip()]
    return out


def where_filters(items) -> dict[str, list[str]]:
    """`--where COLUMN=VALUE[,VALUE]` flags as load() filters: column -> accepted values."""
    filters: dict[str, list[str]] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--where {item!r}", "is not COLUMN=VALUE", "e.g. --where threads=4")
        k, v = item.split("=", 1)
        filters.setdefault(k.strip(), []).extend(split_csv([v]))
    return filters


def row_filters(where, engine: str | None = None, models=None) -> dict[str, list[str]]:
    """The filters of --where, --engine and --model (repeated or a,b) together."""
    filters = where_filters(where)
    if engine:
        filters["engine"] = [engine]
    names = split_csv(models)
    if names:
        filters["model"] = names
    return filters


def emit(text: str, output: str | None) -> None:
    """Print `text` (with a final newline), or write it to the file `output`."""
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


def positive_int(flag: str, text) -> int:
    """`text` as an integer >= 1, or InputError naming `flag`."""
    try:
        n = int(text)
    except (TypeError, ValueError):
        raise InputError(flag, f"got {text!r}", "a positive integer") from None
    if n < 1:
        raise InputError(flag, f"got {text!r}", "a positive integer")
    return n


def add_layer_config_flags(p: argparse.ArgumentParser, role: str = "",
                           required: bool = True, engine_help: str | None = None) -> None:
    """--model, --shape, --engine, --backend, --precision, --threads of the per-layer commands
    (diagnose, profile); ``role`` ("suspect ") prefixes the configuration's help;
    ``required=False``: the command checks --model and --engine itself (profile --compare
    needs neither); ``engine_help`` replaces the help of --engine."""
    from ..engines import engines_with
    p.add_argument("--model", required=required,
                   help="an .onnx/.mnn/.param file or a built-in model name")
    p.add_argument("--shape", help="input shape(s): 1x3x224x224 or NAME:1x3x224x224,...")
    p.add_argument("--input", action="append", metavar="NAME=FILE.npy|FILE.npz",
                   help="real input values instead of seeded ones (repeatable): NAME=file.npy "
                        "for one input, file.npz for one input per array name")
    p.add_argument("--engine", required=required,
                   help=engine_help or " or ".join(engines_with("LAYER_OUTPUTS"))
                   + " (engines with per-layer outputs)")
    p.add_argument("--backend", default="cpu", help=f"{role}backend (default cpu)")
    p.add_argument("--precision", default="fp32", help=f"{role}precision (default fp32)")
    p.add_argument("--threads", default="1", help=f"{role}thread count (default 1)")


def add_ci_flags(p: argparse.ArgumentParser) -> None:
    """`--junit FILE` and `--summary FILE`: the gate's result for CI servers."""
    p.add_argument("--junit", metavar="FILE",
                   help="also write JUnit XML: one test case per compared pair (and, for a "
                        "sweep, per configuration of the run), failures carrying the verdict "
                        "and its numbers")
    p.add_argument("--summary", metavar="FILE",
                   help="also write a Markdown job summary: the gate's result, its reasons and "
                        "what failed (e.g. $GITHUB_STEP_SUMMARY)")


def write_ci_files(args: argparse.Namespace, gate, result=None, run_rows=None,
                   run_id: str | None = None, what: str = "harness",
                   report: str | None = None) -> None:
    """Write what `--junit` and `--summary` ask for, each atomically; InputError naming the
    flag when a file cannot be written."""
    from ..compare.job_summary import to_job_summary
    from ..compare.junit import to_junit
    from ..store.atomic import atomic_write_text
    for flag, path, make in (
            ("--junit", getattr(args, "junit", None),
             lambda: to_junit(gate, result, run_rows, run_id)),
            ("--summary", getattr(args, "summary", None),
             lambda: to_job_summary(gate, result, run_rows, what, report))):
        if not path:
            continue
        try:
            atomic_write_text(path, make())
        except OSError as e:
            raise InputError(f"{flag} {path}", f"cannot be written ({e.strerror})",
                             "a writable path") from None
        print(f"wrote {path}", file=sys.stderr)
