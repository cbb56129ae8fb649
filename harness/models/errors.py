"""The error a model, its input shapes or its static analysis raises when it cannot be used."""

from __future__ import annotations

from ..errors import InputError


class ModelError(InputError):
    """A model name, file or input shape that cannot be used; one line: where, what, what was
    expected (exit code 2, nothing written)."""
