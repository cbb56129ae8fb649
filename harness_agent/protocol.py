"""The coordinator-agent protocol: what a job and a result look like on the wire.

The coordinator starts ``python -m harness_agent MODE JOB`` and reads the agent's stdout. The
agent writes marker-prefixed JSON lines there: progress lines while it runs and exactly one
result line at the end. Everything else (engine diagnostics, tracebacks) goes to stderr, so
native code that prints can never corrupt a result line.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Optional

# Version of the job and result format. The coordinator sends it in every job; an agent that
# speaks another version answers with an error result instead of guessing.
PROTOCOL = 1
RESULT_MARKER = "@@HARNESS-RESULT "
PROGRESS_MARKER = "@@HARNESS-PROGRESS "
# The agent's first progress line: its own code and numpy imported, no engine code run yet. An
# agent that exits before it could not start on the host (a host failure, not the engine's).
STARTED = {"agent": "started"}
# npz name prefix of a model's final output in a layer dump (an MNN output is written by an op
# of another name, so the final outputs are stored a second time under their own names)
OUTPUT_PREFIX = "@output:"
MODES = ("measure", "dump", "compare", "outputs", "profile")


def protocol_mismatch(job: Dict[str, object]) -> Optional[str]:
    """Why this agent cannot answer ``job`` (another protocol version), or None."""
    sent = job.get("protocol")
    if sent == PROTOCOL:
        return None
    return "agent speaks protocol %d, the coordinator sent %s" % (
        PROTOCOL, "none" if sent is None else sent)


class Channel:
    """The agent's line channel to the coordinator: the process's original stdout.

    Creating it keeps a duplicate of fd 1 for the protocol lines and points fd 1 at stderr,
    where whatever native code prints then goes.
    """

    def __init__(self) -> None:
        self.fd = os.dup(1)
        os.dup2(2, 1)

    def line(self, marker: str, obj: Dict[str, object]) -> None:
        """Write ``marker`` + ``obj`` as one JSON line (numpy scalars and arrays converted)."""
        data = (marker + json.dumps(obj, default=_jsonable) + "\n").encode()
        os.write(self.fd, data)

    def progress(self, obj: Dict[str, object]) -> None:
        self.line(PROGRESS_MARKER, obj)

    def result(self, obj: Dict[str, object]) -> None:
        self.line(RESULT_MARKER, obj)


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)
