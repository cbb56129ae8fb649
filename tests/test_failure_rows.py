"""When a measurement fails, the row says what and where: the engine's own words, the signal
that killed the agent, the phase that was running, and the engine version that ran."""

from __future__ import annotations

import pytest

from harness.coordinator import run_suite
from harness.config.suite import load_suite

from .one_layer_models import build

pytestmark = [pytest.mark.engines, pytest.mark.slow]


def _argmax_model(path):
    import onnx
    from onnx import TensorProto, helper
    g = helper.make_graph(
        [helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
         helper.make_node("ArgMax", ["probs"], ["labels"], axis=1, keepdims=0)],
        "argmax_labels", [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5, 4, 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 5, 4, 4]),
         helper.make_tensor_value_info("labels", TensorProto.INT64, [1, 4, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


def test_failed_rows_keep_the_cause(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    models = build(tmp_path / "models")
    _argmax_model(tmp_path / "argmax.onnx")
    suite = tmp_path / "suite.toml"
    suite.write_text(
        'name = "failures"\nengines = { ncnn = "installed" }\nthreads = [1]\n'
        "[measure]\nwarmup = 0\nmin_iterations = 1\nmin_seconds = 0.0\ntimeout_s = 120\n"
        # pnnx turns this Split into a parameterless Slice that makes ncnn itself crash
        f'[[models]]\nname = "split_add"\nonnx = "{models["SplitAdd"]}"\n'
        f'[[models]]\nname = "argmax"\nonnx = "{tmp_path / "argmax.onnx"}"\n')
    rows = {r["model"]: r for r in run_suite(load_suite(suite), tmp_path / "out",
                                             progress=False).rows}
    crash = rows["split_add"]
    assert crash["status"] == "error"
    assert "killed by SIGSEGV in phase first" in crash["error"]
    assert crash["phase"] == "first"
    assert crash["engine_version"] and crash["engine_version"] != "installed"
    assert "llvmpipe" not in crash["error"]  # the Vulkan banner is not the cause

    argmax = rows["argmax"]
    assert argmax["status"] == "error" and argmax["phase"] == "load"
    assert "ArgMax not exists or registered" in argmax["error"]


def test_diagnose_names_the_layer_a_crash_happens_in(tmp_path, monkeypatch, capsys):
    """`harness diagnose` runs the configuration as a measurement does; when a signal kills it,
    the layer-by-layer run names the layer (pnnx's parameterless Slice crashes ncnn)."""
    from harness.cli import main
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    models = build(tmp_path / "models")
    code = main(["diagnose", "--model", str(models["SplitAdd"]), "--engine", "ncnn"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "crashes: the process dies with SIGSEGV in layer split_0 (Slice)" in err
    # an in-place first layer no longer crashes: diagnosed normally
    assert main(["diagnose", "--model", str(models["Relu"]), "--engine", "ncnn"]) == 0
    assert "no divergence" in capsys.readouterr().out
