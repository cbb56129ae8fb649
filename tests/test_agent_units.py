"""Device-side pieces that need no engine: phase memory, output metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness_agent.memory import PhaseMeter, read_status
from harness_agent.outputs import compare, describe, summarize

pytestmark = pytest.mark.unit


def test_phase_peak_resets_between_phases():
    meter = PhaseMeter()
    assert meter.can_reset, "this kernel must allow /proc/self/clear_refs"
    meter.start()
    big = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB touched
    big_sum = float(big.sum())
    del big
    first = meter.end()
    meter.start()
    small = np.ones(1024)
    second = meter.end()
    assert big_sum > 0 and small.sum() > 0
    assert first["peak_kb"] - second["peak_kb"] > 50 * 1024
    assert meter.process_peak_kb >= first["peak_kb"]
    assert read_status()["RssAnon"] > 0


def test_compare_metrics():
    ref = np.linspace(-1, 1, 100).astype(np.float32)
    out = ref.copy()
    out[3] += 0.01
    m = compare(out, ref)
    assert math.isclose(m["max_abs_err"], 0.01, rel_tol=1e-3)
    assert math.isclose(m["rel_err"], 0.01, rel_tol=1e-3)
    assert 0.9999 < m["cosine"] < 1.0
    assert "mismatch" in compare(out[:10], ref)


def test_nan_and_inf_are_counted_and_fail_metrics():
    ref = np.ones(10, np.float32)
    out = ref.copy()
    out[0], out[1] = np.nan, np.inf
    d = describe(out)
    assert d["nan"] == 1 and d["inf"] == 1
    d.update(compare(out, ref))
    assert d["max_abs_err"] == math.inf
    s = summarize([d])
    assert s["out_nan"] == 1 and s["out_inf"] == 1 and s["out_max_abs_err"] == math.inf
    assert s["out_cosine"] == -1.0  # an undefined cosine is the worst case, never missing


def test_checksum_is_over_raw_bytes():
    a = np.arange(6, dtype=np.float32)
    assert describe(a)["sha256"] == describe(a.copy())["sha256"]
    assert describe(a)["sha256"] != describe(a.astype(np.float64))["sha256"]
