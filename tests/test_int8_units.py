"""int8 without engines: calibration data selection, QDQ detection, top-1 agreement, suites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.config.suite import parse_suite
from harness.errors import InputError
from harness.models.converters import ConvertError
from harness.models.inputs import prepare_inputs
from harness.models.quantize import (DEFAULT_SAMPLES, artifact_key, is_quantized_onnx,
                                     onnx_quant_ops, prepare_calibration)
from harness_agent.outputs import check_output, classifier_like, summarize, top1_agreement

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


def _two_input_model(path: Path) -> Path:
    """x [1, 2, 4, 4] float and ids [1, 3] int64 -> y = Conv(x), z = Gather(table, ids)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((2, 2, 1, 1)).astype(np.float32), "w")
    table = numpy_helper.from_array(rng.standard_normal((5, 2)).astype(np.float32), "table")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"]),
             helper.make_node("Gather", ["table", "ids"], ["z"])]
    g = helper.make_graph(
        nodes, "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, 2])], [w, table])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def _spec(tmp_path: Path, **model) -> tuple:
    onnx_path = _two_input_model(tmp_path / "two.onnx")
    suite = parse_suite({"engines": {"onnxruntime": "installed"},
                         "precisions": ["fp32", "int8"],
                         "models": [{"name": "two", "onnx": str(onnx_path), **model}]},
                        "t.toml", tmp_path)
    spec = suite.models[0]
    inputs = prepare_inputs(spec.name, onnx_path, spec.inputs, "sha-two")
    return spec, onnx_path, inputs


# -- calibration data --------------------------------------------------------------------------
def test_random_calibration_default_count_seeded_and_cached(tmp_path):
    spec, onnx_path, inputs = _spec(tmp_path)
    cal = prepare_calibration(spec, onnx_path, inputs)
    assert cal.random and len(cal.files) == DEFAULT_SAMPLES
    assert cal.names == ("x", "ids") and cal.describe.startswith(f"random {DEFAULT_SAMPLES}")
    first = [np.load(p) for p in cal.files[0]]
    assert first[0].shape == (1, 2, 4, 4) and first[0].dtype == np.float32
    # integer inputs stay in the range the model indexes (a 5-row table)
    assert first[1].dtype == np.int64 and first[1].min() >= 0 and first[1].max() <= 4
    # samples differ from each other and from the measured input (its seed + 1 + i)
    second = np.load(cal.files[1][0])
    assert not np.array_equal(first[0], second)
    assert not np.array_equal(first[0], np.load(inputs.inputs[0]))
    again = prepare_calibration(spec, onnx_path, inputs)
    assert again.key == cal.key and again.files == cal.files
    fewer = prepare_calibration(_spec(tmp_path, calibration_samples=3)[0], onnx_path, inputs)
    assert len(fewer.files) == 3 and fewer.key != cal.key


def _write_samples(folder: Path, n: int, shape=(1, 2, 4, 4), seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    for i in range(n):
        np.savez(folder / f"s{i:02d}.npz", x=rng.standard_normal(shape).astype(np.float32),
                 ids=rng.integers(0, 5, (1, 3)))


def test_npz_folder_is_one_sample_per_file_matched_by_name(tmp_path):
    folder = tmp_path / "cal"
    _write_samples(folder, 3)
    (folder / "README.txt").write_text("not a sample")
    spec, onnx_path, inputs = _spec(tmp_path, calibration="cal")
    assert spec.calibration == folder.resolve()
    cal = prepare_calibration(spec, onnx_path, inputs)
    assert not cal.random and len(cal.files) == 3 and "3 files" in cal.describe
    with np.load(folder / "s01.npz") as z:
        np.testing.assert_array_equal(np.load(cal.files[1][0]), z["x"])
        np.testing.assert_array_equal(np.load(cal.files[1][1]), z["ids"])
    # the digest follows the data: another sample set is another calibration
    _write_samples(folder, 3, seed=1)
    assert prepare_calibration(spec, onnx_path, inputs).key != cal.key


@pytest.mark.parametrize("setup,message", [
    (lambda f: _write_samples(f, 2, shape=(1, 2, 8, 8)), "has shape 1x2x8x8"),
    (lambda f: (f.mkdir(), np.save(f / "a.npy", np.zeros((1, 2, 4, 4), np.float32))),
     "an .npy file holds one array"),
    (lambda f: f.mkdir(), "has no .npy/.npz files"),
])
def test_calibration_data_that_does_not_fit_is_a_convert_error(tmp_path, setup, message):
    setup(tmp_path / "cal")
    spec, onnx_path, inputs = _spec(tmp_path, calibration="cal")
    with pytest.raises(ConvertError, match=message):
        prepare_calibration(spec, onnx_path, inputs)


def test_suite_calibration_settings_are_checked_at_load(tmp_path):
    with pytest.raises(InputError, match="calibration.*existing folder"):
        _spec(tmp_path, calibration="missing")
    (tmp_path / "cal").mkdir()
    with pytest.raises(InputError, match="either calibration"):
        _spec(tmp_path, calibration="cal", calibration_samples=4)
    with pytest.raises(InputError, match="calibration_samples.*>= 1"):
        _spec(tmp_path, calibration_samples=0)
    with pytest.raises(InputError, match="precisions"):
        parse_suite({"engines": {"onnxruntime": "installed"}, "precisions": ["int4"],
                     "models": [{"name": "m", "builtin": "ppocr_cls"}]}, "t.toml", tmp_path)


def test_artifact_keys_keep_float_formats_as_they_were():
    assert artifact_key("mnn", "fp32") == "mnn" and artifact_key("mnn", "fp16") == "mnn"
    assert artifact_key("mnn", "int8") == "mnn@int8"
    assert artifact_key("onnx", "int8-weight") == "onnx@int8-weight"


# -- QDQ detection ------------------------------------------------------------------------------
def _qdq_conv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.integers(-127, 127, (4, 2, 1, 1)).astype(np.int8), "wq"),
            numpy_helper.from_array(np.array(0.02, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["y"]),
             helper.make_node("Relu", ["y"], ["r"])]
    g = helper.make_graph(nodes, "qdq",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4, 4, 4])],
                          init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def test_qdq_model_is_detected_and_its_quantized_ops_counted(tmp_path):
    qdq = _qdq_conv(tmp_path / "qdq.onnx")
    assert is_quantized_onnx(qdq)
    assert onnx_quant_ops(qdq) == (1, 2)  # the Conv between DQ nodes; the Relu is float
    plain = _two_input_model(tmp_path / "two.onnx")
    assert not is_quantized_onnx(plain)
    assert onnx_quant_ops(plain) == (0, 2)


# -- top-1 agreement ----------------------------------------------------------------------------
def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_top1_agreement_of_classifier_outputs():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 10)).astype(np.float32)
    assert top1_agreement(logits, logits) == 1.0
    flipped = logits.copy()
    flipped[0] = -flipped[0]  # one row of four now has another argmax
    assert top1_agreement(flipped, logits) == 0.75
    # a softmax with its classes on axis 1 of [1, C, 1, 1] (squeezenet), fed back with the
    # unit axes dropped (an engine that squeezes them)
    probs = _softmax(rng.standard_normal((1, 1000, 1, 1)), axis=1).astype(np.float32)
    assert classifier_like(probs) and top1_agreement(probs.reshape(1000), probs) == 1.0
    res = check_output(probs, probs)
    assert res["top1_agree"] == 1.0 and res["cosine"] == pytest.approx(1.0)


def test_no_top1_for_outputs_that_are_not_class_scores():
    rng = np.random.default_rng(0)
    det = rng.uniform(0, 1, (1, 1, 64, 64)).astype(np.float32)  # a sigmoid map (PP-OCR det)
    assert not classifier_like(det) and top1_agreement(det, det) is None
    assert not classifier_like(np.arange(6, dtype=np.int64).reshape(2, 3))
    assert not classifier_like(np.zeros((1, 1), np.float32))
    assert "top1_agree" not in check_output(det, det)
    # the row keeps the worst over the classifier outputs, None when there is none
    outs = [{"sha256": "a", "nan": 0, "inf": 0, **check_output(det, det)}]
    assert summarize(outs, 1)["out_top1_agree"] is None
    logits = rng.standard_normal((2, 5)).astype(np.float32)
    worse = logits.copy()
    worse[1] = -worse[1]
    outs.append({"sha256": "b", "nan": 0, "inf": 0, **check_output(worse, logits)})
    assert summarize(outs, 2)["out_top1_agree"] == 0.5


def test_an_empty_output_is_described_not_a_crash():
    """MNN's model of a QDQ squeezenet gave a 0x0x0x0 output: the row says it mismatches."""
    from harness_agent.outputs import describe
    d = describe(np.zeros((0, 0, 0, 0), np.float32))
    assert d["shape"] == [0, 0, 0, 0] and d["min"] is None and len(d["sha256"]) == 64
    assert "mismatch" in check_output(np.zeros((0,), np.float32), np.ones((1, 10), np.float32))


def test_calibration_flag_is_a_folder_or_a_count(tmp_path):
    from harness.config.flags import SuiteFlags, suite_from_flags
    suite, data = suite_from_flags(SuiteFlags(model="ppocr_cls", engine="mnn",
                                              precision="fp32,int8", calibration="4"))
    assert suite.precisions == ("fp32", "int8")
    assert suite.models[0].calibration_samples == 4 and suite.models[0].calibration is None
    (tmp_path / "cal").mkdir()
    suite, data = suite_from_flags(SuiteFlags(model="ppocr_cls", engine="mnn",
                                              calibration=str(tmp_path / "cal")))
    assert suite.models[0].calibration == (tmp_path / "cal").resolve()
    assert data["models"][0]["calibration"] == str((tmp_path / "cal").resolve())
    with pytest.raises(InputError, match="calibration"):
        suite_from_flags(SuiteFlags(model="ppocr_cls", calibration=str(tmp_path / "nope")))
