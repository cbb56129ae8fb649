"""int8 calibrated on a folder of images, end to end: PP-OCR cls quantized by MNN's and
onnxruntime's own tools from seeded images preprocessed as PaddleOCR does (BGR, mean 0.5,
std 0.5), run and checked against the fp32 reference."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from harness.models.calibration_images import Preprocess, image_sample
from harness.models.quantize import RANDOM_NOTE
from tests.helpers import measure_block, run_suite_text

pytestmark = [pytest.mark.engines, pytest.mark.slow]


def test_image_calibration_quantizes_and_the_rows_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(11)
    imgs = tmp_path / "text-lines"
    imgs.mkdir()
    for i in range(7):  # dark strokes on a light background, other sizes than the input's
        px = rng.integers(180, 256, (32 + 4 * i, 160, 3), np.uint8)
        px[10:20, 10 + 8 * i:120] = rng.integers(0, 60, (10, 110 - 8 * i, 3), np.uint8)
        Image.fromarray(px, "RGB").save(imgs / f"line{i}.png")
    # the measured input is a seventh such image, prepared alike: int8 accuracy is judged on
    # data like the calibration set (on random noise it says little)
    pre = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), channels="BGR")
    np.save(tmp_path / "line6.npy", image_sample(imgs / "line6.png", (1, 3, 48, 192), pre))
    (imgs / "line6.png").unlink()
    df = run_suite_text(tmp_path, """
name = "imgcal"
engines = { mnn = "installed", onnxruntime = "installed" }
precisions = ["fp32", "int8"]
""" + measure_block(iters=3, procs=1, timeout_s=300) + """[[models]]
name = "cls"
builtin = "ppocr_cls"
calibration = "text-lines"
inputs = [{ name = "x", shape = [1, 3, 48, 192], npy = "line6.npy" }]
[models.preprocess]
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
channels = "BGR"
""")
    assert len(df) == 4 and set(df["status"].astype(str)) == {"ok"}, \
        df[["engine", "precision_requested", "status", "error"]].to_string()
    int8 = df[df.precision_requested == "int8"]
    for _, r in int8.iterrows():
        assert r["calibration"].startswith(f"images {tmp_path / 'text-lines'} 6 files "
                                           "size=input mean=0.5,0.5,0.5 std=0.5,0.5,0.5 BGR")
        # a 2-class output: cosine says little, top-1 agreement is the classifier's figure
        assert r["quantizer"] and 0 < r["out_cosine"] <= 1 + 1e-6, (r["engine"], r["out_cosine"])
        assert r["out_top1_agree"] in (0.0, 1.0), (r["engine"], r["out_top1_agree"])
        assert RANDOM_NOTE not in (r["notes"] if isinstance(r["notes"], str) else "")
    assert set(int8["engine"]) == {"mnn", "onnxruntime"}
