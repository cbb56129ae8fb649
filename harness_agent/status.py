"""The status vocabulary of a measurement: what the agent and the coordinator write in a row's
``status`` column. Defined here, on the agent's side of the protocol, because the agent writes
most of them; the coordinator imports it (``harness.status``) and adds its sets and order.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """A row's status. A ``str`` subclass: ``Status.OK == "ok"`` and it is stored as text."""

    OK = "ok"                        # ran as requested
    FALLBACK = "fallback"            # ran, but not as requested (backend or precision)
    ERROR = "error"                  # the engine failed (or the agent died without a result)
    TIMEOUT = "timeout"              # no result within the measurement's deadline
    OOM = "oom"                      # killed for memory
    CORRUPT = "corrupt"              # a pushed file stayed damaged on the host
    CONVERT_ERROR = "convert_error"  # the model could not be converted for this engine
    BUILD_ERROR = "build_error"      # the engine version, given as source, did not build
    UNSUPPORTED = "unsupported"      # this host cannot run this engine/version/configuration
    UNREACHABLE = "unreachable"      # the host could not be reached, or was lost
    HOST_BUSY = "host_busy"          # another coordinator holds the host
    HOST_ERROR = "host_error"        # the host is reachable but failed (disk full, ...)

    def __str__(self) -> str:
        return self.value
