"""CPU time that everything else took on the measuring CPUs during a timed window.

Two runs of the same configuration on a shared machine differ by whatever else ran beside
them (another job, a daemon waking up, a hypervisor's steal), and no statistic over one run's
samples can see that: when every process of one run shares its cores with a background load,
all its samples are slower together. So the agent records the load itself, read from the
kernel's own accounting, in clock ticks (USER_HZ, usually 100 per second; proc(5)):

- ``/proc/stat``'s per-CPU busy time (user, nice, system, irq, softirq, steal; guest time is
  inside user) summed over the CPUs this process may run on (its affinity mask), and
- this process's own CPU time (``/proc/self/stat`` utime + stime, every thread),

whose difference over the window is the CPU time others took there.

Row fields (None where /proc is not readable or the window is too short to count):
  cpu_other_load   others' CPU time on the measuring CPUs per second of the window, in
                   cores (0.25: a quarter of one core busy with something else on average);
  cpu_contention   the part of the measuring threads' demand that this load could not have
                   left alone: (cpu_other_load - idle CPUs the threads did not need) / the
                   cores the threads can use (threads, at most the CPUs), at least 0. 1 thread
                   on 2 CPUs beside a 1-core load: 0; 2 threads on 2 CPUs beside a 0.2-core
                   load: 0.1; 4 threads on 2 CPUs beside 1.58 cores: 0.79.
"""

from __future__ import annotations

import os
import time
from typing import Dict, Iterable, Optional, Tuple

from .cores import current_mask

# /proc/stat cpuN columns (after the name): user nice system idle iowait irq softirq steal ...
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)
# At 100 ticks a second, one tick is 1 % of a core over a second; below this many ticks per
# CPU the rounding of the two counters is too coarse to tell a few percent of load from none.
MIN_TICKS_PER_CPU = 20


def _text(path: str, given: Optional[str]) -> Optional[str]:
    """``given``, else the file's text; None when it cannot be read."""
    if given is not None:
        return given
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def busy_ticks(cpus: Iterable[int], stat_text: Optional[str] = None) -> Optional[int]:
    """Busy clock ticks since boot summed over ``cpus`` (indices), from /proc/stat text; None
    when it cannot be read or names none of them."""
    stat_text = _text("/proc/stat", stat_text)
    if stat_text is None:
        return None
    want = {"cpu%d" % c for c in cpus}
    total, seen = 0, 0
    for line in stat_text.splitlines():
        parts = line.split()
        if parts and parts[0] in want:
            vals = [int(v) for v in parts[1:]]
            total += sum(vals[i] for i in _BUSY_COLUMNS if i < len(vals))
            seen += 1
    return total if seen else None


def own_ticks(self_stat: Optional[str] = None) -> Optional[int]:
    """This process's user + system clock ticks (all threads), from /proc/self/stat text."""
    self_stat = _text("/proc/self/stat", self_stat)
    if self_stat is None:
        return None
    # the command name may hold spaces and parentheses: fields count from the last ')'
    rest = self_stat[self_stat.rfind(")") + 2:].split()
    try:
        return int(rest[11]) + int(rest[12])  # fields 14 and 15 of proc(5): utime, stime
    except (IndexError, ValueError):
        return None


def contention(other_load: float, cpus: int, threads: int) -> float:
    """The part (0..1) of ``threads`` threads' CPU demand that ``other_load`` cores of other
    work on ``cpus`` CPUs took: the load beyond the CPUs the threads leave idle, over the
    cores the threads can use (no more than the CPUs: 4 threads on 2 CPUs want 2 cores)."""
    spare = max(0, cpus - threads)
    return max(0.0, other_load - spare) / max(1, min(threads, cpus))


class CpuLoad:
    """Brackets a window: ``start()`` before it, ``end()`` after it gives the row fields above.

    Read the affinity mask at ``start()``: pinning (harness_agent.cores) comes first."""

    def __init__(self, threads: int):
        self.threads = max(1, int(threads))
        self._start: Optional[Tuple[float, Optional[int], Optional[int]]] = None
        self.cpus: Tuple[int, ...] = ()

    def start(self) -> None:
        self.cpus = current_mask()
        self._start = (time.monotonic(), busy_ticks(self.cpus), own_ticks())

    def end(self) -> Dict[str, Optional[float]]:
        out: Dict[str, Optional[float]] = {"cpu_other_load": None, "cpu_contention": None}
        if self._start is None:
            return out
        t0, busy0, own0 = self._start
        wall = time.monotonic() - t0
        busy1, own1 = busy_ticks(self.cpus), own_ticks()
        try:
            hz = os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):
            hz = 100
        if None in (busy0, own0, busy1, own1) or wall * hz < MIN_TICKS_PER_CPU:
            return out
        # own threads run only on these CPUs (the mask), so their time is inside the sum;
        # the two counters tick independently, so a small negative difference means none
        other = max(0.0, ((busy1 - busy0) - (own1 - own0)) / hz / wall)
        out["cpu_other_load"] = round(other, 3)
        out["cpu_contention"] = round(contention(other, len(self.cpus), self.threads), 3)
        return out
