"""What machine this is, read where it is exposed (Linux /proc and /sys); missing means None."""

from __future__ import annotations

import glob
import hashlib
import os
import platform
import uuid
from typing import Dict, List, Optional


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def cpu_model() -> Optional[str]:
    text = _read("/proc/cpuinfo") or ""
    # x86 says "model name"; 32-bit ARM kernels say "Hardware" or "model name"/"Processor".
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        for line in text.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == key and v.strip():
                return v.strip()
    return platform.processor() or None


def os_name() -> Optional[str]:
    text = _read("/etc/os-release") or ""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return None


def _meminfo_kb(key: str) -> Optional[int]:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def mem_total_kb() -> Optional[int]:
    return _meminfo_kb("MemTotal")


def mem_available_kb() -> Optional[int]:
    """MemAvailable of /proc/meminfo (what can be allocated without swapping), None where
    unreadable."""
    return _meminfo_kb("MemAvailable")


def cpu_flags() -> str:
    """The CPU feature flags of /proc/cpuinfo, space-padded (" avx2 f16c ... ") so a test for
    one is `" f16c " in cpu_flags()`; '' where unreadable (and on ARM, which says "Features")."""
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("flags"):
            return " %s " % line.split(":", 1)[1].strip()
    return ""


def device_id(state_dir: Optional[str] = None) -> str:
    """A stable id for the machine, not its hostname (boards are often all called 'localhost').

    /etc/machine-id is hashed so the raw id never leaves the device; where it is missing (minimal
    root filesystems) a random id is kept in the agent's state dir.
    """
    mid = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")
    if mid:
        return hashlib.sha256(("harness:" + mid).encode()).hexdigest()[:16]
    state_dir = state_dir or os.path.join(os.path.expanduser("~"), ".harness")
    path = os.path.join(state_dir, "device-id")
    existing = _read(path)
    if existing:
        return existing
    new = uuid.uuid4().hex[:16]
    try:
        os.makedirs(state_dir, exist_ok=True)
        tmp = path + ".tmp%d" % os.getpid()
        with open(tmp, "w") as f:
            f.write(new)
        os.replace(tmp, path)
    except OSError:
        pass
    return new


def governors() -> Optional[str]:
    vals = sorted({v for v in (_read(p) for p in glob.glob(
        "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor")) if v})
    return ",".join(vals) or None


def frequencies_mhz() -> Dict[str, Optional[float]]:
    cur = [int(v) for v in (_read(p) for p in glob.glob(
        "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")) if v and v.isdigit()]
    mx = [int(v) for v in (_read(p) for p in glob.glob(
        "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq")) if v and v.isdigit()]
    return {
        "freq_cur_mhz_min": min(cur) / 1000.0 if cur else None,
        "freq_cur_mhz_max": max(cur) / 1000.0 if cur else None,
        "freq_max_mhz": max(mx) / 1000.0 if mx else None,
    }


def temperatures_c() -> List[float]:
    temps = []
    for p in sorted(glob.glob("/sys/class/thermal/thermal_zone*/temp")):
        v = _read(p)
        if v and v.lstrip("-").isdigit():
            temps.append(int(v) / 1000.0)
    return temps


def static_info(state_dir: Optional[str] = None) -> Dict[str, object]:
    return {
        "device_id": device_id(state_dir),
        "hostname": platform.node(),
        "arch": platform.machine(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "mem_total_kb": mem_total_kb(),
        "kernel": platform.release(),
        "os": os_name(),
        "python_version": platform.python_version(),
    }


def dynamic_info() -> Dict[str, object]:
    """What can change during a sweep: sampled at the start and end of each measurement."""
    temps = temperatures_c()
    info: Dict[str, object] = {"governor": governors(), "temp_max_c": max(temps) if temps else None}
    info.update(frequencies_mhz())
    return info
