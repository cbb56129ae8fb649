"""MNN from source: ``libMNN.so`` (express and the asked backends inside it), MNN's Python
module (``pymnn/src/MNN.cc`` as ``_mnncengine``), and ``benchmark.out``.

How MNN's own wheel is made (``pymnn/pip_package/setup.py``): the same ``MNN.cc`` with
``PYMNN_EXPR_API`` and, where numpy is found, ``PYMNN_NUMPY_USABLE``, linked against a static
MNN with the converter, the training API, cv and audio. Here the module is linked against the
shared library built by CMake and without the training, cv and audio APIs (the harness runs
``MNN.Interpreter`` and ``MNN.nn``; models are converted on the coordinator), so the
package's ``__init__`` imports only the submodules this module provides.
"""

from __future__ import annotations

import re
import shutil

from ..build import BuildContext, BuildFailed

dist = "MNN"
BACKENDS = ("cpu", "vulkan", "opencl")  # what a build can contain

# MNN's CMake switch per backend the suite may ask for
_BACKEND_FLAGS = {"vulkan": "MNN_VULKAN", "opencl": "MNN_OPENCL"}

_INIT = '''"""MNN built from source by harness (no training, cv or audio API)."""
from _mnncengine import *  # noqa: F401,F403
from . import expr  # noqa: F401
from . import nn  # noqa: F401
try:
    from . import numpy  # noqa: F401
except ImportError:
    pass
'''


def configure_args(ctx: BuildContext) -> list[str]:
    backends = set(ctx.source.options()["backends"])
    args = ["-DMNN_BUILD_SHARED_LIBS=ON", "-DMNN_SEP_BUILD=OFF", "-DMNN_BUILD_TOOLS=OFF",
            "-DMNN_BUILD_CONVERTER=OFF", "-DMNN_BUILD_BENCHMARK=ON", "-DMNN_BUILD_TEST=OFF",
            "-DMNN_BUILD_DEMO=OFF"]
    args += [f"-D{flag}={'ON' if b in backends else 'OFF'}"
             for b, flag in _BACKEND_FLAGS.items()]
    if ctx.target.arch == "armv7l":
        # the fp16 (ARMv8.2) kernels need an AArch64 or ARMv8.2 compiler target
        args.append("-DMNN_ARM82=OFF")
    return args


def ninja_targets(ctx: BuildContext) -> list[str]:
    return ["MNN", "benchmark.out"]


def version(src) -> str:
    text = (src / "include" / "MNN" / "MNNDefine.h").read_text()
    parts = [re.search(rf"#define MNN_VERSION_{p}\s+(\d+)", text) for p in
             ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        raise BuildFailed(f"{src}: no MNN_VERSION_MAJOR/MINOR/PATCH in include/MNN/MNNDefine.h")
    return ".".join(m.group(1) for m in parts)


def finish(ctx: BuildContext) -> str:
    """Compile the Python module against the built library and stage the package; the
    engine's version."""
    src, b = ctx.src, ctx.build
    pkg = ctx.stage / "MNN"
    libs = pkg / "_libs"
    libs.mkdir(parents=True)
    shutil.copy2(b / "libMNN.so", libs / "libMNN.so")
    includes = ["include", "express", "express/module", "source", "source/core", "tools",
                "schema/current", "3rd_party/flatbuffers/include", "3rd_party",
                "3rd_party/half", "tools/cv/include", "tools/audio/include",
                "transformers/llm/engine/include", "tools/train/source/nn",
                "tools/train/source/grad", "tools/train/source/module",
                "tools/train/source/parameters", "tools/train/source/optimizer",
                "tools/train/source/data", "tools/train/source/transformer"]
    _, cxx = ctx.target.compilers()
    ext = ctx.stage / f"_mnncengine{ctx.target.ext_suffix}"
    argv = (["ccache"] if shutil.which("ccache") else []) + [
        cxx, "-shared", "-fPIC", "-O2", "-std=c++11", "-fno-strict-aliasing",
        "-fvisibility=hidden", "-w", "-DPYMNN_EXPR_API", "-DPYMNN_NUMPY_USABLE",
        "-DBUILD_OPTYPE"]
    argv += [f"-I{src / d}" for d in includes] + [f"-I{d}" for d in ctx.target.include_dirs]
    argv += [str(src / "pymnn" / "src" / "MNN.cc"), "-o", str(ext), f"-L{b}", "-lMNN",
             "-Wl,-rpath,$ORIGIN/MNN/_libs"]
    ctx.run(argv, "Python module (pymnn)")
    py = src / "pymnn" / "pip_package" / "MNN"
    for sub in ("expr", "nn", "numpy"):
        if (py / sub).is_dir():
            shutil.copytree(py / sub, pkg / sub)
    (pkg / "__init__.py").write_text(_INIT)
    bench = b / "benchmark.out"
    if bench.is_file():  # it finds libMNN.so beside it (run with LD_LIBRARY_PATH there)
        shutil.copy2(bench, ctx.tools / "benchmark.out")
        shutil.copy2(b / "libMNN.so", ctx.tools / "libMNN.so")
    return version(src)
