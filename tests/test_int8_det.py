"""PP-OCRv4 det at fp32 and int8 on MNN and onnxruntime (issue 15's acceptance model): each
int8 row is measured, names its quantizer and its calibration, and has its cosine against the
fp32 onnxruntime reference. Seeded random input and calibration at 320x320 (det takes any H, W
that are multiples of 32): the accuracy figures are recorded, not judged here (random data
says little of int8 accuracy on text, and the rows say so)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.models.quantize import RANDOM_NOTE
from tests.helpers import measure_block, run_suite_text

pytestmark = [pytest.mark.engines, pytest.mark.slow]


def test_ppocr_det_int8_rows_name_their_quantizer_and_accuracy(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    df = run_suite_text(tmp_path, """
name = "det-int8"
engines = { mnn = "installed", onnxruntime = "installed" }
precisions = ["fp32", "int8"]
""" + measure_block(iters=3, procs=1, timeout_s=600) + """[[models]]
name = "det"
builtin = "ppocr_det"
shape = [1, 3, 320, 320]
calibration_samples = 4
""")
    assert len(df) == 4 and set(df["status"].astype(str)) == {"ok"}, \
        df[["engine", "precision_requested", "status", "error"]].to_string()
    for engine, tool in (("mnn", "mnnquant "), ("onnxruntime", "onnxruntime.quantization ")):
        sel = df[(df.engine == engine)]
        fp32 = sel[sel.precision_requested == "fp32"].iloc[0]
        int8 = sel[sel.precision_requested == "int8"].iloc[0]
        assert fp32.verdict == "ok" and pd.isna(fp32.quantizer)
        assert int8.precision == "int8" and int8.quantizer.startswith(tool)
        assert int8.calibration.startswith("random 4 ") and RANDOM_NOTE in int8.notes
        assert int8.int8_ops > 0 and int8.has_reference
        assert math.isfinite(int8.out_cosine) and -1 <= int8.out_cosine < 1 - 1e-9
        assert int8.median_ms > 0 and int8.artifact_sha256 != fp32.artifact_sha256
