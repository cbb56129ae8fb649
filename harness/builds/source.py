"""An engine version given as source: a tarball or a git checkout at a ref, with build options.

A suite names one beside wheel versions::

    engines = { mnn = ["3.6.1", { source = "MNN-3.1.0.tar.xz", backends = ["cpu", "vulkan"] }] }

Its ``name`` is the version string of the plan and of ``engine_version_requested`` (rows also
carry the engine's own version string in ``engine_version``); ``identity`` is what the source
is, whatever its path: ``sha256:<hex>`` of a tarball or ``git:<commit>`` of a checkout.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..cache import sha256_file, sha256_text
from ..errors import HarnessError

_TARBALL = re.compile(r"\.(tar\.(xz|gz|bz2|zst)|tgz|tar)$")


class SourceError(HarnessError):
    """The source of an engine build cannot be read (missing file, not a git repository, an
    unknown ref); the message says which."""


@dataclass(frozen=True)
class EngineSource:
    """One engine build from source.

    ``path``: a tarball (.tar.xz/.tar.gz/...) or a git checkout, absolute. ``ref``: for a
    checkout, the commit, tag or branch to build (None: HEAD). ``backends``: what the build
    contains (cpu always; vulkan, opencl). ``cmake_args``: extra ``-D...`` flags, last on the
    CMake command line. ``name``: the version label in plans and results.
    """

    engine: str
    path: str
    name: str
    ref: str | None = None
    backends: tuple[str, ...] = ("cpu",)
    cmake_args: tuple[str, ...] = ()
    _identity: list = field(default_factory=list, compare=False, hash=False, repr=False)

    @property
    def is_git(self) -> bool:
        return Path(self.path).is_dir()

    def identity(self) -> str:
        """``sha256:<hex>`` of the tarball, or ``git:<commit id>`` of ``ref``. Raises
        SourceError. Read once per object."""
        if not self._identity:
            self._identity.append(_identity(self.path, self.ref))
        return self._identity[0]

    def options(self) -> dict:
        """The build options that change the product (backends, extra CMake flags)."""
        return {"backends": sorted(set(self.backends) | {"cpu"}),
                "cmake_args": list(self.cmake_args)}

    def options_text(self) -> str:
        return json.dumps(self.options(), sort_keys=True)

    def key(self) -> str:
        """Identity and options, for cache keys (hex, 16 characters)."""
        return sha256_text(self.engine, self.identity(), self.options_text())[:16]


def _identity(path: str, ref: str | None) -> str:
    p = Path(path)
    if p.is_file():
        return "sha256:" + sha256_file(p)
    if p.is_dir():
        try:
            r = subprocess.run(["git", "-C", str(p), "rev-parse", "--verify", "--quiet",
                                f"{ref or 'HEAD'}^{{commit}}"], capture_output=True, text=True,
                               timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SourceError(f"{path}: git rev-parse failed: {e}") from None
        if r.returncode != 0:
            raise SourceError(f"{path}: {ref or 'HEAD'!r} is not a commit of this git "
                              "checkout (expected a tag, branch or commit id)")
        return "git:" + r.stdout.strip()
    raise SourceError(f"{path}: no such file or directory (expected a source tarball or a git "
                      "checkout)")


def default_name(path: str, ref: str | None) -> str:
    """A label for a source the suite did not name: the tarball's name without its suffix
    ("MNN-3.1.0"), or the ref (or "HEAD") of a checkout, with "src:" before it so that it can
    never be read as a wheel version."""
    p = Path(path)
    stem = _TARBALL.sub("", p.name) if not p.is_dir() else (ref or "HEAD")
    return f"src:{stem}"


def looks_like_tarball(path: str) -> bool:
    return bool(_TARBALL.search(path))


def short_identity(identity: str) -> str:
    """``sha256:ab12…`` → ``ab12cd34ef56``; ``git:…`` → the first 12 hex digits."""
    return identity.split(":", 1)[-1][:12]
