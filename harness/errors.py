"""User-facing errors: raised where the fault is known, printed once at the CLI edge."""

from __future__ import annotations

import errno


class HarnessError(Exception):
    """An error whose message is a complete, single line for the user."""

    exit_code = 1


class InputError(HarnessError):
    """Bad user input (suite, inventory, flags): exit code 2, nothing written."""

    exit_code = 2

    def __init__(self, where: str, what: str, expected: str | None = None):
        self.where, self.what, self.expected = where, what, expected
        msg = f"{where}: {what}"
        if expected:
            msg += f" (expected {expected})"
        super().__init__(" ".join(msg.split()))  # one line, whatever the parts contained


class DiskFull(HarnessError):
    """A write of the coordinator's (the results directory) found the disk full: exit code 2;
    what was written before is kept."""

    exit_code = 2


# errno values of a disk that takes no more data (full, over quota); pyarrow's OSError names
# the cause only in its text.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_FULL_TEXT = ("No space left on device", "Disk quota exceeded")


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e`` says the disk it wrote to is full (or the quota is spent)."""
    return isinstance(e, OSError) and (e.errno in _FULL_ERRNOS
                                       or any(t in str(e) for t in _FULL_TEXT))
