"""What the harness prints to a terminal carries no control characters it did not mean: model
names, engine messages and file names come from users and engines."""

from __future__ import annotations

import re

# Control characters other than newline and tab: what a model name, an engine's message or a
# file name could carry to a terminal (escape sequences move the cursor, recolour, retitle).
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0b, 0x20))}
_CONTROL.update({c: f"\\x{c:02x}" for c in range(0x80, 0xa0)})


# An ANSI escape sequence (CSI): colours, cursor moves; what Ray and engines colour text with.
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_escapes(text: str) -> str:
    """``text`` without its ANSI escape sequences: plain text to store (an error column)."""
    return _ESCAPE.sub("", text)


def terminal_safe(text: str) -> str:
    """``text`` with every control character but newline and tab written as a visible
    ``\\xNN`` escape."""
    return text.translate(_CONTROL)


class SafeStream:
    """A text stream that writes through terminal_safe (JSON output is unaffected: json.dumps
    already escapes control characters)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(terminal_safe(text))

    @property
    def raw(self):
        """The stream underneath, for writers whose control characters are their own (a
        progress bar's carriage returns and cursor moves)."""
        return self._stream

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
