"""Conversions are cached by content: a second preparation converts nothing."""

from __future__ import annotations

import pytest

import harness.models.converters as convert
from harness.models.registry import builtin_onnx

pytestmark = pytest.mark.engines


def test_second_conversion_runs_no_converter(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    src = builtin_onnx("reduction_sum_block")
    calls = []
    real_run = convert._run
    monkeypatch.setattr(convert, "_run", lambda *a, **k: calls.append(a) or real_run(*a, **k))
    a1 = convert.to_mnn(src)
    n1 = convert.to_ncnn(src, [(1, 8, 128, 128)])
    assert len(calls) == 2
    a2 = convert.to_mnn(src)
    n2 = convert.to_ncnn(src, [(1, 8, 128, 128)])
    assert len(calls) == 2, "cached artifacts must not be converted again"
    assert a1.files == a2.files and n1.files == n2.files and a1.sha256 == a2.sha256
    # a different input shape is a different ncnn conversion (pnnx fixes shapes); this model's
    # input is static, so pnnx refuses it and says why
    with pytest.raises(convert.ConvertError, match="expect"):
        convert.to_ncnn(src, [(1, 8, 64, 64)])
    assert len(calls) == 3
    assert not list((tmp_path / "cache" / "models").glob(".*")), "no temp dirs left behind"
