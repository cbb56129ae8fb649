"""Engine knowledge lives in the adapters: what they declare, and a fourth engine that is one
new file and nothing else."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.engines import adapter_class, engines_with, known_engines

ROOT = Path(__file__).resolve().parent.parent

FOURTH = '''"""onnxruntime under another name: a fourth engine in one file."""

from .onnxruntime import Adapter as _Ort


class Adapter(_Ort):
    name = "ort_alt"
'''


@pytest.mark.unit
def test_every_adapter_declares_its_capabilities():
    assert {"mnn", "ncnn", "onnxruntime"} <= set(known_engines())
    for e in known_engines():
        cls = adapter_class(e)
        assert cls.BACKENDS and cls.PRECISIONS, e
        assert isinstance(cls.MODEL_FORMAT, str) and cls.MODEL_FORMAT, e
        assert cls.MODULE and cls.PIP_PACKAGE, e
        assert cls.FIX_STRATEGY in (None, "featmask", "precision_high"), e
        assert cls.ONNX_NAME_MATCH in ("fused-ops", "by-value"), e
        assert bool(cls.LAYER_TIMES) == bool(cls.LAYER_TIMES_NOTE), e
    assert set(engines_with("LAYER_OUTPUTS")) >= {"mnn", "ncnn"}
    assert "onnxruntime" not in engines_with("LAYER_OUTPUTS")


@pytest.mark.unit
def test_unknown_engine_names_the_known_ones():
    with pytest.raises(ValueError, match="known: .*mnn.*ncnn"):
        adapter_class("tensorrt")


@pytest.mark.engines
def test_probe_reports_every_adapter():
    """hostctl probe asks each adapter; a host without an engine says why, per engine."""
    p = subprocess.run([sys.executable, "-m", "harness_agent.hostctl", "probe"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout.strip().splitlines()[-1])
    assert set(info["engines"]) == set(known_engines())
    for name, e in info["engines"].items():
        assert ("version" in e) != ("error" in e), (name, e)
        if "version" in e:
            assert isinstance(e["devices"], list)


def _tiny_onnx(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4), "w")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y0"]), helper.make_node("Relu", ["y0"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8),
              path)


@pytest.mark.engines
@pytest.mark.slow
def test_a_fourth_engine_is_one_new_file(tmp_path):
    """Copy the two packages, add one adapter file, and run it end to end through the CLI:
    planning, conversion, the agent, the verdict; and diagnose refuses it by capability."""
    tree = tmp_path / "tree"
    for pkg in ("harness", "harness_agent"):
        shutil.copytree(ROOT / pkg, tree / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    new = tree / "harness_agent" / "engines" / "ort_alt.py"
    new.write_text(FOURTH)
    # the copy differs from the checkout by exactly that one file
    added = []
    for pkg in ("harness", "harness_agent"):
        stack = [filecmp.dircmp(ROOT / pkg, tree / pkg,
                                ignore=["__pycache__"])]
        while stack:
            d = stack.pop()
            assert not d.diff_files and not d.left_only, (d.diff_files, d.left_only)
            added += [Path(d.right) / n for n in d.right_only]
            stack += d.subdirs.values()
    assert added == [new]

    model = tmp_path / "tiny.onnx"
    _tiny_onnx(model)
    env = {**os.environ, "PYTHONPATH": str(tree), "HARNESS_CACHE": str(tmp_path / "cache")}
    data = tmp_path / "results"

    def harness(*args):
        return subprocess.run([sys.executable, "-m", "harness", *args], cwd=tree, env=env,
                              capture_output=True, text=True, timeout=600)

    r = harness("run", "--model", str(model), "--engine", "ort_alt,onnxruntime",
                "--threads", "1", "--iterations", "3", "--seconds", "0", "--warmup", "0",
                "--data", str(data), "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    import pyarrow.dataset as ds
    rows = ds.dataset(data, format="parquet", partitioning="hive",
                      exclude_invalid_files=True).to_table().to_pylist()
    by_engine = {r["engine"]: r for r in rows}
    assert set(by_engine) == {"ort_alt", "onnxruntime"}
    alt = by_engine["ort_alt"]
    assert (alt["status"], alt["verdict"], alt["backend"]) == ("ok", "ok", "cpu")
    assert alt["engine_version"] == by_engine["onnxruntime"]["engine_version"]
    assert alt["out_sha256"] == by_engine["onnxruntime"]["out_sha256"]

    r = harness("diagnose", "--model", str(model), "--engine", "ort_alt")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "per-layer outputs" in r.stderr and "Traceback" not in r.stderr
