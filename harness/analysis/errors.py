"""The one exception type of the analysis package."""

from __future__ import annotations


class AnalysisError(Exception):
    """Static analysis could not be done; str() is one line: where, what, what was expected.

    Kept independent of harness.errors for now (the lead unifies the error classes later);
    the message layout matches it so the swap is mechanical.
    """

    exit_code = 2

    def __init__(self, where: str, what: str, expected: str | None = None):
        self.where, self.what, self.expected = where, what, expected
        msg = f"{where}: {what}"
        if expected:
            msg += f" (expected {expected})"
        super().__init__(" ".join(msg.split()))  # a single line whatever the inputs contained
