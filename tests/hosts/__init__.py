"""Real SSH test hosts for the harness integration tests.

- ``start_x86_host(tmpdir, name, gpu=False)``: this machine's OpenSSH server on a free
  loopback port (x86_64; Vulkan visible only with ``gpu=True``).
- ``start_armv7_host(tmpdir, cache_dir=None)``: the armhf OpenSSH server of a cached
  Debian bookworm armhf rootfs run under qemu-arm (``uname -m`` = armv7l).
- ``ensure_armhf_rootfs(cache_dir=None)``: build/reuse that rootfs.
- ``SshHost``: what a host looks like to the harness (``inventory_entry()``), with SSH
  client helpers (``ssh_config()``, ``ssh_options()``, ``run()``, ``paramiko_client()``,
  ``fabric_connection()``) and ``stop()``.
- ``tests.hosts.fixtures``: session-scoped pytest fixtures (x86_host_a, x86_host_b,
  gpu_host, armv7_host, test_hosts).

System packages: ``scripts/install-test-deps.sh`` (``ensure_test_deps()`` runs it when
something is missing).  Everything here needs root.
"""

from .armhf import default_cache_dir, ensure_armhf_rootfs, read_marker, start_armv7_host
from .deps import ensure_test_deps
from .sshd import NO_VULKAN_ENV, TOKEN_ENV, SshdStartError, SshHost, start_x86_host

__all__ = [
    "NO_VULKAN_ENV",
    "TOKEN_ENV",
    "SshHost",
    "SshdStartError",
    "default_cache_dir",
    "ensure_armhf_rootfs",
    "ensure_test_deps",
    "read_marker",
    "start_armv7_host",
    "start_x86_host",
]
