"""What a build is for: a host's CPU architecture and Python, and how to compile for it here.

x86_64 builds natively; armv7l (and aarch64) cross-compile with Debian's cross toolchains
(``crossbuild-essential-armhf`` / ``-arm64``: ``arm-linux-gnueabihf-gcc`` ...). The Python
module needs the host's Python headers and numpy headers: this machine's own when its Python is
the host's (same architecture and version), else copied from the host (``headers_from``).
"""

from __future__ import annotations

import platform
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# host architecture (uname -m) -> (GNU triplet, CMAKE_SYSTEM_PROCESSOR, Debian package)
CROSS = {
    "armv7l": ("arm-linux-gnueabihf", "armv7-a", "crossbuild-essential-armhf"),
    "aarch64": ("aarch64-linux-gnu", "aarch64", "crossbuild-essential-arm64"),
}


@dataclass(frozen=True)
class BuildTarget:
    """One host kind a build is for.

    ``arch``: ``uname -m`` of the host; ``python_tag``: ``cp311``; ``ext_suffix``: the
    host's ``EXTENSION_SUFFIX`` (".cpython-311-arm-linux-gnueabihf.so"); ``include_dirs``:
    directories on this machine with the host's ``Python.h``, ``pyconfig.h`` and
    ``numpy/arrayobject.h``; ``glibc``: the host's C library version (for the record).
    """

    arch: str
    python_tag: str
    ext_suffix: str
    include_dirs: tuple[str, ...]
    glibc: str | None = None

    @property
    def native(self) -> bool:
        return self.arch == platform.machine()

    def key(self) -> str:
        return f"{self.arch}-{self.python_tag}"

    def triplet(self) -> str | None:
        return None if self.native else CROSS[self.arch][0]

    def compilers(self) -> tuple[str, str]:
        """(C compiler, C++ compiler) for this target."""
        t = self.triplet()
        return ("cc", "c++") if t is None else (f"{t}-gcc", f"{t}-g++")

    def missing_toolchain(self) -> str | None:
        """Why this machine cannot compile for the target, or None."""
        if not self.native and self.arch not in CROSS:
            return (f"no cross toolchain known for {self.arch} (builds run for x86_64 here "
                    f"and cross-compile for {', '.join(sorted(CROSS))})")
        for c in self.compilers():
            if shutil.which(c) is None:
                pkg = CROSS[self.arch][2] if not self.native else "build-essential"
                return f"{c} not found on this machine (Debian package {pkg})"
        for tool in ("cmake", "ninja"):
            if shutil.which(tool) is None:
                return f"{tool} not found on this machine (Debian package {tool if tool == 'cmake' else 'ninja-build'})"
        return None

    def cmake_toolchain(self, path: Path) -> list[str]:
        """CMake arguments for this target; writes a toolchain file at ``path`` when it is a
        cross build."""
        if self.native:
            return []
        triplet, processor, _ = CROSS[self.arch]
        path.write_text(
            "set(CMAKE_SYSTEM_NAME Linux)\n"
            f"set(CMAKE_SYSTEM_PROCESSOR {processor})\n"
            f"set(CMAKE_C_COMPILER {triplet}-gcc)\n"
            f"set(CMAKE_CXX_COMPILER {triplet}-g++)\n"
            # only the cross toolchain's own libraries and headers, never this machine's
            "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)\n"
            "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)\n"
            "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)\n"
            "set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)\n")
        return [f"-DCMAKE_TOOLCHAIN_FILE={path}"]


def this_python_target() -> BuildTarget:
    """The target of this machine's own Python (the local executor, and hosts like it)."""
    import numpy
    inc = [sysconfig.get_paths()["include"], sysconfig.get_paths()["platinclude"],
           numpy.get_include()]
    return BuildTarget(arch=platform.machine(), python_tag="cp%d%d" % sys.version_info[:2],
                       ext_suffix=sysconfig.get_config_var("EXT_SUFFIX") or ".so",
                       include_dirs=tuple(dict.fromkeys(inc)),
                       glibc=platform.libc_ver()[1] or None)


# The host's answer to this (run with the host's Python) says where its headers are: the
# directories to put on the include path, and those to copy (Debian's pyconfig.h includes
# <MULTIARCH/python3.X/pyconfig.h>, relative to the folder above Python's include folder).
HEADERS_PROBE = (
    "import json,os,sysconfig\n"
    "p=sysconfig.get_paths()\n"
    "inc=[p['include'],p['platinclude']]\n"
    "try:\n import numpy; inc.append(numpy.get_include())\n"
    "except Exception: inc.append(None)\n"
    "root=os.path.dirname(p['include'])\n"
    "ma=sysconfig.get_config_var('MULTIARCH')\n"
    "extra=os.path.join(root,ma,os.path.basename(p['include'])) if ma else None\n"
    "copy=[d for d in inc+[extra] if d and os.path.isdir(d)]\n"
    "print(json.dumps({'include':p['include'],'numpy':inc[2],'include_dirs':inc+[root],"
    "'copy':sorted(set(copy)),'ext_suffix':sysconfig.get_config_var('EXT_SUFFIX')}))\n"
)
