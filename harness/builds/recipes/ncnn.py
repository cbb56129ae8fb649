"""ncnn from source: its Python module (pybind11, from PyPI, instead of the dropped git
submodule) linked against a static ncnn, ``benchncnn``, and the int8 tools ``ncnn2table`` and
``ncnn2int8`` (not in the wheel; the coordinator quantizes with them), as ncnn's own
``setup.py`` and CMake build them (``NCNN_PYTHON=ON``, ``NCNN_BUILD_TOOLS=ON``; only the named
targets are compiled, and the converters that need protobuf are skipped by ncnn's CMake when
it is absent). Vulkan uses Debian's glslang (``glslang-dev``) through ``NCNN_SYSTEM_GLSLANG``;
ncnn loads the Vulkan driver at run time.

The int8 tools include ``tools/modelwriter.h``, which includes ``../tests/prng.h`` for a
random-weight generator they never call. A tree without ``tests/`` (the trimmed release
tarball) gets a small header of the harness's own there, in the build's unpacked copy only
(build.py unpacks tarballs and ``git archive``s checkouts: a user's checkout is never
written), and the build's notes say so.

ncnn's version is a date (``1.0.YYYYMMDD``); CMake takes today's unless told, so it is read
from the source: a date in the tarball's name or the ref, else the commit's date.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..build import BuildContext, BuildFailed

dist = "ncnn"
BACKENDS = ("cpu", "vulkan")  # what a build can contain (ncnn has no OpenCL backend)


def _date(ctx: BuildContext) -> str:
    """ncnn's release date for its version: a YYYYMMDD in the tarball's name or the ref, else
    the commit's date, else the newest file time in the tarball's sources (release archives
    keep the commit's time)."""
    s = ctx.source
    m = re.search(r"(20\d{6})", Path(s.path).name if not s.is_git else (s.ref or ""))
    if m:
        return m.group(1)
    if s.is_git:
        commit = s.identity().split(":", 1)[1]
        r = subprocess.run(["git", "-C", s.path, "log", "-1", "--format=%cd",
                            "--date=format:%Y%m%d", commit], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    newest = max((p.stat().st_mtime for p in (ctx.src / "src").glob("*.cpp")), default=None)
    if newest is None:
        raise BuildFailed(f"{s.path}: no src/*.cpp: not an ncnn source tree")
    return time.strftime("%Y%m%d", time.gmtime(newest))


def configure_args(ctx: BuildContext) -> list[str]:
    if not ctx.target.native:
        raise BuildFailed(f"ncnn {ctx.source.name}: its Python module builds for this "
                          f"machine's architecture only (pybind11 finds the target Python "
                          f"through CMake's FindPython); {ctx.target.arch} hosts run ncnn's "
                          "PyPI wheels")
    import pybind11
    vulkan = "vulkan" in ctx.source.options()["backends"]
    return ["-DNCNN_PYTHON=ON", "-DNCNN_SYSTEM_PYBIND11=ON",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", f"-DPython_EXECUTABLE={sys.executable}",
            "-DNCNN_BUILD_BENCHMARK=ON",
            f"-DNCNN_BUILD_TOOLS={'ON' if _int8_tools(ctx) else 'OFF'}",
            "-DNCNN_BUILD_EXAMPLES=OFF",
            "-DNCNN_BUILD_TESTS=OFF", "-DNCNN_SHARED_LIB=OFF", f"-DNCNN_VERSION={_date(ctx)}",
            f"-DNCNN_VULKAN={'ON' if vulkan else 'OFF'}",
            f"-DNCNN_SYSTEM_GLSLANG={'ON' if vulkan else 'OFF'}"]


def ninja_targets(ctx: BuildContext) -> list[str]:
    """Only what the harness runs: the Python module, benchncnn and the int8 tools."""
    return ["pyncnn", "benchncnn"] + (["ncnn2table", "ncnn2int8"] if _int8_tools(ctx) else [])


INT8_TOOLS = ("ncnn2table", "ncnn2int8")
PRNG_NOTE = "tests/prng.h supplied by harness: the tree has no tests/"
# the first line of the header written here: how a later build of the same unpacked tree
# (build.py unpacks once per source identity) knows the file is the harness's, not ncnn's
_PRNG_MARK = "// tests/prng.h supplied by the harness (harness/builds/recipes/ncnn.py)"
# A splitmix64 generator with the interface modelwriter.h calls (prng_srand, prng_rand):
# the int8 tools never draw from it, it only has to compile.
_PRNG_H = _PRNG_MARK + """
// This source tree has no tests/; ncnn's tools/modelwriter.h includes this header for its
// random-weight generator, which ncnn2table and ncnn2int8 do not use.
#ifndef HARNESS_SUPPLIED_PRNG_H
#define HARNESS_SUPPLIED_PRNG_H
#include <stdint.h>

struct prng_rand_t
{
    uint64_t state;
};

static inline void prng_srand(uint64_t seed, struct prng_rand_t* r)
{
    r->state = seed;
}

static inline uint64_t prng_rand(struct prng_rand_t* r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
#endif
"""


def _int8_tools(ctx: BuildContext) -> bool:
    """Whether the tree can build ncnn2table/ncnn2int8 (it has ``tools/quantize``). A tree
    without ``tests/prng.h`` gets the harness's own in the build's unpacked copy, noted in
    ``ctx.notes``."""
    if not (ctx.src / "tools" / "quantize").is_dir():
        return False
    prng = ctx.src / "tests" / "prng.h"
    if not prng.is_file():
        prng.parent.mkdir(parents=True, exist_ok=True)
        prng.write_text(_PRNG_H)
    if prng.read_text(errors="replace").startswith(_PRNG_MARK) and PRNG_NOTE not in ctx.notes:
        ctx.notes.append(PRNG_NOTE)
    return True


def finish(ctx: BuildContext) -> str:
    built = sorted((ctx.build / "python" / "ncnn").glob("ncnn*.so"))
    if not built:
        raise BuildFailed(f"ncnn {ctx.source.name}: the build made no Python module "
                          f"(python/ncnn/ncnn*.so)")
    pkg = ctx.stage / "ncnn"
    shutil.copytree(ctx.src / "python" / "ncnn", pkg,
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copy2(built[0], pkg / built[0].name)
    for tool in ("benchmark/benchncnn", *(f"tools/quantize/{t}" for t in INT8_TOOLS)):
        if (ctx.build / tool).is_file():
            shutil.copy2(ctx.build / tool, ctx.tools / Path(tool).name)
    return f"1.0.{_date(ctx)}"
