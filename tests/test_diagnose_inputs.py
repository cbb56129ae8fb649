"""`harness diagnose` takes real inputs, and a native .param model's shapes from its Input
layers: overflow that needs realistic values can be diagnosed."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cli import main
from harness.diagnose.run import input_specs
from harness.errors import InputError

# A Reduction of everything after a scale: with unit inputs the fp16 sum overflows, with
# seeded standard-normal ones (mean 0) it never does.
REDUCE = ("7767517\n3 3\n"
          "Input                    in0                      0 1 in0 0=64 1=64 2=16\n"
          "BinaryOp                 mul_0                    1 1 in0 1 0=2 1=1 2=4.000000e+00\n"
          "Reduction                sum_0                    1 1 1 out0 0=0 1=1 4=1 5=1\n")


@pytest.mark.unit
def test_input_files_become_named_inputs(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((1, 3), np.float32))
    np.savez(tmp_path / "b.npz", ids=np.arange(4, dtype=np.int64), mask=np.ones(2, bool))
    specs = input_specs([f"x={tmp_path / 'a.npy'}", str(tmp_path / "b.npz")])
    assert [(s.name, s.shape) for s in specs] == [("x", (1, 3)), ("ids", (4,)), ("mask", (2,))]
    with pytest.raises(InputError, match="no such file"):
        input_specs([str(tmp_path / "missing.npy")])


@pytest.mark.engines
@pytest.mark.slow
def test_diagnose_with_real_inputs_and_param_shapes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "r.ncnn.param").write_text(REDUCE)
    (tmp_path / "r.ncnn.bin").write_bytes(b"")
    model = str(tmp_path / "r.ncnn.param")
    # no --shape: the Input layer says 16x64x64; seeded inputs sum to a small number: clean
    assert main(["diagnose", "--model", model, "--engine", "ncnn", "--backend", "vulkan",
                 "--precision", "fp16", "--no-fix"]) == 0
    assert "no divergence" in capsys.readouterr().out
    # the real input (all ones): 4 x 65536 = 262144 > fp16's 65504: the Reduction overflows
    np.save(tmp_path / "ones.npy", np.ones((1, 16, 64, 64), np.float32))
    assert main(["diagnose", "--model", model, "--engine", "ncnn", "--backend", "vulkan",
                 "--precision", "fp16", "--no-fix", "--input",
                 f"in0={tmp_path / 'ones.npy'}"]) == 1  # diverged
    out = capsys.readouterr().out
    assert "sum_0" in out and "inf" in out, out
