"""Session-scoped pytest fixtures for the real SSH test hosts.

Use from a conftest (``pytest_plugins = ["tests.hosts.fixtures"]``) or a test module
(``from tests.hosts.fixtures import *``).  Registering them both ways is harmless:
hosts are pooled per process, so each one is started once per session.

Fixtures:
  x86_host_a, x86_host_b -- this machine's sshd, x86_64, Vulkan hidden (0 GPUs)
  gpu_host               -- this machine's sshd, x86_64, Mesa lavapipe visible, tags {"gpu": "vulkan"}
  armv7_host             -- armhf sshd in the cached Debian chroot under qemu-arm (armv7l)
  test_hosts             -- dict name -> SshHost of all four
  armhf_rootfs           -- Path of the cached armhf rootfs

They skip only when not running as root; otherwise missing system packages are
installed by scripts/install-test-deps.sh (once per session) and failures are errors.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import Callable, Iterator

import pytest

from .armhf import default_cache_dir, ensure_armhf_rootfs, start_armv7_host
from .deps import ensure_test_deps
from .sshd import SshHost, start_x86_host

__all__ = [
    "host_deps",
    "armhf_rootfs",
    "x86_host_a",
    "x86_host_b",
    "gpu_host",
    "armv7_host",
    "test_hosts",
]

HOST_NAMES = ("x86-a", "x86-b", "gpu", "armv7")

# name -> [host, refcount]
_pool: dict[str, list] = {}


def _stop_all() -> None:
    for name in list(_pool):
        host, _ = _pool.pop(name)
        host.stop()


atexit.register(_stop_all)


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("real SSH test hosts need root (sshd on loopback, chroot, binfmt_misc, apt-get)")


@contextlib.contextmanager
def _uncaptured(request: pytest.FixtureRequest) -> Iterator[None]:
    """Let slow setup (apt-get, debootstrap) print progress to the terminal."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        yield
        return
    with capman.global_and_fixture_disabled():
        yield


def _pooled(name: str, start: Callable[[], SshHost]) -> Iterator[SshHost]:
    entry = _pool.get(name)
    if entry is None or not entry[0].alive:
        if entry is not None:
            entry[0].stop()
        entry = _pool[name] = [start(), 0]
    entry[1] += 1
    try:
        yield entry[0]
    finally:
        entry[1] -= 1
        if entry[1] <= 0 and _pool.get(name) is entry:
            del _pool[name]
            entry[0].stop()


@pytest.fixture(scope="session")
def host_deps(request: pytest.FixtureRequest) -> None:
    """Root check + system packages / binfmt_misc in place."""
    _require_root()
    with _uncaptured(request):
        ensure_test_deps()


@pytest.fixture(scope="session")
def armhf_rootfs(request: pytest.FixtureRequest, host_deps):
    progress = lambda msg: print(f"[armhf-rootfs] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    with _uncaptured(request):
        return ensure_armhf_rootfs(default_cache_dir(), progress=progress)


@pytest.fixture(scope="session")
def x86_host_a(tmp_path_factory: pytest.TempPathFactory, host_deps) -> Iterator[SshHost]:
    yield from _pooled("x86-a", lambda: start_x86_host(tmp_path_factory.mktemp("host-x86-a"), "x86-a"))


@pytest.fixture(scope="session")
def x86_host_b(tmp_path_factory: pytest.TempPathFactory, host_deps) -> Iterator[SshHost]:
    yield from _pooled("x86-b", lambda: start_x86_host(tmp_path_factory.mktemp("host-x86-b"), "x86-b"))


@pytest.fixture(scope="session")
def gpu_host(tmp_path_factory: pytest.TempPathFactory, host_deps) -> Iterator[SshHost]:
    yield from _pooled("gpu", lambda: start_x86_host(tmp_path_factory.mktemp("host-gpu"), "gpu", gpu=True))


@pytest.fixture(scope="session")
def armv7_host(tmp_path_factory: pytest.TempPathFactory, armhf_rootfs) -> Iterator[SshHost]:
    yield from _pooled(
        "armv7",
        lambda: start_armv7_host(tmp_path_factory.mktemp("host-armv7"), armhf_rootfs.parent, name="armv7"),
    )


@pytest.fixture(scope="session")
def test_hosts(x86_host_a, x86_host_b, gpu_host, armv7_host) -> dict[str, SshHost]:
    """All four hosts by name: x86-a, x86-b, gpu, armv7."""
    return {h.name: h for h in (x86_host_a, x86_host_b, gpu_host, armv7_host)}
