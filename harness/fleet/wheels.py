"""Engine wheels for a host's Python and platform, downloaded by the coordinator.

Boards are often offline, so the coordinator fetches wheels from the package index itself
(`pip download --platform ... --python-version ...`) and pushes them over SSH.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..cache import cache_root


class NoWheel(Exception):
    """No wheel of that package and version exists for the host's platform."""


def platform_tags(arch: str, glibc: str | None) -> list[str]:
    """manylinux tags a host with this glibc accepts, newest first (pip matches each exactly)."""
    tags = []
    if glibc:
        major, minor = (int(x) for x in glibc.split(".")[:2])
        for m in range(minor, 16, -1):
            tags.append(f"manylinux_{major}_{m}_{arch}")
        if minor >= 17:
            tags.append(f"manylinux2014_{arch}")
        if minor >= 12 and arch in ("x86_64", "i686"):
            tags.append(f"manylinux2010_{arch}")
        if minor >= 5 and arch in ("x86_64", "i686"):
            tags.append(f"manylinux1_{arch}")
    tags.append(f"linux_{arch}")
    return tags


def download(package: str, version: str, python_tag: str, arch: str,
             glibc: str | None) -> Path:
    """The wheel file (cached); raises NoWheel with pip's reason when none fits."""
    key = f"{package}-{version}-{python_tag}-{arch}-glibc{glibc}"
    d = cache_root() / "wheels" / key
    found = sorted(d.glob("*.whl")) if d.exists() else []
    if found:
        return found[0]
    d.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
           "--no-deps", "--only-binary=:all:", "--implementation", "cp",
           "--python-version", python_tag[2:], "-d", str(d)]
    for t in platform_tags(arch, glibc):
        cmd += ["--platform", t]
    cmd.append(f"{package}=={version}")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    found = sorted(d.glob("*.whl"))
    if p.returncode != 0 or not found:
        msg = (p.stderr or p.stdout).strip().splitlines()
        reason = next((ln for ln in msg if "No matching distribution" in ln or "ERROR" in ln),
                      msg[-1] if msg else "pip download failed")
        raise NoWheel(f"no {package} {version} wheel for {python_tag} on {arch} "
                      f"(glibc {glibc}): {reason.strip()}")
    return found[0]
