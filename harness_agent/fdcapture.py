"""Capture what native code writes to file descriptors 1 and 2.

Engines print their diagnostics (MNN's backend fallback, ncnn's Vulkan probing) from C++ straight
to the descriptors, bypassing sys.stdout, so the only way to read them is to swap the descriptors.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterable, Iterator, List


def _flush_c_stdio() -> None:
    # Native code prints through C stdio, which buffers when fd 1 is a pipe: flush it while
    # the descriptors still point at the capture file.
    try:
        import ctypes
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


class Captured:
    def __init__(self) -> None:
        self.text = ""


@contextlib.contextmanager
def capture_native_output(echo_fd: int = 2) -> Iterator[Captured]:
    """Send fds 1 and 2 to a temp file for the block; afterwards the text is on .text.

    The captured text is echoed to ``echo_fd`` (unless it is negative) so that nothing the engine
    said is lost.
    """
    cap = Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    saved: List[int] = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            yield cap
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            _flush_c_stdio()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            data = tmp.read()
            cap.text = data.decode("utf-8", "replace")
            if data and echo_fd >= 0:
                os.write(echo_fd, data)


def relevant_lines(text: str, noise: Iterable[str] = ()) -> str:
    """The non-blank lines of ``text`` that none of the ``noise`` regular expressions match
    (re.search), joined by newlines: what an engine said, without its device banners."""
    import re
    pats = [re.compile(n) for n in noise]
    return "\n".join(ln.rstrip() for ln in text.splitlines()
                     if ln.strip() and not any(p.search(ln) for p in pats))
