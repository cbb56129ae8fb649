"""Core-to-core latency: the round trip of one cache line between two CPUs, in ns.

Why the agent measures it: on a virtual machine the hypervisor may move a guest's vCPUs onto
physical cores that share a last-level cache or onto cores that do not, and the guest's own
accounting shows nothing (no steal in /proc/stat, each CPU computes as fast as before). Work
whose threads exchange data then slows down while single-thread work does not. Seen on this
project's 2-vCPU CI machines (AMD EPYC under Firecracker), switching back and forth after
seconds to minutes: the round trip below went from 180-190 ns to 440-490 ns, and PP-OCRv4 det
on MNN at 2 threads from 34 ms to 49 ms while 1 thread stayed at 56 ms. Two identical runs were then
called `slower` with a tight CI. With the round trip recorded before and after every
measurement, `compare` can see that the machine, not the engine, changed.

Method: the usual ping-pong (as in github.com/nviennot/core-to-core-latency): two processes,
each pinned to one CPU, take turns writing one byte of a shared page, each spinning until it
sees the other's write. This is pure Python, so the interpreter's own work is part of every
round trip (a ~100-200 ns share on x86, the same every time): the figure compares a machine
with itself over time, not one machine with another.

Row fields (None where the mask has one CPU or the probe could not run):
  core_to_core_ns_start   before the engine is imported (no engine thread exists yet);
  core_to_core_ns_end     after the output checks.
Each is the slowest pair's median round trip, over pairs (first CPU of the mask, each other
CPU, at most MAX_PAIRS of them).
"""

from __future__ import annotations

import mmap
import os
import signal
import time
import warnings
from typing import Iterable, List, Optional, Sequence

from .cores import current_mask

ROUNDS = 2000       # round trips per trial: ~1 ms on x86, long enough for perf_counter
TRIALS = 7          # the median of these (after one warm-up trial that includes the fork)
MAX_PAIRS = 7       # a 64-CPU mask would otherwise cost a second per probe
DEADLINE_S = 2.0    # per pair: a CPU the kernel never schedules must not hang the agent
_CHECK_EVERY = 0xFFF  # spins between clock reads while waiting (the read costs ~50 ns)


def _echo(view: memoryview, cpu: int, total: int, deadline: float) -> None:
    """The child's side: wait for each odd value, answer with the next even one."""
    os.sched_setaffinity(0, {cpu})
    for i in range(total):
        want = (2 * i + 1) & 0xFF
        n = 0
        while view[0] != want:
            n += 1
            if not n & _CHECK_EVERY and time.monotonic() > deadline:
                return
        view[0] = (2 * i + 2) & 0xFF


def round_trip_ns(cpu_a: int, cpu_b: int, rounds: int = ROUNDS, trials: int = TRIALS,
                  deadline_s: float = DEADLINE_S) -> Optional[float]:
    """Median round trip (ns) of a cache line between CPUs ``cpu_a`` (this thread) and
    ``cpu_b`` (a forked child), over ``trials`` trials of ``rounds`` round trips each; None
    when a trial does not finish within ``deadline_s`` or the CPUs cannot be used. This
    thread's affinity is put back before returning."""
    page = mmap.mmap(-1, mmap.PAGESIZE)
    view = memoryview(page)
    total = rounds * (trials + 1)
    deadline = time.monotonic() + deadline_s
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu_a})
    except (AttributeError, OSError):
        return None
    pid = -1
    try:
        with warnings.catch_warnings():  # 3.12+: fork in a process with threads warns
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code
            try:
                _echo(view, cpu_b, total, deadline)
            finally:
                os._exit(0)
        times: List[float] = []
        perf = time.perf_counter_ns
        i = 0
        for _ in range(trials + 1):
            t0 = perf()
            for _ in range(rounds):
                view[0] = (2 * i + 1) & 0xFF
                want = (2 * i + 2) & 0xFF
                n = 0
                while view[0] != want:
                    n += 1
                    if not n & _CHECK_EVERY and (time.monotonic() > deadline
                                                 or os.waitpid(pid, os.WNOHANG)[0]):
                        return None  # out of time, or the child could not run there
                i += 1
            times.append((perf() - t0) / rounds)
        kept = sorted(times[1:])
        return float(kept[len(kept) // 2])
    except OSError:
        return None
    finally:
        if pid > 0:
            try:
                os.kill(pid, signal.SIGKILL)  # gone already when it finished
            except OSError:
                pass
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
        try:
            os.sched_setaffinity(0, before)
        except OSError:
            pass
        view.release()
        page.close()


def pairs(cpus: Sequence[int], max_pairs: int = MAX_PAIRS) -> List[tuple]:
    """(first CPU, each other CPU) of ``cpus``, sorted, at most ``max_pairs`` of them."""
    c = sorted(set(cpus))
    return [(c[0], other) for other in c[1:1 + max_pairs]]


def probe(cpus: Optional[Iterable[int]] = None) -> Optional[float]:
    """The slowest pair's median round trip (ns, 1 decimal) over ``pairs(cpus)``, ``cpus``
    being this process's affinity mask by default; None with fewer than 2 CPUs or when any
    pair could not be measured."""
    worst = None
    for a, b in pairs(list(cpus) if cpus is not None else current_mask()):
        try:
            ns = round_trip_ns(a, b)
        except Exception:  # noqa: BLE001 - a side figure must never fail the measurement
            ns = None
        if ns is None:
            return None
        worst = ns if worst is None else max(worst, ns)
    return None if worst is None else round(worst, 1)
