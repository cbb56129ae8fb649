"""Shared fixtures. Integration tests use the real engines, a real Ray instance and real files."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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


def write_suite(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# Real SSH test hosts (x86 sshd, lavapipe GPU host, armv7l chroot under qemu-user).
pytest_plugins = ["tests.hosts.fixtures"]
