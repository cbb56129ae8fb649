"""Atomic file replacement: readers see the old file or the new one, never a half-written one.

The new content goes to a temporary file in the target's directory (a name starting with '.',
which dataset readers skip), is flushed and fsync'd, renamed over the target, and the directory
is fsync'd so the rename itself survives a power loss. On any failure the temporary file is
removed and the old target is left as it was.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not open directories; the rename is done regardless
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Replace `path` with what `write(tmp_path)` writes to the temporary path it is given.

    `write` may use any writer that takes a path (pyarrow, pandas, Path.write_text). Creates
    the parent directory. Returns `path` as a Path. Whatever `write` raises propagates after
    the temporary file is removed; OSError from the filesystem propagates likewise.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would make results unreadable to other users; the writer
    # creates the file with the usual umask.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace `path` with `data` atomically (see atomic_write)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Replace `path` with `text` atomically (see atomic_write)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding=encoding))
