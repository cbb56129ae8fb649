"""ncnn int8 end to end: ncnn2table + ncnn2int8 built from the trimmed ncnn tarball of
../shared/engine-src/ (it has no tests/: the recipe supplies tests/prng.h), quantizing
squeezenet (the onnx package's backend test model, materialized with seeded weights) and
PP-OCRv4 det, run at fp32 and int8 on the installed ncnn wheel at 1 and 2 threads.

The build cache is the user's (as in test_builds): a cold machine compiles ncnn once (about
8 min on 2 cores); later runs find the build, and ccache the objects."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.models.quantize import NO_NCNN_TOOLS, RANDOM_NOTE
from tests.classic_cnn import LIGHT, materialize
from tests.helpers import engine_src, measure_block, run_suite_text

pytestmark = [pytest.mark.engines, pytest.mark.slow]
# the first test to need the tools may compile ncnn cold (about 8 min on 2 cores)
COLD_BUILDS = pytest.mark.timeout(2400)

ROOT = Path(__file__).resolve().parents[1]
TARBALL = "ncnn-20260526.tar.xz"
QUANTIZER = "ncnn2table method=kl + ncnn2int8 (src:ncnn-20260526 sha256:"


def _suite(tools: Path | None, models: str, iters: int = 3, procs: int = 1,
           threads: str = "[1]") -> str:
    quantize = f'[quantize]\nncnn_tools = "{tools}"\n' if tools else ""
    return f"""
name = "ncnn-int8"
engines = {{ ncnn = "installed" }}
precisions = ["fp32", "int8"]
threads = {threads}
{quantize}""" + measure_block(iters=iters, procs=procs) + models


def _tools_source():
    """The EngineSource a suite's ``[quantize] ncnn_tools = TARBALL`` names."""
    from harness.builds.source import EngineSource
    return EngineSource(engine="ncnn", path=str(engine_src(TARBALL)), name="src:ncnn-20260526")


def _row(df, model, precision, threads=1):
    sel = df[(df.model == model) & (df.precision_requested == precision)
             & (df.threads == threads)]
    assert len(sel) >= 1, df[["model", "precision_requested", "threads"]]
    return sel.iloc[0]


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory):
    if not LIGHT.is_dir():
        pytest.skip("onnx package without backend test data")
    d = tmp_path_factory.mktemp("ncnn-int8")
    materialize("squeezenet", d, opset=13)
    return d


@pytest.fixture(scope="module")
def rows(suite_dir):
    """fp32 and int8 at 1 and 2 threads, 3 processes of 30 runs a side (compare's rules)."""
    models = """
[[models]]
name = "squeezenet"
onnx = "squeezenet.onnx"
calibration_samples = 8

[[models]]
name = "det"
builtin = "ppocr_det"
calibration_samples = 4
"""
    return run_suite_text(suite_dir, _suite(engine_src(TARBALL), models, iters=30, procs=3,
                                  threads="[1, 2]"))


@COLD_BUILDS
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("model", ["squeezenet", "det"])
def test_int8_rows_have_quantizer_int8_layers_and_accuracy(rows, model, threads):
    r = _row(rows, model, "int8", threads)
    assert r.status == "ok" and r.precision == "int8", (r.status, r.error, r.notes)
    assert r.quantizer.startswith(QUANTIZER) and r.calibration.startswith("random ")
    assert RANDOM_NOTE in r.notes
    assert r.int8_ops > 0 and r.ops_total >= r.int8_ops
    assert r.has_reference and math.isfinite(r.out_cosine)
    fp32 = _row(rows, model, "fp32", threads)
    assert fp32.status == "ok" and pd.isna(fp32.quantizer) and fp32.out_cosine > 0.9999
    assert r.artifact_sha256 != fp32.artifact_sha256
    if model == "squeezenet":
        assert r.out_cosine >= 0.99 and r.verdict == "ok" and r.out_top1_agree == 1.0
    else:
        # det's map of a random input is close to 0 everywhere: its cosine says little
        # (MNN's and onnxruntime's int8 det score about 0 too), the errors stay small
        assert r.out_max_abs_err < 0.05


@COLD_BUILDS
def test_tools_build_records_the_supplied_header(rows):
    from harness.builds.build import build_key, build_root
    from harness.builds.recipes.ncnn import PRNG_NOTE
    from harness.builds.target import this_python_target
    info = json.loads((build_root() / build_key(_tools_source(), this_python_target().key())
                       / "build.json").read_text())
    assert PRNG_NOTE in info["notes"]
    assert {"ncnn2table", "ncnn2int8", "benchncnn"} <= set(info["tools"])


@COLD_BUILDS
def test_compare_precision_prints_ncnn_pairs(rows, suite_dir):
    cmd = [sys.executable, "-m", "harness", "compare", "--dimension", "precision",
           "--base", "fp32", "--head", "int8", "--data", str(suite_dir / "results")]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    table = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert table.returncode in (0, 1), table.stderr  # 1: det's int8 is judged wrong
    lines = table.stdout.splitlines()
    assert any(ln.startswith("held equal: engine=ncnn ") for ln in lines), table.stdout
    # one engine: held equal, so the table's first column is the model
    header = next(ln for ln in lines if ln.startswith("model "))
    for col in ("threads", "fp32 ms", "int8 ms", "ratio", "95% CI", "int8 cosine",
                "int8 max abs"):
        assert col in header
    for model in ("squeezenet", "det"):
        assert sum(ln.startswith(model + " ") for ln in lines) == 2  # 1 and 2 threads
    js = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120,
                        env=env)
    pairs = json.loads(js.stdout)["pairs"]
    seen = {(p["key"]["model"], p["key"]["threads"]) for p in pairs
            if p["key"]["engine"] == "ncnn"}
    assert seen == {(m, t) for m in ("squeezenet", "det") for t in (1, 2)}
    for p in pairs:
        lat, head = p["latency"], p["correctness"]["head"]
        assert lat["ratio"] > 0 and lat["ci"][0] <= lat["ratio"] <= lat["ci"][1]
        assert math.isfinite(head["cosine"]) and head["max_abs_err"] > 0


@COLD_BUILDS
def test_bad_calibration_is_a_convert_error_with_the_tools_words(tmp_path, suite_dir):
    """NaN samples crash ncnn2table (ncnn 20260526): the row says so in its own output; the
    fp32 row and another model's int8 still run."""
    shutil.copy(suite_dir / "squeezenet.onnx", tmp_path)
    cal = tmp_path / "cal"
    cal.mkdir()
    for i in range(3):
        np.save(cal / f"s{i}.npy", np.full((1, 3, 224, 224), np.nan, np.float32))
    df = run_suite_text(tmp_path, _suite(engine_src(TARBALL), """
[[models]]
name = "nan"
onnx = "squeezenet.onnx"
calibration = "cal"

[[models]]
name = "fine"
onnx = "squeezenet.onnx"
calibration_samples = 4
"""))
    bad = _row(df, "nan", "int8")
    assert bad.status == "convert_error" and bad.error.startswith("ncnn2table "), bad.error
    assert "build histogram" in bad.error or "absmax" in bad.error  # the tool's own lines
    assert _row(df, "nan", "fp32").status == "ok"
    fine = _row(df, "fine", "int8")
    assert fine.status == "ok" and fine.precision == "int8" and fine.int8_ops > 0


@COLD_BUILDS
def test_without_a_tools_source_int8_is_unsupported_saying_how(tmp_path, suite_dir):
    shutil.copy(suite_dir / "squeezenet.onnx", tmp_path)
    df = run_suite_text(tmp_path, _suite(None, """
[[models]]
name = "squeezenet"
onnx = "squeezenet.onnx"
"""))
    r = _row(df, "squeezenet", "int8")
    assert r.status == "unsupported" and r.error == NO_NCNN_TOOLS
    assert _row(df, "squeezenet", "fp32").status == "ok"


@COLD_BUILDS
def test_int8_param_runs_as_given_and_is_recorded_as_int8(tmp_path, suite_dir, rows):
    """ncnn2int8's output given as a native model: no quantizer runs, both precisions run
    it in int8 (fp32 asked: fallback, said in the notes)."""
    from harness.models.quantize import ncnn_int8, ncnn_tools, prepare_calibration
    from harness.config.suite import parse_suite
    from harness.models.converters import to_ncnn
    from harness.models.inputs import prepare_inputs
    onnx = suite_dir / "squeezenet.onnx"
    spec = parse_suite({"engines": {"ncnn": "installed"}, "models": [
        {"name": "s", "onnx": str(onnx), "calibration_samples": 4}]}, "t", tmp_path).models[0]
    inputs = prepare_inputs("s", onnx, spec.inputs, "sha-s")
    art = ncnn_int8(to_ncnn(onnx, list(inputs.shapes)), prepare_calibration(spec, onnx, inputs),
                    ncnn_tools(_tools_source()))
    shutil.copy(art.files["param"], tmp_path / "s_int8.param")
    shutil.copy(art.files["bin"], tmp_path / "s_int8.bin")
    df = run_suite_text(tmp_path, _suite(None, """
[[models]]
name = "s_int8"
ncnn_param = "s_int8.param"
ncnn_bin = "s_int8.bin"
shape = [1, 3, 224, 224]
"""))
    for p in ("fp32", "int8"):
        r = _row(df, "s_int8", p)
        assert r.precision == "int8" and r.int8_ops > 0 and pd.isna(r.quantizer), r.notes
        assert r.status == ("ok" if p == "int8" else "fallback"), (r.status, r.error)
    assert "arrived quantized" in _row(df, "s_int8", "fp32").notes




@COLD_BUILDS
def test_the_suites_ncnn_source_builds_the_tools_and_runs_int8(tmp_path, suite_dir):
    """No [quantize] key: the ncnn source entry builds the tools (the same build the host
    runs: one cache entry), and its own ncnn runs the int8 model."""
    shutil.copy(suite_dir / "squeezenet.onnx", tmp_path)
    text = _suite(None, """
[[models]]
name = "squeezenet"
onnx = "squeezenet.onnx"
calibration_samples = 4
""").replace('{ ncnn = "installed" }', f'{{ ncnn = [{{ source = "{engine_src(TARBALL)}" }}] }}')
    df = run_suite_text(tmp_path, text)
    r = _row(df, "squeezenet", "int8")
    assert r.status == "ok" and r.precision == "int8", (r.status, r.error, r.notes)
    assert r.quantizer.startswith(QUANTIZER) and r.engine_build == "src:ncnn-20260526"
    assert r.engine_version == "1.0.20260526" and r.int8_ops > 0 and r.out_cosine >= 0.99
    assert _row(df, "squeezenet", "fp32").status == "ok"
