"""Shared fixtures and the test categories.

Integration tests use the real engines, a real Ray instance and real files. Every test carries
`unit`, or at least one of `engines`, `hosts`, `slow` (markers registered in pyproject.toml):
a module's `pytestmark`, a test's own decorator, or added here from the fixtures it uses
(a host fixture: `hosts`; `ray_instance`: `engines`). Collection stops with a list of the
tests that carry none, or `unit` together with another category.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CATEGORIES = ("unit", "engines", "hosts", "slow")
HOST_FIXTURES = frozenset({"host_deps", "armhf_rootfs", "x86_host_a", "x86_host_b", "gpu_host",
                           "armv7_host", "test_hosts"})
ENGINE_FIXTURES = frozenset({"ray_instance"})


@pytest.fixture(scope="session")
def ray_instance():
    """One private Ray instance for the whole session (run_suite reuses an initialized one)."""
    from harness.raysession import ray_session
    with ray_session() as ray:
        yield ray


class FaultLedger:
    """Counts for the reliability figure: faults injected, rows expected, present, lost."""

    def __init__(self):
        self.faults = self.expected = self.present = 0

    def record(self, faults: int, expected: int, present: int) -> None:
        self.faults += faults
        self.expected += expected
        self.present += present

    def line(self) -> str:
        return (f"reliability: faults injected {self.faults}, rows expected {self.expected}, "
                f"rows present {self.present}, rows lost {self.expected - self.present}")


LEDGER = FaultLedger()


@pytest.fixture(scope="session")
def fault_ledger():
    return LEDGER


def pytest_terminal_summary(terminalreporter):
    if LEDGER.faults:
        terminalreporter.write_line(LEDGER.line())


# Real SSH test hosts (x86 sshd, lavapipe GPU host, armv7l chroot under qemu-user).
pytest_plugins = ["tests.hosts.fixtures"]



@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    wrong = []
    for item in items:
        used = set(getattr(item, "fixturenames", ()))  # the whole fixture closure
        if used & HOST_FIXTURES:
            item.add_marker(pytest.mark.hosts)
        if used & ENGINE_FIXTURES:
            item.add_marker(pytest.mark.engines)
        names = {m.name for m in item.iter_markers()} & set(CATEGORIES)
        if not names:
            wrong.append(f"{item.nodeid}: none of the markers {', '.join(CATEGORIES)}")
        elif "unit" in names and len(names) > 1:
            other = ", ".join(sorted(names - {"unit"}))
            wrong.append(f"{item.nodeid}: marked unit but also {other}")
    if wrong:
        raise pytest.UsageError("test categories (see tests/conftest.py):\n  "
                                + "\n  ".join(wrong))
