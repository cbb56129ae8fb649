"""The agent's one entry point: one job in this (fresh) process, one result line.

    python -m harness_agent MODE JOB.json | - | --b64 BASE64

MODE is one of protocol.MODES: ``measure`` (runner.py) or a per-layer mode (diagnose_main.py).
The job is JSON read from a file, from stdin ('-') or from base64 on the command line. The
result line is written even when the job fails: its ``status`` says how (Status), ``error``
says why. Exit status 0 when a result line was written for a job, 2 for a bad command line
or an unreadable job, 3 when the agent itself cannot start on this host (one line on stderr).

The first progress line, ``{"agent": "started"}``, says the agent's own code and numpy are
importable here; no engine code has run before it. An exit without it is the host's failure
(host_error), never the engine's.
"""

from __future__ import annotations

import errno
import os
import sys
import time
import traceback
from typing import Dict, List, Optional

from .protocol import MODES, PROTOCOL, STARTED, Channel, protocol_mismatch
from .status import Status

# A failed write of the host's (full, read-only, over quota): infrastructure, not the engine.
HOST_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})

USAGE = "usage: python -m harness_agent %s JOB.json|-|--b64 BASE64\n" % "|".join(MODES)


def read_job(args: List[str]) -> Dict[str, object]:
    """The job named by ``args`` (a path, '-', or '--b64' and the encoded JSON).

    Raises OSError or ValueError when it cannot be read or is not a JSON object.
    """
    if args[0] == "--b64":
        import base64
        text = base64.b64decode(args[1]).decode()
    else:
        text = sys.stdin.read() if args[0] == "-" else open(args[0]).read()
    import json
    job = json.loads(text)
    if not isinstance(job, dict):
        raise ValueError("the job is not a JSON object")
    return job


def record_failure(res: Dict[str, object], e: BaseException) -> None:
    """Set ``res``'s status and error for the exception ``e`` that ended a run.

    Call it inside the ``except`` block: an unexpected error's traceback goes to stderr.
    """
    from .cores import CoresError
    from .engines.base import Unsupported
    from .runner import Corrupt
    phase = res.get("phase")
    if isinstance(e, (Unsupported, CoresError)):
        res["status"], res["error"] = Status.UNSUPPORTED, str(e)
    elif isinstance(e, Corrupt):
        res["status"], res["error"] = Status.CORRUPT, "file damaged on the device: %s" % e
    elif isinstance(e, OSError) and e.errno in HOST_WRITE_ERRNOS:
        res["status"], res["error"] = Status.HOST_ERROR, (
            "a write on the host failed in phase %s: %s" % (phase, e))
    elif isinstance(e, MemoryError):
        res["status"], res["error"] = Status.OOM, (
            "out of memory (MemoryError) in phase %s" % phase)
    else:  # the row must say what failed; the traceback goes to the log
        traceback.print_exc()
        res["status"], res["error"] = Status.ERROR, "%s in phase %s: %s" % (
            type(e).__name__, phase, e)


def run(mode: str, job: Dict[str, object], out: Channel) -> Dict[str, object]:
    """The result of ``job`` in ``mode`` (never raises for a failure of the job itself)."""
    res: Dict[str, object] = {"protocol": PROTOCOL, "mode": mode, "status": Status.ERROR,
                              "phase": "start", "started_at": time.time()}
    mismatch = protocol_mismatch(job)
    if mismatch is not None:
        res["error"] = mismatch
        return res
    lease = job.get("lease")
    if lease:
        # the coordinator's hold on this host, renewed as each job starts; this process group
        # is recorded under it, so a coordinator leaving, or one taking the host over, can
        # kill this measurement (it would otherwise go on beside the next one)
        from .hostctl import HostctlError, leave, own_group, renew
        try:
            renew(str(lease["dir"]), str(lease["owner"]), float(lease["ttl_s"]), own_group())
        except HostctlError as e:
            res["status"], res["error"] = Status.HOST_BUSY, str(e)
            return res
        except OSError as e:  # the lease file cannot be written: the host's fault
            res["status"], res["error"] = Status.HOST_ERROR, (
                "renewing the host lease in %s failed: %s" % (lease["dir"], e))
            return res
    try:
        if mode == "measure":
            from .runner import measure
            measure(job, out, res)
        else:
            from .diagnose_main import run as run_layers
            run_layers(mode, job, res, out)
    except Exception as e:
        record_failure(res, e)
    finally:
        if lease:
            try:
                leave(str(lease["dir"]), str(lease["owner"]), os.getpid())
            except Exception:  # noqa: BLE001 - a stale record names a process that is gone
                pass
    return res


def _preload(mode: str) -> Optional[str]:
    """Import what ``mode`` needs before any engine code runs (the agent's modules, numpy);
    why that failed, as one line, or None."""
    # numpy's OpenBLAS starts a thread per core at import, before the runner pins the process
    # to its cores (a thread keeps the mask it was born with) and beside the engine's own
    # threads; the agent's numpy work (inputs, output checks) needs none of them.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        import numpy  # noqa: F401

        from . import outputs, runner, sysinfo  # noqa: F401 (record_failure needs runner)
        from .engines import base  # noqa: F401
        if mode != "measure":
            from . import diagnose_main  # noqa: F401
    except Exception as e:  # ImportError, SyntaxError of a damaged copy, ...
        return "%s: %s" % (type(e).__name__, e)
    return None


def main(argv: List[str]) -> int:
    out = Channel()
    mode: Optional[str] = argv[0] if argv else None
    args = argv[1:]
    if mode not in MODES or not (len(args) == 1 or (len(args) == 2 and args[0] == "--b64")):
        sys.stderr.write(USAGE)
        return 2
    broken = _preload(mode)
    if broken is not None:
        sys.stderr.write("harness_agent cannot start on this host: %s\n" % broken)
        return 3
    out.progress(STARTED)
    try:
        job = read_job(args)
    except (OSError, ValueError) as e:
        out.result({"protocol": PROTOCOL, "mode": mode, "status": Status.ERROR,
                    "error": "bad job %s: %s" % ("(base64)" if args[0] == "--b64" else args[0],
                                                 e)})
        return 2
    out.result(run(mode, job, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
