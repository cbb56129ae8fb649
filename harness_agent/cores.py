"""Core pinning: which CPUs a measurement may use, applied before the engine loads.

A suite's ``cores`` value is ``all``, ``big``, ``little`` or an explicit list ("0-3", "0,2").
Big and little cores are told apart by each core's maximum frequency (cpufreq
``cpuinfo_max_freq`` under the sysfs root, see sysinfo.sysfs), else by ARM CPU part ids
(/proc/cpuinfo "CPU part": the in-order little designs below). The agent pins itself with
``os.sched_setaffinity`` (threads it starts later inherit the mask) and reads back what the
kernel applied from /proc/self/status ``Cpus_allowed_list``.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Set, Tuple

from . import sysinfo

SPECS = ("all", "big", "little")
# ARM "CPU part" ids of little (in-order, efficiency) cores: Cortex-A5, A7, A53, A35, A55,
# A510, A520. Any other part beside one of these is a big core.
LITTLE_PARTS = frozenset({0xc05, 0xc07, 0xd03, 0xd04, 0xd05, 0xd46, 0xd80})
_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


class CoresError(Exception):
    """The requested cores cannot be used on this machine (the row says 'unsupported')."""


def is_cpu_list(text: str) -> bool:
    """True for a list such as "0-3" or "0,2,4-5" (ranges ascending)."""
    if not _LIST.match(text):
        return False
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if hi and int(hi) < int(lo):
            return False
    return True


def valid_spec(text: str) -> bool:
    """True when ``text`` is a cores value a suite may name."""
    return text in SPECS or is_cpu_list(text)


def parse_cpu_list(text: str) -> Set[int]:
    """The CPUs of a kernel-style list ("0-3,5" -> {0, 1, 2, 3, 5}); ValueError otherwise."""
    text = text.strip()
    if not is_cpu_list(text):
        raise ValueError("not a CPU list: %r" % text)
    out: Set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def format_cpu_list(cpus) -> str:
    """The kernel's spelling of a CPU set: {0, 1, 2, 5} -> "0-2,5"."""
    out: List[str] = []
    run: List[int] = []
    for c in sorted(cpus):
        if run and c != run[-1] + 1:
            out.append(_span(run))
            run = []
        run.append(c)
    if run:
        out.append(_span(run))
    return ",".join(out)


def _span(run: List[int]) -> str:
    return str(run[0]) if len(run) == 1 else "%d-%d" % (run[0], run[-1])


def clusters(available: Set[int], max_khz: Optional[Dict[int, int]] = None,
             parts: Optional[Dict[int, int]] = None) -> Tuple[Set[int], Set[int], str]:
    """(big, little, how) among the ``available`` CPUs.

    By maximum frequency where every available core has one: big = the fastest cores, little
    = the slowest (a three-cluster SoC's middle cores are in neither). Else by CPU part ids.
    Raises CoresError where neither tells cores apart (every core the same).
    """
    max_khz = sysinfo.core_max_khz() if max_khz is None else max_khz
    freqs = {c: max_khz[c] for c in available if c in max_khz}
    if len(freqs) == len(available) and len(set(freqs.values())) > 1:
        hi, lo = max(freqs.values()), min(freqs.values())
        return ({c for c, f in freqs.items() if f == hi}, {c for c, f in freqs.items() if f == lo},
                "cpufreq cpuinfo_max_freq (%d / %d MHz)" % (hi // 1000, lo // 1000))
    parts = sysinfo.cpu_parts() if parts is None else parts
    known = {c: parts[c] for c in available if c in parts}
    little = {c for c, p in known.items() if p in LITTLE_PARTS}
    if len(known) == len(available) and little and little != set(known):
        return set(known) - little, little, "CPU part ids"
    if freqs:
        why = "every core's cpuinfo_max_freq is %d MHz" % (max(freqs.values()) // 1000)
    else:
        why = "no per-core cpufreq or CPU part ids to tell cores apart"
    raise CoresError("no big.LITTLE cores on this machine (%s)" % why)


def resolve(spec: str, available: Set[int], max_khz: Optional[Dict[int, int]] = None,
            parts: Optional[Dict[int, int]] = None) -> Tuple[Set[int], str]:
    """(CPUs to pin to, how they were chosen) for the cores value ``spec`` among ``available``
    (the CPUs this process may use). Raises CoresError when none of them qualifies."""
    if spec == "all":
        return set(available), "all CPUs this process may use"
    if spec in ("big", "little"):
        big, little, how = clusters(available, max_khz, parts)
        return (big if spec == "big" else little), "%s cores by %s" % (spec, how)
    wanted = parse_cpu_list(spec)
    cpus = wanted & available
    if not cpus:
        raise CoresError("cores %s: none of them is available (this process may use %s)"
                         % (spec, format_cpu_list(available)))
    missing = wanted - available
    how = "explicit list" + (" (%s not available)" % format_cpu_list(missing) if missing else "")
    return cpus, how


def allowed_list(status_path: str = "/proc/self/status") -> Optional[str]:
    """``Cpus_allowed_list`` of a /proc status file (this process by default), None where
    unreadable."""
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def thread_masks() -> Dict[str, int]:
    """Cpus_allowed_list -> number of this process's threads with that mask (engines may set
    their worker threads' affinity themselves)."""
    out: Dict[str, int] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        mask = allowed_list("/proc/self/task/%s/status" % tid)
        if mask is not None:
            out[mask] = out.get(mask, 0) + 1
    return out


def current_mask() -> Tuple[int, ...]:
    """The CPUs this process may run on, sorted; every CPU where the mask cannot be read."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return tuple(range(os.cpu_count() or 1))


def pin(spec: str, threads: int) -> Dict[str, object]:
    """Pin this process to the CPUs of ``spec`` (before the engine loads: threads started
    later inherit the mask). Returns the row fields: cores_requested, cpu_mask (read back),
    cpu_mask_cores, cores_how, and notes (a list). Raises CoresError."""
    available = os.sched_getaffinity(0)
    cpus, how = resolve(spec, available)
    if cpus != available:
        os.sched_setaffinity(0, cpus)
    mask = allowed_list() or format_cpu_list(os.sched_getaffinity(0))
    n = len(parse_cpu_list(mask)) if is_cpu_list(mask) else len(os.sched_getaffinity(0))
    notes = []
    if threads > n:
        notes.append("%d threads on %d core%s (%s): threads share cores"
                     % (threads, n, "" if n == 1 else "s", mask))
    return {"cores_requested": spec, "cpu_mask": mask, "cpu_mask_cores": n, "cores_how": how,
            "notes": notes}


def escaped(mask: str) -> Optional[str]:
    """A note when a thread of this process runs under another mask than ``mask`` (an engine
    that set its workers' affinity itself, or a thread started before the pinning), else
    None."""
    others = {m: k for m, k in thread_masks().items() if m != mask}
    if not others:
        return None
    return "threads outside the pinned cores %s: %s" % (mask, ", ".join(
        "%d thread%s on %s" % (k, "" if k == 1 else "s", m)
        for m, k in sorted(others.items())))
