"""User-facing errors: raised where the fault is known, printed once at the CLI edge."""

from __future__ import annotations


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
