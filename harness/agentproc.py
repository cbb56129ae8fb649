"""Run one agent process and read its marker lines (shared by the local and SSH executors)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from harness_agent import RESULT_MARKER
from harness_agent.runner import PROGRESS_MARKER


@dataclass
class AgentOutcome:
    result: dict | None
    progress: list[dict] = field(default_factory=list)
    returncode: int | None = None
    timed_out: bool = False
    stderr_tail: str = ""


def parse_lines(stdout: str) -> tuple[dict | None, list[dict]]:
    result, progress = None, []
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER):])
        elif line.startswith(PROGRESS_MARKER):
            progress.append(json.loads(line[len(PROGRESS_MARKER):]))
    return result, progress


def outcome_to_result(o: AgentOutcome, timeout_s: float) -> dict:
    """The agent's result, or a result describing why there is none."""
    if o.result is not None:
        return o.result
    last_peak = next((p.get("rss_peak_kb") for p in reversed(o.progress)
                      if p.get("rss_peak_kb")), None)
    phase = o.progress[-1]["phase"] if o.progress else "start"
    if o.timed_out:
        return {"status": "timeout", "error": f"no result within {timeout_s:g} s "
                f"(last phase: {phase}); process group killed", "rss_last_peak_kb": last_peak}
    if o.returncode is not None and o.returncode in (-9, 137):
        # SIGKILL with no timeout of ours: the kernel's OOM killer (or a cgroup limit).
        return {"status": "oom", "error": f"agent killed by SIGKILL after phase {phase} "
                "(out of memory)", "rss_last_peak_kb": last_peak}
    return {"status": "error", "error": f"agent exited {o.returncode} without a result "
            f"(last phase: {phase}): {o.stderr_tail[-400:]}", "rss_last_peak_kb": last_peak}
