"""int8 calibration from a folder of images: the preprocessing arithmetic, the suite's
[models.preprocess] table, and what prepare_calibration makes of such a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from harness.config.suite import parse_suite
from harness.errors import InputError
from harness.models.calibration_images import ImageError, Preprocess, image_sample
from harness.models.converters import ConvertError
from harness.models.inputs import prepare_inputs
from harness.models.quantize import prepare_calibration

pytestmark = pytest.mark.unit

# a 2x2 RGB image: each pixel's channels differ, so a swapped or transposed axis shows
PIXELS = np.array([[[255, 0, 51], [0, 255, 102]],
                   [[51, 102, 153], [204, 153, 0]]], dtype=np.uint8)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


def _png(path: Path, pixels: np.ndarray = PIXELS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(path)
    return path


def test_pixels_are_scaled_normalized_per_channel_and_laid_out_nchw(tmp_path):
    pre = Preprocess(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    x = image_sample(_png(tmp_path / "a.png"), (1, 3, 2, 2), pre)
    assert x.shape == (1, 3, 2, 2) and x.dtype == np.float32
    rgb = PIXELS.astype(np.float32) / 255.0
    for c, (m, s) in enumerate(zip(pre.mean, pre.std)):
        np.testing.assert_allclose(x[0, c], (rgb[:, :, c] - m) / s, rtol=1e-6)
    assert x[0, 0, 0, 0] == pytest.approx(1.0)      # red 255: (1 - 0.5) / 0.5


def test_bgr_order_and_nhwc_inputs(tmp_path):
    path = _png(tmp_path / "a.png")
    bgr = image_sample(path, (1, 3, 2, 2), Preprocess(channels="BGR"))
    np.testing.assert_allclose(bgr[0, 0], PIXELS[:, :, 2] / 255.0, rtol=1e-6)   # blue first
    nhwc = image_sample(path, (1, 2, 2, 3), Preprocess())
    np.testing.assert_allclose(nhwc[0], PIXELS / 255.0, rtol=1e-6)


def test_images_are_resized_to_the_input_and_grey_becomes_three_channels(tmp_path):
    big = np.full((40, 60), 128, np.uint8)
    path = tmp_path / "grey.png"
    Image.fromarray(big, "L").save(path)
    x = image_sample(path, (1, 3, 8, 12), Preprocess(size=(8, 12)))
    assert x.shape == (1, 3, 8, 12)
    np.testing.assert_allclose(x, 128 / 255.0, rtol=1e-6)


@pytest.mark.parametrize("shape,pre,message", [
    ((1, 3, 8, 8), Preprocess(size=(4, 4)), "size 4x4 is not the model input's 8x8"),
    ((1, 1, 8, 8), Preprocess(), "3-channel input"),
    ((2, 3, 8, 8), Preprocess(), "batch must be 1"),
])
def test_an_image_that_cannot_fit_says_why(tmp_path, shape, pre, message):
    with pytest.raises(ImageError, match=message):
        image_sample(_png(tmp_path / "a.png"), shape, pre)


def _conv_model(path: Path, inputs=(("x", [1, 3, 8, 8]),)) -> Path:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(
        rng.standard_normal((2, inputs[0][1][1], 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"])]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])]
    for name, shape in inputs[1:]:
        nodes.append(helper.make_node("Relu", [name], [name + "_out"]))
        outs.append(helper.make_tensor_value_info(name + "_out", TensorProto.FLOAT, shape))
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                          for n, s in inputs], outs, [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def _prepare(tmp_path: Path, model_path: Path, **model):
    suite = parse_suite({"engines": {"onnxruntime": "installed"},
                         "precisions": ["fp32", "int8"],
                         "models": [{"name": "m", "onnx": str(model_path), **model}]},
                        "t.toml", tmp_path)
    spec = suite.models[0]
    inputs = prepare_inputs(spec.name, model_path, spec.inputs, "sha-m")
    return spec, prepare_calibration(spec, model_path, inputs)


def test_an_image_folder_calibrates_a_one_input_model(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(3):
        _png(tmp_path / "imgs" / f"{i}.png", rng.integers(0, 256, (20, 30, 3), np.uint8))
    (tmp_path / "imgs" / "labels.txt").write_text("not an image")
    model = _conv_model(tmp_path / "m.onnx")
    pre = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "channels": "BGR"}
    spec, cal = _prepare(tmp_path, model, calibration="imgs", preprocess=pre)
    assert not cal.random and len(cal.files) == 3
    assert cal.describe.startswith(f"images {tmp_path / 'imgs'} 3 files size=input "
                                   "mean=0.485,0.456,0.406 std=0.229,0.224,0.225 BGR sha256:")
    want = image_sample(tmp_path / "imgs" / "1.png", (1, 3, 8, 8), spec.preprocess)
    np.testing.assert_array_equal(np.load(cal.files[1][0]), want)
    # other preprocessing is another calibration set
    _, rgb = _prepare(tmp_path, model, calibration="imgs", preprocess={**pre, "channels": "RGB"})
    assert rgb.key != cal.key


@pytest.mark.parametrize("setup,message", [
    (lambda d: (d.mkdir(), (d / "x.png").write_text("no image")),
     "calibration image x.png: not a readable image"),
    (lambda d: (_png(d / "a.png"), np.save(d / "b.npy", np.zeros((1, 3, 8, 8), np.float32))),
     "both .npy/.npz files and images"),
])
def test_an_image_folder_that_cannot_calibrate_is_a_convert_error(tmp_path, setup, message):
    setup(tmp_path / "imgs")
    model = _conv_model(tmp_path / "m.onnx")
    with pytest.raises(ConvertError, match=message):
        _prepare(tmp_path, model, calibration="imgs")


def test_images_for_an_input_that_is_no_image_blame_the_model(tmp_path):
    _png(tmp_path / "imgs" / "a.png")
    model = _conv_model(tmp_path / "m64.onnx", (("x", [1, 64, 8, 8]),))
    with pytest.raises(ConvertError, match=r"holds images, but model input x: an image "
                                           r"sample needs a 3-channel input"):
        _prepare(tmp_path, model, calibration="imgs")


def test_preprocess_with_a_folder_without_images_is_refused_at_load(tmp_path):
    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "a.npy", np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(InputError, match="preprocess.*which holds no images"):
        _prepare(tmp_path, _conv_model(tmp_path / "m.onnx"), calibration="npy",
                 preprocess={"channels": "BGR"})


def test_images_calibrate_one_input_models_only(tmp_path):
    _png(tmp_path / "imgs" / "a.png")
    model = _conv_model(tmp_path / "m.onnx", (("x", [1, 3, 8, 8]), ("z", [1, 4])))
    with pytest.raises(ConvertError, match="images calibrate one-input models, this one has 2"):
        _prepare(tmp_path, model, calibration="imgs")


@pytest.mark.parametrize("model,message", [
    ({"preprocess": {"channels": "BGR"}}, "preprocess only with calibration"),
    ({"calibration": "imgs", "preprocess": {"channels": "YUV"}}, "channels.*RGB or BGR"),
    ({"calibration": "imgs", "preprocess": {"size": [8]}}, r"size.*\[height, width\]"),
    ({"calibration": "imgs", "preprocess": {"mean": [0.5, 0.5]}}, "mean.*three numbers"),
    ({"calibration": "imgs", "preprocess": {"std": [1, 0, 1]}}, "std.*positive"),
    ({"calibration": "imgs", "preprocess": {"scale": 255}}, "scale: unknown key"),
])
def test_bad_preprocess_settings_are_one_line_at_load(tmp_path, model, message):
    (tmp_path / "imgs").mkdir()
    with pytest.raises(InputError, match=message):
        _prepare(tmp_path, _conv_model(tmp_path / "m.onnx"), **model)


def test_data_calibrated_int8_measured_on_random_input_says_so(tmp_path):
    """Calibrated on images, measured on the built-in seeded random input: the accuracy
    figures are of inputs it was not calibrated for; with an npy input, no such note."""
    from types import SimpleNamespace

    from harness.models.quantize import RANDOM_INPUT_NOTE, measured_input_notes
    (tmp_path / "imgs").mkdir()
    _png(tmp_path / "imgs" / "a.png")
    model = _conv_model(tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    suite = parse_suite({"engines": {"onnxruntime": "installed"}, "precisions": ["int8"],
                         "models": [{"name": "a", "onnx": str(model), "calibration": "imgs"},
                                    {"name": "b", "onnx": str(model), "calibration": "imgs",
                                     "inputs": [{"name": "x", "shape": [1, 3, 8, 8],
                                                 "npy": "x.npy"}]},
                                    {"name": "c", "onnx": str(model)}]},
                        "t.toml", tmp_path)
    a, b, c = suite.models
    imgs = SimpleNamespace(calibration="images imgs 1 files size=input ...")
    assert measured_input_notes(a, imgs) == (RANDOM_INPUT_NOTE,)
    assert measured_input_notes(b, imgs) == ()
    # random calibration has its own note; a float model has none
    assert measured_input_notes(c, SimpleNamespace(calibration="random 16 seed+1..")) == ()
    assert measured_input_notes(a, SimpleNamespace(calibration="")) == ()
