"""What machine this is, read where it is exposed (Linux /proc and /sys); missing means None.

Sensors (thermal zones, cpufreq) are read under the sysfs root ``HARNESS_SYSFS_ROOT`` (default
"/sys"): tests point it at a directory laid out like sysfs, since their machines have none.
"""

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


SYSFS_ENV = "HARNESS_SYSFS_ROOT"


def sysfs(path: str) -> str:
    """``path`` (e.g. "class/thermal") under the sysfs root: $HARNESS_SYSFS_ROOT, else /sys."""
    return os.path.join(os.environ.get(SYSFS_ENV) or "/sys", path)


def _per_cpu(name: str) -> Dict[int, str]:
    """cpu index -> the text of devices/system/cpu/cpuN/cpufreq/NAME, where readable."""
    out = {}
    for p in glob.glob(sysfs("devices/system/cpu/cpu[0-9]*/cpufreq/" + name)):
        cpu = os.path.basename(os.path.dirname(os.path.dirname(p)))[3:]
        v = _read(p)
        if v and cpu.isdigit():
            out[int(cpu)] = v
    return out


def governors() -> Optional[str]:
    return ",".join(sorted(set(_per_cpu("scaling_governor").values()))) or None


def core_max_khz() -> Dict[int, int]:
    """cpu index -> cpuinfo_max_freq (kHz), for the cores whose cpufreq is readable."""
    return {c: int(v) for c, v in _per_cpu("cpuinfo_max_freq").items() if v.isdigit()}


def frequencies_mhz() -> Dict[str, Optional[float]]:
    cur = [int(v) for v in _per_cpu("scaling_cur_freq").values() if v.isdigit()]
    mx = list(core_max_khz().values())
    return {
        "freq_cur_mhz_min": min(cur) / 1000.0 if cur else None,
        "freq_cur_mhz_max": max(cur) / 1000.0 if cur else None,
        "freq_max_mhz": max(mx) / 1000.0 if mx else None,
    }


def temperatures_c() -> List[float]:
    """Every readable thermal zone's temperature (°C), in zone order; [] without sensors."""
    temps = []
    for p in sorted(glob.glob(sysfs("class/thermal/thermal_zone*/temp"))):
        v = _read(p)
        if v and v.lstrip("-").isdigit():
            temps.append(int(v) / 1000.0)
    return temps


def hottest_c() -> Optional[float]:
    """The hottest thermal zone (°C), None where no sensor is readable."""
    temps = temperatures_c()
    return max(temps) if temps else None


def cpu_parts(cpuinfo: Optional[str] = None) -> Dict[int, int]:
    """cpu index -> its "CPU part" id from /proc/cpuinfo (ARM), {} where it says none."""
    text = _read("/proc/cpuinfo") if cpuinfo is None else cpuinfo
    out, cpu = {}, None
    for line in (text or "").splitlines():
        k, _, v = line.partition(":")
        k, v = k.strip(), v.strip()
        if k == "processor" and v.isdigit():
            cpu = int(v)
        elif k == "CPU part" and cpu is not None:
            try:
                out[cpu] = int(v, 0)
            except ValueError:
                pass
    return out


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
    info: Dict[str, object] = {"governor": governors(), "temp_max_c": hottest_c()}
    info.update(frequencies_mhz())
    return info
