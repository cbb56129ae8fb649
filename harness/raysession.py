"""A Ray instance for one coordinator run: private and quiet unless a cluster is named."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def ray_session(address: str | None = None,
                resources: dict[str, float] | None = None) -> Iterator[object]:
    import ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():  # a caller (a notebook, a test) already owns one
        yield ray
        return
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    main_thread = threading.current_thread() is threading.main_thread()
    on_term = signal.getsignal(signal.SIGTERM) if main_thread else None
    if address:
        check_reachable(address)
        ray.init(address=address, **kwargs)
    else:
        # address="local" always starts a private instance: a plain init() would attach to
        # whatever cluster RAY_ADDRESS or a running head points at.
        ray.init(address="local", resources=resources or None, **kwargs)
    if callable(on_term):
        # Ray's core installs its own SIGTERM handler (log, then abort): the caller's (the
        # CLI's, which unwinds so that remote measurements are stopped) comes back
        signal.signal(signal.SIGTERM, on_term)
    try:
        yield ray
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Raise InputError unless something accepts a TCP connection at ``address`` (HOST:PORT,
    a Ray head's GCS): ray.init retries an unreachable address for minutes, printing its own
    warnings, and does not stop on SIGTERM meanwhile. "auto" and ray:// addresses are left to
    Ray."""
    import socket
    from .errors import InputError
    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise InputError(f"--ray-address {address}", f"no Ray cluster answers there ({why})",
                         "the address a running Ray head printed (ray start --head)") from None
