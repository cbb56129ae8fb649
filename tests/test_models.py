"""harness.models: one registry of built-ins, one shape grammar, converters by model format."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import numpy as np
import onnx
import pandas as pd
import pytest

from harness.analysis import analyze_onnx
from harness.cli import main
from harness.coordinator import run_suite
from harness.errors import InputError
from harness.models import converters
from harness.models.converters import (Artifact, ConversionFailed, ConvertError, Converter,
                                       artifact_for)
from harness.models.prepare import prepare_model
from harness.models.registry import BUILTINS, builtin_names, builtin_onnx, model_spec
from harness.models.shapes import format_shapes, parse_shape
from harness.config.suite import load_suite

helper, TP = onnx.helper, onnx.TensorProto

# ConvTranspose 64->64, k4: every input element meets 64 x 4 x 4 weights
UPSAMPLER_MACS = 64 * 128 * 128 * 64 * 4 * 4


def _stats(argv: list[str]) -> int:
    """`harness models ...` through the CLI in this process (its one error edge)."""
    return main(["models", *argv])


@pytest.fixture
def two_inputs(tmp_path):
    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "two",
                          [helper.make_tensor_value_info("a", TP.FLOAT, [1, 3]),
                           helper.make_tensor_value_info("b", TP.FLOAT, [1, 3])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, [1, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = tmp_path / "two.onnx"
    onnx.save(m, path)
    return path


@pytest.fixture
def conv(tmp_path):
    w = onnx.numpy_helper.from_array(np.ones((1, 1, 3, 3), "float32"), "w")
    x = helper.make_tensor_value_info("x", TP.FLOAT, ["n", 1, "h", "w"])  # dynamic
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])],
                          "conv", [x], [helper.make_tensor_value_info("y", TP.FLOAT, None)], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = tmp_path / "conv.onnx"
    onnx.save(m, path)
    return path


# -- registry ---------------------------------------------------------------------------------
@pytest.mark.unit
def test_one_registry_holds_packaged_and_generated_models():
    assert {"ppocr_det", "ppocr_rec", "ppocr_cls", "convtranspose_upsampler",
            "reduction_sum_block"} <= set(builtin_names())
    spec = model_spec("convtranspose_upsampler", ["mnn"])
    assert spec.builtin == "convtranspose_upsampler"
    assert [s.shape for s in spec.inputs] == [BUILTINS["convtranspose_upsampler"].shapes[0]]


@pytest.mark.unit
def test_models_stats_accepts_a_generated_builtin_library_call(capsys):
    assert _stats(["stats", "convtranspose_upsampler", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_shape"] == "x:1x64x128x128" and data["macs"] == UPSAMPLER_MACS
    stats = analyze_onnx(builtin_onnx("convtranspose_upsampler"), (1, 64, 128, 128))
    assert stats.macs == UPSAMPLER_MACS


@pytest.mark.slow
def test_models_stats_accepts_a_generated_builtin_cli():
    p = subprocess.run([sys.executable, "-m", "harness", "models", "stats",
                        "convtranspose_upsampler", "--json"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["input_shape"] == "x:1x64x128x128" and data["macs"] == UPSAMPLER_MACS


@pytest.mark.unit
def test_unknown_model_is_one_line_exit_2(capsys):
    assert main(["models", "stats", "no_such_model"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "no_such_model" in err[0]


# -- one shape grammar ------------------------------------------------------------------------
@pytest.mark.unit
def test_grammar_forms():
    assert parse_shape("1X3x8x8") == (1, 3, 8, 8)
    assert parse_shape("a:1x3, b:1X3") == {"a": (1, 3), "b": (1, 3)}
    assert format_shapes({"a": (1, 3), "b": (2, 4)}) == "a:1x3,b:2x4"
    assert format_shapes([("x", [1, 2])]) == "x:1x2"
    for bad in ("1x0x8", "0", "-1x3", "1x3,1x3", "a:1x3,1x3", "a:1x3,a:1x3", "", "1x3x"):
        with pytest.raises(InputError) as info:
            parse_shape(bad)
        assert "\n" not in str(info.value) and str(info.value).startswith("--shape: ")


def _run_shapes(tmp_path, model, shape, capsys) -> tuple[int, object]:
    """`harness run --shape` (a dry run saving its suite): exit code and {name: shape} or the
    error line."""
    saved = tmp_path / "saved.toml"
    saved.unlink(missing_ok=True)
    code = main(["run", "--model", str(model), "--shape", shape, "--engine", "onnxruntime",
                 "--dry-run", "--save-suite", str(saved)])
    out = capsys.readouterr()
    if code != 0:
        return code, [ln for ln in out.err.splitlines() if ln.strip()]
    inputs = tomllib.loads(saved.read_text())["models"][0]["inputs"]
    return code, {i.get("name"): tuple(i["shape"]) for i in inputs}


def _stats_shapes(model, shape, capsys) -> tuple[int, object]:
    """`harness models stats --shape`: exit code and {name: shape} or the error line."""
    code = main(["models", "stats", str(model), "--shape", shape, "--json"])
    out = capsys.readouterr()
    if code != 0:
        return code, [ln for ln in out.err.splitlines() if ln.strip()]
    return code, {k: tuple(v) for k, v in json.loads(out.out)["input_shapes"].items()}


@pytest.mark.unit
@pytest.mark.parametrize("shape,dims", [("1X1x5x5", (1, 1, 5, 5)), ("x:1x1x7x7", (1, 1, 7, 7))])
def test_run_and_stats_read_a_shape_alike(tmp_path, conv, capsys, shape, dims):
    code_r, run = _run_shapes(tmp_path, conv, shape, capsys)
    code_s, stats = _stats_shapes(conv, shape, capsys)
    assert code_r == code_s == 0
    assert list(run.values()) == list(stats.values()) == [dims]
    # the one input's name is optional; analysis knows it from the graph
    assert set(run) <= {None, "x"} and set(stats) == {"x"}


@pytest.mark.unit
def test_run_and_stats_read_named_inputs_alike(tmp_path, two_inputs, capsys):
    code_r, run = _run_shapes(tmp_path, two_inputs, "a:1x3,b:1X3", capsys)
    code_s, stats = _stats_shapes(two_inputs, "a:1x3,b:1X3", capsys)
    assert code_r == code_s == 0
    assert run == stats == {"a": (1, 3), "b": (1, 3)}


@pytest.mark.unit
@pytest.mark.parametrize("model,shape,frag", [
    ("conv", "1x0x5x5", "dimension is 0"),
    ("conv", "1x-1x5x5", "cannot read"),
    ("two_inputs", "1x3,1x3", "needs a name"),
])
def test_run_and_stats_refuse_a_shape_alike(tmp_path, request, capsys, model, shape, frag):
    path = request.getfixturevalue(model)
    code_r, run = _run_shapes(tmp_path, path, shape, capsys)
    code_s, stats = _stats_shapes(path, shape, capsys)
    assert code_r == code_s == 2
    assert len(run) == len(stats) == 1
    assert run == stats and "--shape" in run[0] and frag in run[0]


# -- conversion failures are typed values ---------------------------------------------------------
def _failing(fmt: str) -> Converter:
    def convert(src, shapes, dtypes=None):
        raise ConvertError("fakeconvert exited 1: unsupported operator Upsample9")
    real = converters.CONVERTERS[fmt]
    return Converter(fmt, convert, real.native, real.suffix, real.suite_entry)


@pytest.mark.unit
def test_conversion_failure_is_a_value(monkeypatch):
    monkeypatch.setitem(converters.CONVERTERS, "mnn", _failing("mnn"))
    spec = model_spec("convtranspose_upsampler", ["mnn", "onnxruntime"])
    pm = prepare_model(spec, ["mnn", "onnxruntime"])
    failed = pm.artifacts["mnn"]
    assert isinstance(failed, ConversionFailed) and failed.format == "mnn"
    assert "Upsample9" in failed.reason
    assert isinstance(pm.artifacts["onnx"], Artifact)
    with pytest.raises(ConvertError, match="Upsample9"):
        pm.artifact("mnn")
    # a format nobody registered is a value too, not an exception
    assert isinstance(artifact_for(spec, pm.onnx, "tflite", []), ConversionFailed)


@pytest.mark.slow
def test_conversion_failure_becomes_a_convert_error_row(tmp_path, monkeypatch, ray_instance):
    monkeypatch.setitem(converters.CONVERTERS, "mnn", _failing("mnn"))
    (tmp_path / "suite.toml").write_text(
        'name = "convert-fail"\nengines = { mnn = "installed" }\n'
        '[measure]\nmin_iterations = 1\nmin_seconds = 0.0\nwarmup = 0\n'
        '[[models]]\nname = "up"\nbuiltin = "convtranspose_upsampler"\n')
    report = run_suite(load_suite(tmp_path / "suite.toml"), tmp_path / "results",
                       progress=False)
    assert [r["status"] for r in report.rows] == ["convert_error"]
    df = pd.read_parquet(tmp_path / "results")
    assert list(df.status) == ["convert_error"] and "Upsample9" in df.error.iloc[0]
