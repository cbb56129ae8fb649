"""Shared fixtures. Integration tests use the real engines, a real Ray instance and real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def ray_instance():
    """One private Ray instance for the whole session (run_suite reuses an initialized one)."""
    from harness.raysession import ray_session
    with ray_session() as ray:
        yield ray


def write_suite(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# Real SSH test hosts (x86 sshd, lavapipe GPU host, armv7l chroot under qemu-user).
pytest_plugins = ["tests.hosts.fixtures"]
