"""The device lease as executors take it: one coordinator process measures on a device at a
time, this machine included.

The lease itself (``harness_agent.hostctl``: lock, renew, unlock, owner identity, the process
groups measuring under it) lives with the agent, because it runs on the device; here is how a
coordinator takes it, the same for an SSH host and for this machine: ``ctl(verb, *args,
timeout=...)`` runs a hostctl verb on the device, over SSH or in this process.
"""

from __future__ import annotations

import logging

from typing import Callable

from harness_agent.hostctl import HostctlError, call, owner_dead, owner_id

from ..fleet.transport import HostBusy

log = logging.getLogger(__name__)


class HostctlFailed(Exception):
    """A ``hostctl`` verb on the device answered with an error (its one-line reason);
    ``held_by``: the lease's owner when another one holds it."""

    def __init__(self, message: str, held_by: str | None = None):
        super().__init__(message)
        self.held_by = held_by


def default_owner(label: str) -> str:
    """The lease owner of this coordinator process, one run (``label``: the run id): unique
    wherever coordinators run (hostctl.owner_id)."""
    return owner_id(label)


def local_ctl(verb: str, *args: str, timeout: float | None = None) -> dict:
    """hostctl ``verb`` in this process (the device is this machine); as an SSH ctl answers.
    Raises HostctlFailed."""
    try:
        return call(verb, list(args))
    except HostctlError as e:
        raise HostctlFailed(str(e), e.held_by) from None


def acquire(ctl: Callable[..., dict], work: str, owner: str, ttl_s: float, wait_s: float,
            name: str) -> None:
    """Take the lease WORK/lock for ``owner`` (``ttl_s`` seconds; renewed by each job).

    A lease whose owner is provably dead (a coordinator process of this machine that is gone:
    hostctl.owner_dead) is taken over at once; any other holder is waited for up to ``wait_s``
    seconds. Taking a lease over first kills what its owner left measuring on the device.
    Raises HostBusy naming the holder, HostctlFailed for another failure of the device."""
    try:
        ctl("lock", work, owner, str(ttl_s), "0")
        return
    except HostctlFailed as e:
        if not e.held_by:
            raise
        holder = e.held_by
    # only a coordinator of this machine can be proved dead; any other lease must expire
    dead = (holder,) if owner_dead(holder) else ()
    if not dead and wait_s > 0:  # a silent wait of up to a minute reads as a hang
        log.warning("%s: in use by %s; waiting up to %g s for it", name, holder, wait_s)
    try:
        ctl("lock", work, owner, str(ttl_s), str(wait_s), *dead, timeout=wait_s + 60)
    except HostctlFailed as e:
        if not e.held_by:
            raise
        raise HostBusy(f"{name}: {e}") from None
