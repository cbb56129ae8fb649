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
