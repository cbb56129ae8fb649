"""SSH key material for the test hosts: host keys, client keys, known_hosts files."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def generate_ed25519(path: Path, comment: str) -> tuple[Path, Path]:
    """Create an unencrypted ed25519 key pair at ``path`` / ``path.pub`` (overwriting).

    Returns (private key path, public key path).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, path.with_name(path.name + ".pub")):
        if p.exists():
            p.unlink()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    os.chmod(path, 0o600)
    return path, path.with_name(path.name + ".pub")


def public_key_line(pub_path: Path) -> str:
    """``"ssh-ed25519 AAAA..."`` (type and base64 blob, no comment)."""
    fields = Path(pub_path).read_text().split()
    return f"{fields[0]} {fields[1]}"


def known_hosts_host(host: str, port: int) -> str:
    """The host pattern OpenSSH / paramiko use in known_hosts for host:port."""
    return host if port == 22 else f"[{host}]:{port}"


def write_known_hosts(path: Path, host: str, port: int, host_pub: Path) -> Path:
    """Write a known_hosts file holding exactly the given host key for host:port."""
    path = Path(path)
    path.write_text(f"{known_hosts_host(host, port)} {public_key_line(host_pub)}\n")
    os.chmod(path, 0o644)
    return path


def write_authorized_keys(path: Path, client_pub: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(Path(client_pub).read_text())
    os.chmod(path, 0o600)
    return path
