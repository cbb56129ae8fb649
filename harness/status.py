"""Statuses and verdicts: the one vocabulary, which statuses are measurements, which are
measured again on resume, and the one severity order (worst first) every table sorts by.

The status names themselves live with the agent (``harness_agent.status``), which writes them.
"""

from __future__ import annotations

from enum import Enum

from harness_agent.status import Status

__all__ = ["Status", "Verdict", "MEASURED", "RETRY", "FAILED", "FAILED_VERDICTS", "failed",
           "SEVERITY", "worst", "severity_rank"]


class Verdict(str, Enum):
    """Verdicts of one row's outputs (``verdict`` column) and of a compared pair."""

    OK = "ok"
    WRONG = "wrong"
    NAN_INF = "nan/inf"
    NO_REF = "no-ref"
    # pair verdicts (harness compare)
    IDENTICAL = "identical"
    DRIFT = "drift"
    SLOWER = "slower"
    FASTER = "faster"
    LARGER = "larger"
    SMALLER = "smaller"
    SAME = "same"
    UNSTABLE = "unstable"
    INSUFFICIENT = "insufficient"

    def __str__(self) -> str:
        return self.value


# Statuses under which the engine ran and produced figures.
MEASURED = frozenset({Status.OK, Status.FALLBACK})
# Infrastructure failures: the configuration was not measured, so a resume runs it again.
# Engine outcomes (error, timeout, oom, corrupt, ...) are results and are kept.
RETRY = frozenset({Status.UNREACHABLE, Status.HOST_BUSY, Status.HOST_ERROR})
# Statuses that count as a failed configuration in the end-of-run summary and exit code.
FAILED = frozenset(Status) - MEASURED - {Status.UNSUPPORTED}
# Verdicts of a measured row that count as failed too: its outputs are not what they must be.
FAILED_VERDICTS = frozenset({Verdict.WRONG, Verdict.NAN_INF})


def failed(row: dict) -> bool:
    """Whether a row counts as a failed configuration: a failed status, or outputs judged
    wrong or holding NaN/Inf."""
    return row.get("status") in FAILED or row.get("verdict") in FAILED_VERDICTS

# Worst first. A configuration's (or a pair's) headline is the first of its values in this
# order; a value not listed ranks after every listed one.
SEVERITY: tuple[str, ...] = tuple(str(v) for v in (
    Verdict.WRONG, Verdict.NAN_INF,
    Status.ERROR, Status.TIMEOUT, Status.OOM, Status.CORRUPT, Status.CONVERT_ERROR,
    Status.BUILD_ERROR,
    Status.HOST_ERROR, Status.HOST_BUSY, Status.UNREACHABLE,
    Verdict.SLOWER, Verdict.LARGER, Verdict.DRIFT, Verdict.UNSTABLE, Verdict.INSUFFICIENT,
    Status.UNSUPPORTED, Verdict.NO_REF,
    Verdict.FASTER, Verdict.SMALLER, Verdict.SAME, Status.FALLBACK, Verdict.OK,
    Verdict.IDENTICAL,
))  # Status.OK is Verdict.OK: the same word, one place
_RANK = {v: i for i, v in enumerate(SEVERITY)}


def severity_rank(value: str) -> int:
    """Position of a status or verdict in SEVERITY (0 = worst); unknown values rank last."""
    return _RANK.get(str(value), len(SEVERITY))


def worst(values) -> str:
    """The most severe of ``values`` (statuses or verdicts; non-strings are ignored), or ''."""
    vs = [str(v) for v in values if isinstance(v, str)]
    return min(vs, key=severity_rank) if vs else ""
