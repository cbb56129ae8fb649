"""ncnn from source: its Python module (pybind11, from PyPI, instead of the dropped git
submodule) linked against a static ncnn, ``benchncnn``, and, where the tree has what they
include (``tests/prng.h``, through ``tools/modelwriter.h``), the int8 tools ``ncnn2table``
and ``ncnn2int8`` (not in the wheel), as ncnn's own ``setup.py`` and CMake build them
(``NCNN_PYTHON=ON``, ``NCNN_BUILD_TOOLS``; only the named targets are compiled). Vulkan uses Debian's glslang (``glslang-dev``) through
``NCNN_SYSTEM_GLSLANG``; ncnn loads the Vulkan driver at run time.

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
            f"-DNCNN_BUILD_TOOLS={'ON' if _has_int8_tools(ctx) else 'OFF'}", "-DNCNN_BUILD_EXAMPLES=OFF",
            "-DNCNN_BUILD_TESTS=OFF", "-DNCNN_SHARED_LIB=OFF", f"-DNCNN_VERSION={_date(ctx)}",
            f"-DNCNN_VULKAN={'ON' if vulkan else 'OFF'}",
            f"-DNCNN_SYSTEM_GLSLANG={'ON' if vulkan else 'OFF'}"]


def ninja_targets(ctx: BuildContext) -> list[str]:
    return ["pyncnn", "benchncnn"] + (["ncnn2table", "ncnn2int8"] if _has_int8_tools(ctx)
                                      else [])


def _has_int8_tools(ctx: BuildContext) -> bool:
    """Whether the tree can build ncnn2table/ncnn2int8: a source trimmed of ``tests/`` lacks
    the ``prng.h`` they include."""
    return (ctx.src / "tests" / "prng.h").is_file() and (ctx.src / "tools" / "quantize").is_dir()


def finish(ctx: BuildContext) -> str:
    built = sorted((ctx.build / "python" / "ncnn").glob("ncnn*.so"))
    if not built:
        raise BuildFailed(f"ncnn {ctx.source.name}: the build made no Python module "
                          f"(python/ncnn/ncnn*.so)")
    pkg = ctx.stage / "ncnn"
    shutil.copytree(ctx.src / "python" / "ncnn", pkg,
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copy2(built[0], pkg / built[0].name)
    for tool in ("benchmark/benchncnn", "tools/quantize/ncnn2table", "tools/quantize/ncnn2int8"):
        if (ctx.build / tool).is_file():
            shutil.copy2(ctx.build / tool, ctx.tools / Path(tool).name)
    return f"1.0.{_date(ctx)}"
