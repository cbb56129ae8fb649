"""Peak resident memory per phase, from /proc/self/status.

VmHWM is the high-water mark of RSS; writing 5 to /proc/self/clear_refs resets it to the
current RSS, so each phase gets its own peak. RssAnon/RssFile separate heap from mmap'd files.
"""

from __future__ import annotations

from typing import Dict, Optional

_FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssFile")


def read_status() -> Dict[str, int]:
    """The memory fields of /proc/self/status in KiB ({} where /proc is missing)."""
    out: Dict[str, int] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in _FIELDS:
                    out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


class PhaseMeter:
    """Resets the high-water mark at a phase start and reads it at the phase end."""

    def __init__(self) -> None:
        self.can_reset = self._probe_reset()
        # The peak before the first reset covers interpreter start and imports; it is kept so
        # the whole-process peak can still be reported after per-phase resets.
        self.process_peak_kb = read_status().get("VmHWM", 0)

    @staticmethod
    def _probe_reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def start(self) -> None:
        if self.can_reset:
            self.process_peak_kb = max(self.process_peak_kb, read_status().get("VmHWM", 0))
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")

    def end(self) -> Dict[str, Optional[int]]:
        st = read_status()
        peak = st.get("VmHWM")
        if peak is not None:
            self.process_peak_kb = max(self.process_peak_kb, peak)
        return {
            # Without a reset the peak is cumulative, so it is not a phase figure: say so by None.
            "peak_kb": peak if self.can_reset else None,
            "rss_kb": st.get("VmRSS"),
            "anon_kb": st.get("RssAnon"),
            "file_kb": st.get("RssFile"),
        }
