"""Make sure the system packages the test hosts need are installed (once per process)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-test-deps.sh"
# Kept in step with PACKAGES in scripts/install-test-deps.sh (chromium is opt-in there).
REQUIRED_PACKAGES = (
    "openssh-server",
    "openssh-client",
    "qemu-user-static",
    "binfmt-support",
    "debootstrap",
    "mesa-vulkan-drivers",
    "libvulkan1",
    "time",
    "procps",
    "iproute2",
)
BINFMT_ENTRY = Path("/proc/sys/fs/binfmt_misc/qemu-arm")

_lock = threading.Lock()
_done = False


def missing_packages() -> list[str]:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Status}\n", *REQUIRED_PACKAGES],
        capture_output=True,
        text=True,
    ).stdout
    ok = {line.split()[0] for line in out.splitlines() if line.endswith("install ok installed")}
    return [p for p in REQUIRED_PACKAGES if p not in ok]


def binfmt_ready() -> bool:
    try:
        return BINFMT_ENTRY.read_text().startswith("enabled")
    except OSError:
        return False


def ensure_test_deps() -> None:
    """Run scripts/install-test-deps.sh (needs root) if a package is missing or the
    qemu-arm binfmt entry is not enabled (e.g. binfmt_misc unmounted after a reboot).
    At most once per process; raises if the script fails."""
    global _done
    with _lock:
        if _done:
            return
        missing = missing_packages()
        if missing or not binfmt_ready():
            why = f"missing {missing}" if missing else "qemu-arm binfmt entry not enabled"
            print(f"tests.hosts: {why}; running {INSTALL_SCRIPT}", file=sys.stderr, flush=True)
            if os.geteuid() != 0:
                raise RuntimeError(f"{why}: run `bash {INSTALL_SCRIPT}` as root")
            res = subprocess.run(["bash", str(INSTALL_SCRIPT)], stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(
                    f"{INSTALL_SCRIPT} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
                )
        _done = True
