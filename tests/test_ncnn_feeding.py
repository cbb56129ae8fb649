"""How the ncnn adapter feeds inputs, by the kinds of model that broke it.

- An in-place op right after the input (ReLU, Sigmoid, Clip, BinaryOp with a scalar, ...):
  ncnn's light mode works on the input blob itself, so the adapter must give ncnn memory it
  owns; a Mat sharing the numpy input made the agent die with SIGSEGV.
- A graph where pnnx finds no batch axis (a lone Softmax over channels, a Concat of the input
  with itself): pnnx keeps every axis (a 4-D blob for a 1x3x8x8 input) and the adapter must
  feed that rank; dropping the leading 1 gave `wrong` outputs.
"""

from __future__ import annotations

import pytest

from harness.coordinator import run_suite
from harness.config.suite import load_suite

from .one_layer_models import build

pytestmark = [pytest.mark.engines, pytest.mark.slow]

IN_PLACE = ("Relu", "Sigmoid", "Tanh", "Elu", "LeakyRelu", "HardSigmoid", "Clip", "AddScalar",
            "MulScalar")
NO_BATCH_AXIS = ("Softmax", "Concat", "Transpose")
BATCH_AXIS = ("Conv", "MaxPool", "GlobalAveragePool")


def test_ncnn_feeds_every_kind_of_first_layer(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    models = build(tmp_path / "models")
    ops = IN_PLACE + NO_BATCH_AXIS + BATCH_AXIS
    lines = ['name = "ncnn-feeding"', 'engines = { ncnn = "installed" }', "threads = [1]",
             "[measure]", "warmup = 1", "min_iterations = 3", "min_seconds = 0.0",
             "timeout_s = 120"]
    for op in ops:
        lines += ["[[models]]", f'name = "{op}"', f'onnx = "{models[op]}"']
    (tmp_path / "suite.toml").write_text("\n".join(lines) + "\n")
    report = run_suite(load_suite(tmp_path / "suite.toml"), tmp_path / "results", progress=False)
    got = {r["model"]: (r["status"], r["verdict"], r.get("out_deterministic")) for r in report.rows}
    assert got == {op: ("ok", "ok", True) for op in ops}
