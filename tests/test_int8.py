"""int8 end to end with real engines and real models: PP-OCR cls and squeezenet (the onnx
package's backend test model, materialized with seeded weights) at fp32, int8 and int8-weight on
MNN and onnxruntime; a QDQ model as given; compare --dimension precision; calibration failures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.models.inputs import prepare_inputs
from harness.models.quantize import RANDOM_NOTE, ort_int8, prepare_calibration
from tests.classic_cnn import LIGHT, materialize
from tests.helpers import measure_block, run_suite_text

pytestmark = [pytest.mark.engines, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]



@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache for the module: the second suite reuses the first one's conversions."""
    import os
    old = os.environ.get("HARNESS_CACHE")
    os.environ["HARNESS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("HARNESS_CACHE", None)
    else:
        os.environ["HARNESS_CACHE"] = old


@pytest.fixture(scope="module")
def int8_rows(tmp_path_factory, cache):
    if not LIGHT.is_dir():
        pytest.skip("onnx package without backend test data")
    d = tmp_path_factory.mktemp("int8")
    materialize("squeezenet", d, opset=13)
    suite = """
name = "int8"
engines = { mnn = "installed", onnxruntime = "installed", ncnn = "installed" }
precisions = ["fp32", "int8", "int8-weight"]
""" + measure_block(iters=5, procs=1) + """
[[models]]
name = "cls"
builtin = "ppocr_cls"
calibration_samples = 8

[[models]]
name = "squeezenet"
onnx = "squeezenet.onnx"
engines = ["mnn", "onnxruntime"]
calibration_samples = 8
"""
    return run_suite_text(d, suite)


def _row(df, model, engine, precision):
    sel = df[(df.model == model) & (df.engine == engine) & (df.precision_requested == precision)]
    assert len(sel) == 1, sel[["model", "engine", "precision_requested"]]
    return sel.iloc[0]


@pytest.mark.parametrize("model", ["cls", "squeezenet"])
@pytest.mark.parametrize("engine,tool", [("mnn", "mnnquant "),
                                         ("onnxruntime", "onnxruntime.quantization ")])
def test_int8_row_has_quantizer_and_accuracy_vs_fp32_reference(int8_rows, model, engine, tool):
    r = _row(int8_rows, model, engine, "int8")
    assert r.status == "ok" and r.precision == "int8", (r.status, r.error, r.notes)
    assert r.quantizer.startswith(tool) and r.calibration.startswith("random 8 ")
    assert RANDOM_NOTE in r.notes
    assert r.int8_ops > 0 and r.ops_total >= r.int8_ops
    # against the fp32 onnxruntime reference, within the int8 tolerance (cosine >= 0.99)
    assert r.has_reference and r.out_cosine >= 0.99 and r.verdict == "ok"
    assert 0 < r.out_max_abs_err < 0.2
    assert r.out_top1_agree == 1.0  # both models end in a softmax over their classes
    fp32 = _row(int8_rows, model, engine, "fp32")
    assert fp32.status == "ok" and pd.isna(fp32.quantizer) and fp32.out_cosine > 0.9999
    assert r.artifact_sha256 != fp32.artifact_sha256


def test_mnn_weight_only_int8(int8_rows):
    for model in ("cls", "squeezenet"):
        r = _row(int8_rows, model, "mnn", "int8-weight")
        assert r.status == "ok" and r.precision == "int8-weight", (r.error, r.notes)
        assert r.quantizer.endswith("--weightQuantBits 8") and r.int8_ops == 0
        assert r.out_cosine >= 0.99 and r.out_cosine < 1.0 - 1e-9  # not the fp32 model
        assert r.out_top1_agree == 1.0


def test_engines_without_the_path_say_why(int8_rows):
    for p in ("int8", "int8-weight"):
        r = _row(int8_rows, "cls", "ncnn", p)
        assert r.status == "unsupported" and "ncnn2table/ncnn2int8" in r.error
    r = _row(int8_rows, "cls", "onnxruntime", "int8-weight")
    assert r.status == "unsupported" and "int8 (static QDQ)" in r.error
    assert (int8_rows[int8_rows.status != "unsupported"].status == "ok").all()


def test_quantized_onnx_model_runs_as_given(tmp_path, cache):
    """A QDQ model (made here with onnxruntime's quantizer) is not quantized again and is
    recorded as int8 even when fp32 is asked for."""
    from harness.config.suite import parse_suite
    from harness.models.registry import builtin_onnx
    src = builtin_onnx("ppocr_cls")
    spec = parse_suite({"engines": {"onnxruntime": "installed"}, "models": [
        {"name": "cls", "builtin": "ppocr_cls", "calibration_samples": 4}]}, "t", tmp_path
    ).models[0]
    inputs = prepare_inputs("cls", src, spec.inputs, "sha-cls")
    qdq = ort_int8(src, prepare_calibration(spec, src, inputs)).files["onnx"]
    shutil.copy(qdq, tmp_path / "cls_qdq.onnx")
    df = run_suite_text(tmp_path, """
name = "qdq"
engines = { onnxruntime = "installed" }
precisions = ["fp32", "int8"]
""" + measure_block(iters=3, procs=1) + """
[[models]]
name = "cls_qdq"
onnx = "cls_qdq.onnx"
shape = [1, 3, 48, 192]
""")
    i8 = _row(df, "cls_qdq", "onnxruntime", "int8")
    assert i8.status == "ok" and i8.precision == "int8" and pd.isna(i8.quantizer)
    assert "arrived as given" in i8.notes and i8.int8_ops > 0
    f32 = _row(df, "cls_qdq", "onnxruntime", "fp32")
    assert f32.precision == "int8" and f32.status == "fallback"
    assert "arrived quantized" in f32.notes
    assert i8.artifact_sha256 == f32.artifact_sha256  # the same file, as given


def test_quantized_mnn_file_runs_as_given(tmp_path, cache):
    """An int8 .mnn file (made here with MNN's quantization tool) is recorded as int8 whatever
    precision is asked for: MNN's own op types say so."""
    from harness.config.suite import parse_suite
    from harness.models.converters import to_mnn
    from harness.models.quantize import mnn_int8
    from harness.models.registry import builtin_onnx
    src = builtin_onnx("ppocr_cls")
    spec = parse_suite({"engines": {"mnn": "installed"}, "models": [
        {"name": "cls", "builtin": "ppocr_cls", "calibration_samples": 4}]}, "t", tmp_path
    ).models[0]
    inputs = prepare_inputs("cls", src, spec.inputs, "sha-cls")
    art = mnn_int8(to_mnn(src), prepare_calibration(spec, src, inputs), inputs.shapes)
    shutil.copy(art.files["mnn"], tmp_path / "cls_int8.mnn")
    df = run_suite_text(tmp_path, """
name = "mnn-int8-file"
engines = { mnn = "installed" }
precisions = ["fp32", "int8"]
""" + measure_block(iters=3, procs=1) + """
[[models]]
name = "cls_int8"
mnn = "cls_int8.mnn"
shape = [1, 3, 48, 192]
""")
    for p in ("fp32", "int8"):
        r = _row(df, "cls_int8", "mnn", p)
        assert r.precision == "int8" and r.int8_ops > 0 and pd.isna(r.quantizer), r.notes
        assert r.status == ("ok" if p == "int8" else "fallback")
    assert "arrived quantized" in _row(df, "cls_int8", "mnn", "fp32").notes


def test_compare_precision_prints_speed_and_accuracy(tmp_path, cache):
    df = run_suite_text(tmp_path, """
name = "cmp"
engines = { mnn = "installed", onnxruntime = "installed" }
precisions = ["fp32", "int8"]
threads = [1]
""" + measure_block(iters=30, procs=3) + """
[[models]]
name = "cls"
builtin = "ppocr_cls"
calibration_samples = 4
""")
    assert (df.status == "ok").all() and len(df) == 12
    cmd = [sys.executable, "-m", "harness", "compare", "--dimension", "precision",
           "--base", "fp32", "--head", "int8", "--data", str(tmp_path / "results")]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    table = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    header = next(ln for ln in lines if ln.startswith("engine"))
    for col in ("fp32 ms", "int8 ms", "ratio", "95% CI", "int8 cosine", "int8 max abs",
                "int8 top-1"):
        assert col in header
    for engine in ("mnn", "onnxruntime"):
        row = next(ln for ln in lines if ln.startswith(engine + " "))
        assert "[" in row and " ok " in row  # a CI; the head within its own tolerance
    js = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120, env=env)
    doc = json.loads(js.stdout)
    assert {p["key"]["engine"] for p in doc["pairs"]} == {"mnn", "onnxruntime"}
    for p in doc["pairs"]:
        assert p["key"]["threads"] == 1
        lat, head = p["latency"], p["correctness"]["head"]
        assert lat["ratio"] > 0 and lat["ci"][0] <= lat["ratio"] <= lat["ci"][1]
        assert head["cosine"] >= 0.99 and head["top1_agree"] == 1.0
        assert 0 < head["max_abs_err"] < 0.2
        assert p["correctness"]["verdict"] == "ok"


@pytest.mark.parametrize("kind", ["nan", "shape"])
def test_calibration_failure_is_a_convert_error_row_and_the_rest_runs(tmp_path, cache, kind):
    cal = tmp_path / "cal"
    cal.mkdir()
    for i in range(3):
        arr = (np.full((1, 3, 48, 192), np.nan, np.float32) if kind == "nan"
               else np.zeros((1, 3, 32, 32), np.float32))
        np.save(cal / f"s{i}.npy", arr)
    df = run_suite_text(tmp_path, """
name = "badcal"
engines = { mnn = "installed", onnxruntime = "installed" }
precisions = ["fp32", "int8"]
""" + measure_block(iters=3, procs=1) + """
[[models]]
name = "cls"
builtin = "ppocr_cls"
calibration = "cal"
""")
    ort = _row(df, "cls", "onnxruntime", "int8")
    assert ort.status == "convert_error"
    if kind == "nan":  # onnxruntime's quantizer rejects the data, in its own words
        assert "quantize_static failed" in ort.error and "scale issue" in ort.error
    else:  # the data does not fit the model: both quantizers are spared it
        assert "calibration file s0.npy: input x has shape 1x3x32x32" in ort.error
        assert _row(df, "cls", "mnn", "int8").status == "convert_error"
    for engine in ("mnn", "onnxruntime"):
        assert _row(df, "cls", engine, "fp32").status == "ok"


def test_older_mnn_that_cannot_say_its_op_types_is_not_called_float(tmp_path, cache):
    """MNN before 3.3 names op types without a data type: its int8 run cannot be verified,
    which is not evidence that it ran in float (the trial saw 3.0.0 and 3.1.0 give the same
    output bytes as 3.4.0's verified int8 run, yet get called fp32 and `wrong`)."""
    df = run_suite_text(tmp_path, """
name = "old-mnn-int8"
engines = { mnn = ["3.1.0"] }
precisions = ["int8"]
[measure]
warmup = 0
min_iterations = 3
processes = 1
[[models]]
name = "cls"
builtin = "ppocr_cls"
calibration_samples = 4
""")
    r = df.iloc[0]
    assert r.status == "ok" and r.precision == "int8", (r.status, r.precision, r.notes)
    assert "does not mark its ops' data types: int8 not verified" in r.notes
    assert r.verdict != "wrong" and r.out_cosine > 0.99
