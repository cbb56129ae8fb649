"""The agent's one entry point: one job in this (fresh) process, one result line.

    python -m harness_agent MODE JOB.json | - | --b64 BASE64

MODE is one of protocol.MODES: ``measure`` (runner.py) or a per-layer mode (diagnose_main.py).
The job is JSON read from a file, from stdin ('-') or from base64 on the command line. The
result line is written even when the job fails: its ``status`` says how (Status), ``error``
says why. Exit status 0 when a result line was written for a job, 2 for a bad command line
or an unreadable job.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Dict, List, Optional

from .protocol import MODES, PROTOCOL, Channel, protocol_mismatch
from .status import Status

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
    from .engines.base import Unsupported
    from .runner import Corrupt
    phase = res.get("phase")
    if isinstance(e, Unsupported):
        res["status"], res["error"] = Status.UNSUPPORTED, str(e)
    elif isinstance(e, Corrupt):
        res["status"], res["error"] = Status.CORRUPT, "file damaged on the device: %s" % e
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


def main(argv: List[str]) -> int:
    out = Channel()
    mode: Optional[str] = argv[0] if argv else None
    args = argv[1:]
    if mode not in MODES or not (len(args) == 1 or (len(args) == 2 and args[0] == "--b64")):
        sys.stderr.write(USAGE)
        return 2
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
