"""Shared fixtures and the test categories.

Integration tests use the real engines, a real Ray instance and real files. Every test carries
`unit`, or at least one of `engines`, `hosts`, `slow` (markers registered in pyproject.toml):
a module's `pytestmark`, a test's own decorator, or added here from the fixtures it uses
(a host fixture: `hosts`; `ray_instance`: `engines`). Collection stops with a list of the
tests that carry none, or `unit` together with another category.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Local runs lease this machine (harness.executors.local.local_workdir). Each test session
# leases its own stand-in, so test sessions of several checkouts on one machine do not wait on
# each other; runs within a session (and their subprocesses) share it.
os.environ.setdefault("HARNESS_LOCAL_WORKDIR", tempfile.mkdtemp(prefix="harness-local-"))

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


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> Path:
    """A small dataset as a suite run writes it (Parquet partitions by date and engine): two
    runs of the same configurations (mnn and ncnn, two models, 1 and 2 threads, fp32 and fp16)
    plus an error row without samples."""
    from harness.compare.synthetic import T0, rows_for, write_dataset
    from harness.status import Status
    root = tmp_path_factory.mktemp("sample-dataset")
    rng = np.random.default_rng(17)
    rows = []
    for r, run_id in enumerate(("20260528T000000Z-aaaaaa", "20260529T000000Z-bbbbbb")):
        for engine, version in (("mnn", "3.6.1"), ("ncnn", "1.0.20261020")):
            for model in ("ppocr_cls", "reduction_sum_block"):
                for threads in (1, 2):
                    for precision in ("fp32", "fp16"):
                        rows += rows_for(model=model, engine=engine, engine_version=version,
                                         engine_version_requested="installed", threads=threads,
                                         precision=precision, precision_requested=precision,
                                         run_id=run_id, processes=2, samples=12,
                                         t0=T0 + 86400 * r, rng=rng)
        rows += rows_for(model="ppocr_det", engine="ncnn", processes=1, status=Status.ERROR,
                         run_id=run_id, t0=T0 + 86400 * r, rng=rng)
    write_dataset(rows, root)
    return root


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
