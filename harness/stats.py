"""Latency statistics: the one definition of median, p90, mean, min and CV of a sample list.

Quantile convention: linear interpolation between order statistics (Hyndman & Fan type 7, the
default of numpy.quantile, pandas.Series.quantile and R), so the stored ``p90_ms``, the
end-of-run summary, diagnose and compare agree. For samples 1..7 the p90 is 6.4.
"""

from __future__ import annotations

import math
import statistics
from typing import Sequence


def quantile(samples: Sequence[float], q: float) -> float | None:
    """The q-quantile (0 <= q <= 1) of ``samples`` by linear interpolation (type 7); None if
    empty."""
    if not samples:
        return None
    s = sorted(samples)
    h = (len(s) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def latency_stats(samples: Sequence[float]) -> dict:
    """{median_ms, p90_ms, mean_ms, min_ms, cv} of latency samples in ms ({} if empty).

    cv is the sample standard deviation over the mean (0 for a single sample)."""
    if not samples:
        return {}
    s = sorted(float(x) for x in samples)
    mean = statistics.fmean(s)
    return {
        "median_ms": statistics.median(s),
        "p90_ms": quantile(s, 0.9),
        "mean_ms": mean,
        "min_ms": s[0],
        "cv": (statistics.stdev(s) / mean) if len(s) > 1 and mean > 0 else 0.0,
    }
