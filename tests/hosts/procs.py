"""Finding and killing the processes that belong to a test host (Linux /proc)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def ppid_of(pid: int) -> int | None:
    f = _stat_fields(pid)
    return int(f[1]) if f else None


def pgid_of(pid: int) -> int | None:
    f = _stat_fields(pid)
    return int(f[2]) if f else None


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(root: int) -> list[int]:
    """All live descendants of ``root`` (not including it)."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        pp = ppid_of(pid)
        if pp is not None:
            children.setdefault(pp, []).append(pid)
    out: list[int] = []
    todo = [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def pids_with_env(name: str, value: str) -> list[int]:
    """Processes whose initial environment holds NAME=VALUE (e.g. a per-host token).

    Catches processes that were started over a host's SSH connection and then
    escaped its process tree (``setsid``, double fork, reparented to init).
    """
    needle = f"{name}={value}".encode()
    me = os.getpid()
    out = []
    for pid in all_pids():
        if pid == me:
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            out.append(pid)
    return out


def alive(pid: int) -> bool:
    f = _stat_fields(pid)
    return bool(f) and f[0] != "Z"


def kill_all(pids: list[int], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL whatever is still alive after ``timeout`` seconds."""
    pids = [p for p in set(pids) if p > 1 and p != os.getpid()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = [p for p in pids if alive(p)]
            if not pids:
                return
            time.sleep(0.05)
