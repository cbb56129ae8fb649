"""The `harness` command: a thin layer over the library API, one module per command.

Each command module has ``add_arguments(subparsers)``, which adds its sub-parser, and
``run(args) -> int``, which returns the exit code. `main` is the one error edge: a HarnessError
is printed once as ``harness: error: ...`` and exits with its code (2 for bad input);
``-v/--verbose`` logs the steps at INFO, ``--debug`` also prints the traceback of an error.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import traceback

from ..errors import HarnessError, InputError
from ..terminal import SafeStream
from . import compare, devices, diagnose, history, models, profile, publish, run, sweep

COMMANDS = (run, sweep, devices, compare, history, publish, diagnose, profile, models)
_OUT_EXPECTED = ("--output FILE for a report or output file, or --data DIR for the "
                 "dataset directory")


class _RenamedOut(argparse.Action):
    """`--out` was two things (a dataset directory, and by abbreviation `--output`): refuse it
    with one line that names both flags."""

    def __call__(self, parser, namespace, values, option_string=None):
        raise InputError("--out", "is not an option", _OUT_EXPECTED)


class HarnessParser(argparse.ArgumentParser):
    """An ArgumentParser (and, through add_subparsers, every sub-parser) that takes no
    abbreviated flags, refuses `--out` with a hint, and accepts -v/--verbose and --debug."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)
        self.add_argument("--out", nargs="?", action=_RenamedOut, help=argparse.SUPPRESS)
        self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="log what harness does (INFO) on stderr")
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="log at DEBUG and print the traceback of an error")


def build_parser() -> HarnessParser:
    """The whole `harness` command line."""
    from .. import __version__
    p = HarnessParser(prog="harness", description="Measure on-device inference engines, "
                      "compare versions and hosts, and diagnose wrong outputs.")
    p.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_arguments(sub)
    return p


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (main may run several times in one
    process, each with its own stderr)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


_LOG_HANDLER = _StderrHandler()
_LOG_HANDLER.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                            datefmt="%H:%M:%S"))


def _setup_logging(verbose: bool, debug: bool) -> None:
    """Log harness's own loggers (not paramiko's or Ray's chatter) to stderr. Engine builds
    from source take minutes: their progress is shown always."""
    builds = logging.getLogger("harness.builds")
    builds.setLevel(logging.DEBUG if debug else logging.INFO)
    if verbose or debug:  # the "harness" logger's handler shows them
        builds.removeHandler(_LOG_HANDLER)
        return _verbose(debug)
    if _LOG_HANDLER not in builds.handlers:
        builds.addHandler(_LOG_HANDLER)


def _verbose(debug: bool) -> None:
    for name in ("harness", "harness_agent"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG if debug else logging.INFO)
        if _LOG_HANDLER not in logger.handlers:
            logger.addHandler(_LOG_HANDLER)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is: it unwinds as Ctrl-C does, so what a command
    started elsewhere (measurements on hosts, leases) is stopped on the way out."""


_TERMINATED: list[int] = []  # SIGTERM arrived (code in between may re-raise a plain Ctrl-C)


def _on_sigterm(signum, frame) -> None:
    _TERMINATED.append(signum)
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run the command that `argv` (default: sys.argv[1:]) names; returns the exit code.
    What it prints is made terminal-safe (harness.terminal)."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)
    # the default SIGTERM action ends the process on the spot, cleanup and all
    main_thread = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    _TERMINATED.clear()
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = streams
        if main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if old is None else old)


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(getattr(args, "verbose", False), getattr(args, "debug", False))
        return args.func(args)
    except HarnessError as e:
        debug = getattr(args, "debug", False) if args is not None else "--debug" in argv
        if debug:
            traceback.print_exc()
        print(f"harness: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if _TERMINATED:
            print("harness: terminated", file=sys.stderr)
            return 143
        print("harness: interrupted", file=sys.stderr)
        return 130
