"""The one exception type of the analysis package."""

from __future__ import annotations

from ..errors import InputError


class AnalysisError(InputError):
    """Static analysis could not be done; one line: where, what, what was expected (exit 2)."""
