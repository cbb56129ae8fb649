"""Thermal cool-down before a measurement: a fixed pause, then optionally a wait for the
hottest thermal zone to come back to within N °C of the sweep's starting temperature.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Optional

from . import sysinfo

# What the row's `cooldown` column says was done.
NONE = "none"                  # nothing asked
PAUSE = "pause"                # the fixed pause only (cooldown_s)
REACHED = "reached"            # the temperature came within cooldown_to_c of the start
GAVE_UP = "max_wait"           # cooldown_max_s passed first
NO_SENSOR = "pause_no_sensor"  # cooldown_to_c asked, no thermal zone readable: the pause only


def cool_down(spec: Optional[Dict[str, object]],
              read_c: Callable[[], Optional[float]] = sysinfo.hottest_c,
              clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> Dict[str, object]:
    """Wait as ``spec`` asks; the row fields of what happened.

    ``spec``: ``pause_s`` (fixed pause, seconds), ``to_c`` (°C above ``baseline_c``, the
    hottest zone at the sweep's start, that is cool enough), ``max_s`` (the longest the
    temperature wait lasts, after the pause), ``poll_s`` (seconds between readings, default 1).
    The pause always applies; the temperature wait needs a readable sensor now and at the
    sweep's start, else the row says ``pause_no_sensor``.

    Returns cooldown (NONE, PAUSE, REACHED, GAVE_UP or NO_SENSOR), cooldown_wait_s (seconds
    waited in all), cooldown_temp_before_c / _after_c (hottest zone before and after, None
    without sensors) and cooldown_target_c (the temperature waited for, or None).
    """
    spec = spec or {}
    pause = float(spec.get("pause_s") or 0.0)
    to_c = spec.get("to_c")
    baseline = spec.get("baseline_c")
    before = read_c()
    out: Dict[str, object] = {"cooldown": NONE, "cooldown_wait_s": 0.0,
                              "cooldown_temp_before_c": before, "cooldown_temp_after_c": before,
                              "cooldown_target_c": None}
    if not pause and to_c is None:
        return out
    t0 = clock()
    if pause > 0:
        sleep(pause)
    mode = PAUSE
    if to_c is not None:
        now = read_c()
        if now is None or baseline is None:
            mode = NO_SENSOR
        else:
            target = float(baseline) + float(to_c)
            out["cooldown_target_c"] = target
            max_s = float(spec.get("max_s") or 0.0)
            poll = float(spec.get("poll_s") or 1.0)
            t1 = clock()
            while now is not None and now > target and clock() - t1 < max_s:
                sleep(min(poll, max(0.0, max_s - (clock() - t1))))
                now = read_c()
            mode = REACHED if now is not None and now <= target else GAVE_UP
    out["cooldown"] = mode
    out["cooldown_wait_s"] = clock() - t0
    out["cooldown_temp_after_c"] = read_c()
    return out
