"""A reference that exists but does not match is `wrong`, never `no-ref`: an output of another
size or shape, another dtype class, or another number of outputs; counted as failed, and
`harness compare --fail-on wrong` trips on it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow.dataset as ds
import pytest

from harness.verdict import output_verdict
from harness_agent.outputs import check_output, describe, output_mismatch, summarize

# ncnn's Interp with an output size of 255x255: what an engine with another rounding rule makes
# of ONNX's floor(86 * 256/86) = 256 (a real report against an older ncnn)
RESIZE_255 = ("7767517\n2 2\n"
              "Input                    in0                      0 1 in0 0=86 1=86 2=1\n"
              "Interp                   interp_0                 1 1 in0 out0 0=1 3=255 4=255\n")


def _resize_onnx(path):
    import onnx
    from onnx import TensorProto, helper
    s = float(np.float32(256.0 / 86.0))
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest",
                            coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    g = helper.make_graph(
        [node], "resize_round_nearest",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 86, 86])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "H", "W"])],
        initializer=[helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, s, s])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


@pytest.mark.unit
def test_what_counts_as_a_mismatch():
    ref = np.zeros((1, 3, 8, 8), np.float32)
    assert output_mismatch(np.zeros((3, 8, 8), np.float32), ref) is None  # no batch axis
    assert output_mismatch(np.zeros((3, 1, 1), np.float32), np.zeros((1, 3))) is None
    assert output_mismatch(np.zeros((1, 255, 255)), np.zeros((1, 1, 256, 256))) == \
        "shape 1x255x255 vs reference 1x1x256x256"
    # same size, another layout: a different tensor
    assert "shape" in output_mismatch(np.zeros((8, 3, 8), np.float32), ref)
    assert "dtype" in output_mismatch(np.zeros((1, 4, 4), np.float32), np.zeros((1, 4, 4), np.int64))
    assert output_mismatch(np.zeros(4, np.int32), np.zeros(4, np.int64)) is None  # narrowed
    mask = np.array([True, False, True])
    assert output_mismatch(mask.astype(np.int32), mask) is None  # a bool held as int32 (MNN)
    assert "dtype" in output_mismatch(np.array([0, 2, 1], np.int32), mask)
    outs = [dict(describe(np.zeros(4, np.float32)), name="a",
                 **check_output(np.zeros(4, np.float32), np.zeros(5, np.float32)))]
    s = summarize(outs, 1)
    assert s["has_reference"] and s["out_mismatch"] == "a: shape 4 vs reference 5"
    row = {"status": "ok", "out_nan": 0, "out_inf": 0, **s}
    assert output_verdict(row) == "wrong"
    s = summarize([dict(describe(np.ones(4)), name="a", **check_output(np.ones(4), np.ones(4)))],
                  2)
    assert s["out_mismatch"] == "1 output(s) vs 2 in the reference"
    assert output_verdict({"status": "ok", **s}) == "wrong"
    assert output_verdict({"status": "ok", **summarize(outs, 0)}) == "no-ref"


@pytest.mark.engines
@pytest.mark.slow
def test_size_mismatch_is_wrong_failed_and_trips_the_gate(tmp_path):
    _resize_onnx(tmp_path / "resize_round_nearest.onnx")
    (tmp_path / "resize_255.ncnn.param").write_text(RESIZE_255)
    (tmp_path / "resize_255.ncnn.bin").write_bytes(b"")
    (tmp_path / "suite.toml").write_text(
        'name = "size-mismatch"\nengines = { ncnn = "installed" }\nthreads = [1]\n'
        "[measure]\nwarmup = 1\nmin_iterations = 3\nmin_seconds = 0.0\n"
        '[[models]]\nname = "resize_round_nearest_255"\nonnx = "resize_round_nearest.onnx"\n'
        'ncnn_param = "resize_255.ncnn.param"\nncnn_bin = "resize_255.ncnn.bin"\n')
    data = tmp_path / "results"

    def harness(*args):
        return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                              text=True, timeout=600)

    runs = []
    for _ in range(2):
        p = harness("run", str(tmp_path / "suite.toml"), "--data", str(data), "--no-progress")
        assert p.returncode == 1, p.stdout + p.stderr  # counted as failed
        assert "1 failed" in p.stdout and "wrong" in p.stdout
        runs.append(p.stdout.split("\nrun ")[1].split(":")[0])
    rows = ds.dataset(data, format="parquet", partitioning="hive",
                      exclude_invalid_files=True).to_table().to_pylist()
    assert len(rows) == 2
    for r in rows:
        assert (r["status"], r["verdict"], r["has_reference"]) == ("ok", "wrong", True)
        assert "shape 1x255x255 vs reference 1x1x256x256" in r["out_mismatch"]
        assert "shape 1x255x255 vs reference 1x1x256x256" in r["notes"]
    p = harness("compare", "--data", str(data), "--dimension", "run_id", "--base", runs[0],
                "--head", runs[1], "--fail-on", "wrong")
    assert p.returncode == 1, p.stdout + p.stderr


@pytest.mark.engines
@pytest.mark.slow
def test_a_bool_output_held_as_int_is_not_a_mismatch(tmp_path, monkeypatch):
    import onnx
    from onnx import TensorProto, helper

    from harness.config.suite import load_suite
    from harness.coordinator import run_suite
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    g = helper.make_graph(
        [helper.make_node("Greater", ["x", "zero"], ["positive"])], "greater",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("positive", TensorProto.BOOL, [1, 3, 4, 4])],
        [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "greater.onnx")
    (tmp_path / "s.toml").write_text(
        'name = "bool"\nengines = { mnn = "installed", onnxruntime = "installed" }\n'
        "[measure]\nwarmup = 0\nmin_iterations = 1\nmin_seconds = 0.0\n"
        f'[[models]]\nname = "greater"\nonnx = "{tmp_path / "greater.onnx"}"\n')
    rows = run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "out", progress=False).rows
    assert {r["engine"]: (r["status"], r["verdict"]) for r in rows} == {
        "mnn": ("ok", "ok"), "onnxruntime": ("ok", "ok")}
