"""Sustained runs: the model back to back for N seconds, latency, temperature and CPU
frequency kept per window of at least one second, and the throttling factor.

Standard library only (plus the adapter's run), Python 3.9+.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

from . import sysinfo

WINDOW_NS = 1_000_000_000


def sensors() -> Dict[str, Optional[float]]:
    """The hottest thermal zone and the lowest/highest current core frequency (None where
    unreadable)."""
    f = sysinfo.frequencies_mhz()
    return {"temp_max_c": sysinfo.hottest_c(), "freq_cur_mhz_min": f["freq_cur_mhz_min"],
            "freq_cur_mhz_max": f["freq_cur_mhz_max"]}


def run(run_once: Callable[[], object], seconds: float,
        read: Callable[[], Dict[str, Optional[float]]] = sensors,
        clock: Callable[[], int] = time.perf_counter_ns
        ) -> Tuple[List[Dict[str, object]], int, object, int]:
    """Call ``run_once`` back to back until ``seconds`` have passed.

    Samples are grouped into windows: a window closes at the first sample ending at least one
    second after it opened (so a model slower than a second gets one window per run). Per
    window: t_s (its end, seconds from the start), latency_ms (median of its samples),
    iterations, and the sensors read as it closes (outside any timed sample).
    Returns (windows, total iterations, the last output, elapsed ns).
    """
    end_ns = int(seconds * 1e9)
    windows: List[Dict[str, object]] = []
    start = clock()
    opened = start
    batch: List[int] = []
    total = 0
    last = None
    while True:
        t0 = clock()
        last = run_once()
        t1 = clock()
        batch.append(t1 - t0)
        total += 1
        done = t1 - start >= end_ns
        if t1 - opened >= WINDOW_NS or done:
            w: Dict[str, object] = {"t_s": (t1 - start) / 1e9,
                                    "latency_ms": statistics.median(batch) / 1e6,
                                    "iterations": len(batch)}
            w.update(read())
            windows.append(w)
            batch = []
            opened = clock()
        if done:
            return windows, total, last, clock() - start


def throttle_ratio(windows: List[Dict[str, object]], seconds: float
                   ) -> Tuple[Optional[float], Optional[float]]:
    """(last minute's median latency / first minute's, the window length used in seconds).

    The medians are over the per-window medians whose end falls in the first / last 60 s.
    Runs shorter than 120 s compare the first and last quarter of the run instead (two
    minutes would overlap). A window longer than that span (a model slower than it) stands
    for its side alone. (None, None) without windows.
    """
    if not windows:
        return None, None
    span = 60.0 if seconds >= 120 else seconds / 4.0
    first = [float(w["latency_ms"]) for w in windows if float(w["t_s"]) <= span]
    last_from = max(float(w["t_s"]) for w in windows) - span
    last = [float(w["latency_ms"]) for w in windows if float(w["t_s"]) > last_from]
    first = first or [float(windows[0]["latency_ms"])]
    last = last or [float(windows[-1]["latency_ms"])]
    base = statistics.median(first)
    return (statistics.median(last) / base if base > 0 else None), span
