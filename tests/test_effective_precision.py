"""The precision a row claims is what ran: an fp16 request that ncnn runs in fp32 says fp32, and
the outputs agree with that claim (bit-identical to the fp32 row, or not)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.config.suite import load_suite
from harness.coordinator import run_suite

pytestmark = [pytest.mark.engines, pytest.mark.slow]


def _models(d):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(7)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    conv = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv", [x],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")])
    fc = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]),
         helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)], "fc", [x],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(rng.standard_normal((10, 192)).astype(np.float32) / 8, "w"),
         numpy_helper.from_array(np.zeros(10, np.float32), "b")])
    out = {}
    for name, g in (("conv", conv), ("fc", fc)):
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        onnx.save(m, d / f"{name}.onnx")
        out[name] = d / f"{name}.onnx"
    return out


def _x86_f16c() -> bool:
    from harness_agent.sysinfo import cpu_flags
    return " f16c " in cpu_flags()


def test_ncnn_fp16_on_this_cpu_claims_what_ran(tmp_path, monkeypatch):
    import platform
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the expected precisions below are ncnn's x86 rules")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    models = _models(tmp_path)
    suite = tmp_path / "suite.toml"
    suite.write_text(
        'name = "precision"\nengines = { ncnn = "installed" }\nthreads = [1]\n'
        'precisions = ["fp32", "fp16"]\n'
        "[measure]\nwarmup = 0\nmin_iterations = 2\nmin_seconds = 0.0\ntimeout_s = 120\n"
        + "".join(f'[[models]]\nname = "{n}"\nonnx = "{p}"\n' for n, p in models.items()))
    rows = {(r["model"], r["precision_requested"]): r
            for r in run_suite(load_suite(suite), tmp_path / "out", progress=False).rows}
    conv16, conv32 = rows[("conv", "fp16")], rows[("conv", "fp32")]
    # no fp16 path for a convolution on x86: the row says fp32, and the outputs prove it
    assert (conv16["precision"], conv16["status"]) == ("fp32", "fallback")
    assert conv16["out_sha256"] == conv32["out_sha256"]
    fc16, fc32 = rows[("fc", "fp16")], rows[("fc", "fp32")]
    if _x86_f16c():  # InnerProduct keeps fp16 weights with F16C: the outputs differ
        assert fc16["precision"] == "fp16-storage"
        assert fc16["out_sha256"] != fc32["out_sha256"] and fc16["verdict"] == "ok"
    else:
        assert fc16["precision"] == "fp32"
