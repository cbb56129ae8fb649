"""Suite validation: every bad input is one clear line naming file, key and expectation."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.errors import InputError
from harness.config.suite import load_suite

pytestmark = pytest.mark.unit

GOOD = """
name = "t"
engines = { mnn = "installed", ncnn = ["installed"] }
threads = [1, 2]
[measure]
warmup = 1
min_iterations = 3
[[models]]
name = "det"
builtin = "ppocr_det"
"""


def _load(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return load_suite(p)


def test_good_suite_loads_typed(tmp_path):
    s = _load(tmp_path, GOOD)
    assert s.engines == {"mnn": ("installed",), "ncnn": ("installed",)}
    assert s.threads == (1, 2) and s.measure.warmup == 1 and s.measure.min_iterations == 3
    assert s.models[0].inputs[0].shape == (1, 3, 640, 640)


@pytest.mark.parametrize("text, fragment", [
    (GOOD.replace("threads = [1, 2]", "thread = [1, 2]"), "thread: unknown key"),
    (GOOD.replace('builtin = "ppocr_det"', 'builtin = "ppocr_det"\nshap = [1]'),
     "models[0].shap: unknown key"),
    (GOOD.replace("threads = [1, 2]", 'threads = "2"'), "threads: got '2'"),
    (GOOD.replace("threads = [1, 2]", "threads = [0]"), "integers >= 1"),
    (GOOD.replace('mnn = "installed"', 'tflite = "installed"'), "engines.tflite: unknown key"),
    (GOOD + 'backends = ["npu"]\n', "got 'npu'"),
    (GOOD.replace("threads = [1, 2]", 'precisions = ["fp8"]'), "precisions: got 'fp8'"),
    (GOOD.replace("warmup = 1", "warmup = -1"), "measure.warmup"),
    (GOOD.replace('builtin = "ppocr_det"', 'onnx = "missing.onnx"'), "an existing file"),
    (GOOD.replace('builtin = "ppocr_det"', 'builtin = "resnet"'), "models[0].builtin"),
    (GOOD + '[[models]]\nname = "det"\nbuiltin = "ppocr_cls"\n', "unique model names"),
    ("name = [", "not valid TOML"),
])
def test_bad_suites_one_line(tmp_path, text, fragment):
    with pytest.raises(InputError) as e:
        _load(tmp_path, text)
    msg = str(e.value)
    assert fragment in msg and "s.toml" in msg and "\n" not in msg


def test_not_onnx_file(tmp_path):
    (tmp_path / "m.onnx").write_text("this is not a model")
    with pytest.raises(InputError, match="not ONNX"):
        _load(tmp_path, GOOD.replace('builtin = "ppocr_det"',
                                     'onnx = "m.onnx"\nshape = [1, 3, 8, 8]'))


@pytest.mark.parametrize("bad", [
    GOOD.replace("threads = [1, 2]", "threds = [1, 2]"),
    GOOD.replace('mnn = "installed"', 'mnnn = "installed"'),
])
def test_cli_bad_suite_exit_2_nothing_written(tmp_path, bad):
    suite = tmp_path / "bad.toml"
    suite.write_text(bad)
    out = tmp_path / "results"
    p = subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--data", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert "bad.toml" in lines[0] and "unknown key" in lines[0]
    assert "Traceback" not in p.stderr
    assert not out.exists()


def test_shipped_suites_and_inventory_load():
    from pathlib import Path

    from harness.fleet.inventory import load_inventory
    root = Path(__file__).resolve().parent.parent
    for p in sorted((root / "suites").glob("*.toml")):
        assert load_suite(p).models, p
    hosts = load_inventory(root / "devices" / "example.toml")
    assert [h.name for h in hosts] == ["rk3288-1", "nuc-1"]
