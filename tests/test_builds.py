"""Engines built from source with real compilers, run through `harness run` on real hosts.

The sources are the trimmed release tarballs of ../shared/engine-src/. Builds are cached
(harness.builds: by source identity, options and target; objects in ccache), so only a cold
machine compiles: MNN for armv7l (cross), MNN with Vulkan and OpenCL for x86_64, ncnn for
x86_64.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tarfile

import pandas as pd
import pytest

from harness.config.suite import load_suite
from harness.coordinator import run_suite
from harness.fleet.inventory import load_inventory
from tests.helpers import engine_src, write_inventory

pytestmark = [pytest.mark.engines, pytest.mark.slow]
# On a cold machine a test compiles its engines first (MNN for armv7l: about 3.5 min a
# version on 2 cores; MNN with Vulkan and OpenCL: about 5 min): more than the suite's
# 600 s per test
COLD_BUILDS = pytest.mark.timeout(2400)


def _harness(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, timeout=timeout)


class _Said(logging.Handler):
    """The messages of a logger, whatever other tests did to propagation and levels."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _broken_copy(tmp_path, name="ncnn-20260526"):
    """ncnn's tarball with one header that no compiler accepts."""
    with tarfile.open(engine_src(f"{name}.tar.xz")) as tf:
        tf.extractall(tmp_path / "x", filter="data")
    mat = tmp_path / "x" / name / "src" / "mat.h"
    mat.write_text("int broken_by_the_test = ;\n" + mat.read_text())
    out = tmp_path / f"{name}-broken.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=1) as tf:
        tf.add(tmp_path / "x" / name, arcname=name)
    return out


@COLD_BUILDS
def test_a_source_that_does_not_compile_is_build_error_for_that_version_only(tmp_path):
    broken = _broken_copy(tmp_path)
    (tmp_path / "s.toml").write_text(f"""
name = "broken"
engines = {{ ncnn = ["installed", {{ source = "{broken}", name = "broken" }}] }}
[measure]
warmup = 0
min_iterations = 3
processes = 1
[[models]]
name = "m"
builtin = "reduction_sum_block"
""")
    r = _harness("run", str(tmp_path / "s.toml"), "--data", str(tmp_path / "res"))
    assert r.returncode == 1, r.stderr[-2000:]  # a failed configuration, not a crash
    assert "Traceback" not in r.stderr
    df = pd.read_parquet(tmp_path / "res")
    by = df.set_index("engine_version_requested")
    assert by.loc["installed", "status"] == "ok"
    bad = by.loc["broken"]
    assert bad.status == "build_error"
    assert "mat.h" in bad.error and "error:" in bad.error
    assert bad.engine_build == "broken" and bad.engine_source.startswith("sha256:")
    assert "build_error" in r.stdout


@COLD_BUILDS
@pytest.mark.hosts
def test_mnn_built_for_armv7_finds_the_convtranspose_memory_fix(armv7_host, tmp_path):
    inv = write_inventory(tmp_path / "inv.toml", [armv7_host.inventory_entry()])
    (tmp_path / "s.toml").write_text(f"""
name = "mnn-armv7"
engines = {{ mnn = [ {{ source = "{engine_src('MNN-3.0.0.tar.xz')}" }},
                     {{ source = "{engine_src('MNN-3.1.0.tar.xz')}" }} ] }}
threads = [1, 2, 4]
[measure]
warmup = 0
min_iterations = 2
processes = 2
timeout_s = 600
[[models]]
name = "upsampler"
builtin = "convtranspose_upsampler"
""")
    suite = load_suite(tmp_path / "s.toml")
    hosts = load_inventory(inv)
    out = tmp_path / "res"
    first = run_suite(suite, out, hosts=hosts, progress=False, placement="threads")
    df = pd.DataFrame(first.rows)
    assert (df.status == "ok").all(), df[["status", "error"]].to_string()
    assert set(df.arch) == {"armv7l"} and set(df.engine_version) == {"3.0.0", "3.1.0"}
    assert set(df.engine_build) == {"src:MNN-3.0.0", "src:MNN-3.1.0"}
    opts = json.loads(df.engine_build_options.iloc[0])
    assert opts["target"] == "armv7l-cp311" and opts["backends"] == ["cpu"]
    assert df.engine_source.str.startswith("sha256:").all()
    assert (df.verdict == "ok").all()  # outputs checked against onnxruntime on the coordinator

    # a second run builds nothing and sends no engine
    said = _Said()
    logger = logging.getLogger("harness.builds")
    logger.addHandler(said)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        second = run_suite(suite, out, hosts=hosts, progress=False, placement="threads")
    finally:
        logger.removeHandler(said)
        logger.setLevel(level)
    assert sum("build cache hit" in m for m in said.messages) == 2, said.messages
    assert not any(m.startswith("building ") for m in said.messages)
    assert sum(t["bytes"] for t in second.transfers if t["kind"] == "wheel") == 0
    assert (pd.DataFrame(second.rows).status == "ok").all()

    # both runs' rows: 4 processes a side (the memory rule needs 3)
    cmp_ = _harness("compare", "--data", str(out), "--engine", "mnn", "--base",
                    "src:MNN-3.0.0", "--head", "src:MNN-3.1.0", "--json")
    assert cmp_.returncode == 0, cmp_.stderr
    by_t = {p["key"]["threads"]: p for p in json.loads(cmp_.stdout)["pairs"]}
    assert sorted(by_t) == [1, 2, 4]
    assert by_t[1]["memory"]["steady"]["verdict"] == "smaller"
    assert by_t[1]["memory"]["steady"]["delta_kb"] < -32 * 1024  # the k*k*featuremap buffer


# the two micro-models of the seed cases: ConvTranspose (memory) and Reduction (fp16 overflow)
MICRO_MODELS = """[[models]]
name = "upsampler"
builtin = "convtranspose_upsampler"
[[models]]
name = "reduction"
builtin = "reduction_sum_block"
"""

GPU_SUITE = """
name = "mnn-gpu"
engines = {{ mnn = [ {{ source = "{src}", name = "3.1.0-gpu", backends = ["vulkan", "opencl"] }} ] }}
backends = ["vulkan", "opencl"]
[measure]
warmup = 1
min_iterations = 3
processes = 1
{models}"""


@COLD_BUILDS
@pytest.mark.hosts
def test_mnn_built_with_vulkan_and_opencl_on_the_gpu_host(gpu_host, tmp_path):
    inv = write_inventory(tmp_path / "inv.toml", [gpu_host.inventory_entry()])
    (tmp_path / "s.toml").write_text(GPU_SUITE.format(src=engine_src("MNN-3.1.0.tar.xz"),
                                                         models=MICRO_MODELS))
    report = run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "res",
                       hosts=load_inventory(inv), progress=False, placement="threads")
    df = pd.DataFrame(report.rows).set_index(["model", "backend_requested"])
    for model in ("upsampler", "reduction"):
        vk = df.loc[(model, "vulkan")]
        # really on Vulkan (MNN's session reports its backend), outputs as onnxruntime's
        assert vk.status == "ok" and vk.backend == "vulkan", vk.notes
        assert vk.verdict == "ok" and vk.engine_version == "3.1.0"
        # MNN's OpenCL runtime takes GPU-type devices only (OpenCLRuntime.cpp asks for
        # CL_DEVICE_TYPE_GPU); pocl's device is a CPU: a fallback, said as MNN says it
        cl = df.loc[(model, "opencl")]
        assert cl.status == "fallback" and cl.backend == "cpu"
        assert "Can't Find type=3 backend" in cl.notes
    opts = json.loads(df.engine_build_options.iloc[0])
    assert opts["backends"] == ["cpu", "opencl", "vulkan"]


NCNN_SUITE = """
name = "ncnn-src"
engines = {{ ncnn = ["1.0.20260526", {{ source = "{src}", backends = ["vulkan"] }}] }}
backends = ["cpu", "vulkan"]
threads = [1]
[measure]
warmup = 2
min_iterations = 30
processes = 3
{models}"""


@COLD_BUILDS
def test_ncnn_source_build_and_the_wheel_of_the_same_release_agree(tmp_path):
    (tmp_path / "s.toml").write_text(NCNN_SUITE.format(src=engine_src("ncnn-20260526.tar.xz"),
                                                           models=MICRO_MODELS))
    out = tmp_path / "res"
    run = _harness("run", str(tmp_path / "s.toml"), "--data", str(out))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    df = pd.read_parquet(out)
    assert set(df.engine_version) == {"1.0.20260526"}  # ncnn's own version string, both
    assert (df.status == "ok").all() and (df.verdict == "ok").all()
    src = df[df.engine_build.notna()]
    assert set(src.engine_build) == {"src:ncnn-20260526"} and len(src) == len(df) // 2
    assert set(df.backend) == {"cpu", "vulkan"}
    cmp_ = _harness("compare", "--data", str(out), "--engine", "ncnn", "--base",
                    "1.0.20260526", "--head", "src:ncnn-20260526", "--json")
    assert cmp_.returncode == 0, cmp_.stderr
    pairs = json.loads(cmp_.stdout)["pairs"]
    assert len(pairs) == 2 * 2  # models x backends
    for p in pairs:
        # the same release from the same source: outputs within fp32 tolerance of each other
        assert p["correctness"]["verdict"] in ("identical", "ok"), p["correctness"]
        assert p["latency"]["verdict"] in ("same", "faster", "slower", "unstable")
    text = _harness("compare", "--data", str(out), "--engine", "ncnn", "--base",
                    "1.0.20260526", "--head", "src:ncnn-20260526")
    assert "latency:" in text.stdout and "correctness:" in text.stdout
