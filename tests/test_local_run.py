"""The whole local measurement path with real MNN, ncnn, onnxruntime, Ray and Parquet."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from harness.coordinator import run_suite
from harness.config.suite import load_suite

pytestmark = [pytest.mark.engines, pytest.mark.slow]

SUITE = """
name = "local-it"
engines = { mnn = "installed", ncnn = "installed" }
threads = [1]
[measure]
warmup = 1
min_iterations = 3
min_seconds = 0.0
timeout_s = 300

[[models]]
name = "det"
builtin = "ppocr_det"

[[models]]
name = "upsampler"
builtin = "convtranspose_upsampler"
engines = ["mnn"]
threads = [1, 2, 4]

[[models]]
name = "upsampler_vk"
builtin = "convtranspose_upsampler"
engines = ["mnn"]
backends = ["vulkan"]

[[models]]
name = "scaler"
onnx = "scaler.onnx"
shape = [1, 4]
"""


def _scaler_onnx(path):
    """Valid ONNX that onnxruntime runs but neither converter supports (ai.onnx.ml Scaler)."""
    import onnx
    from onnx import TensorProto, helper
    n = helper.make_node("Scaler", ["x"], ["y"], domain="ai.onnx.ml",
                         offset=[0.5] * 4, scale=[2.0] * 4)
    g = helper.make_graph([n], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("ai.onnx.ml", 1)])
    m.ir_version = 8
    onnx.save(m, path)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, ray_instance):
    d = tmp_path_factory.mktemp("local")
    _scaler_onnx(d / "scaler.onnx")
    (d / "suite.toml").write_text(SUITE)
    report = run_suite(load_suite(d / "suite.toml"), d / "results", progress=False)
    return report, d / "results"


def test_dataset_loads_with_one_row_per_configuration(local_run):
    report, out = local_run
    df = pd.read_parquet(out)
    # det: 2 engines; upsampler: 3 thread counts; upsampler_vk: 1; scaler: 2 engines
    assert len(df) == len(report.rows) == 8
    key = ["model", "engine", "engine_version", "backend_requested", "precision_requested",
           "threads", "process"]
    assert not df.duplicated(key).any()
    measured = df[df.status.isin(["ok", "fallback"])]
    assert all(isinstance(v, np.ndarray) and len(v) >= 3 for v in measured.latency_ms)
    import importlib.metadata as md
    installed = {"mnn": md.version("MNN"), "ncnn": md.version("ncnn")}
    for _, r in measured.iterrows():  # the version the engine itself reported
        assert r.engine_version == installed[r.engine]
    assert df.device_id.nunique() == 1 and df.arch.iloc[0] and df.cpu_model.iloc[0]


def test_ppocr_det_matches_reference_on_both_engines(local_run):
    df = pd.read_parquet(local_run[1])
    det = df[df.model == "det"].set_index("engine")
    for eng in ("mnn", "ncnn"):
        assert det.loc[eng, "status"] == "ok", det.loc[eng, "error"]
        assert det.loc[eng, "out_cosine"] >= 0.999
        assert det.loc[eng, "verdict"] == "ok"


def test_convtranspose_phase_peaks_by_thread_count(local_run):
    df = pd.read_parquet(local_run[1])
    up = df[(df.model == "upsampler") & (df.backend_requested == "cpu")].set_index("threads")
    assert list(up.index.sort_values()) == [1, 2, 4]
    for t in (1, 2, 4):
        assert up.loc[t, "rss_load_peak_kb"] > 0 and up.loc[t, "rss_steady_peak_kb"] > 0
        # the steady phase (inference buffers) is measured apart from the load phase
        assert up.loc[t, "rss_steady_peak_kb"] != up.loc[t, "rss_load_peak_kb"]
    steady = up["rss_steady_peak_kb"]
    assert steady.nunique() == 3, steady.to_dict()
    assert steady.loc[4] > steady.loc[1]


def test_mnn_vulkan_request_is_recorded_as_cpu_fallback(local_run):
    df = pd.read_parquet(local_run[1])
    vk = df[df.model == "upsampler_vk"].iloc[0]
    assert vk.backend_requested == "vulkan"
    assert vk.backend == "cpu"
    assert vk.status == "fallback"
    assert "Can't Find type=7 backend" in vk.notes


def test_converter_failure_is_a_row_and_the_rest_goes_on(local_run):
    df = pd.read_parquet(local_run[1])
    sc = df[df.model == "scaler"]
    assert set(sc.status) == {"convert_error"}
    assert any("Scaler" in e for e in sc.error)
    assert (df[df.model != "scaler"].status.isin(["ok", "fallback"])).all()


def test_provenance_and_outputs_recorded(local_run):
    df = pd.read_parquet(local_run[1])
    r = df[(df.model == "det") & (df.engine == "mnn")].iloc[0]
    assert r.kernel and r.python_version and r.harness_version
    assert r.started_at < r.ended_at
    outs = json.loads(r.outputs_json)
    assert outs[0]["shape"] == [1, 1, 640, 640] and len(outs[0]["sha256"]) == 64
    assert r.out_nan == 0 and r.out_inf == 0 and r.has_reference


def test_theory_beside_measured_memory(local_run):
    report, out = local_run
    models = pd.read_parquet(out / "_models" / "models.parquet")
    det = models[models.input_shape == "x:1x3x640x640"].iloc[0]
    assert det.params > 1_000_000 and det.activation_lower_bound_bytes > 0
    df = pd.read_parquet(out)  # the models table does not leak into the measurement dataset
    assert "params" not in df.columns
    row = df[(df.model == "det") & (df.engine == "mnn")].iloc[0]
    assert row.model_weight_bytes == det.weight_bytes
    from harness.summary import render, summarize
    s = summarize(report.rows)
    d = s[(s.model == "det") & (s.engine == "mnn")].iloc[0]
    assert d.theory_mib > 0 and d.mem_overhead > 0
    assert "overhead" in render(s)
