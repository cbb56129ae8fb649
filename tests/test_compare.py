"""harness.compare: verdicts on synthetic rows, outputs, the gate, the CLI pieces, sweeps."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from harness.compare import (CompareResult, Thresholds, compare, compare_with_previous,
                             parse_fail_on, write_report)
from harness.cli import build_parser
from harness.compare.pairing import key_columns
from harness.compare.synthetic import T0, frame, rows_for, write_dataset
from harness.errors import InputError
from harness.results import DatasetError

pytestmark = pytest.mark.unit

V0, V1 = "3.4.0", "3.6.1"


def both(model, rng, *, head_factor=1.0, base_kw=None, head_kw=None, **kw):
    """Rows of one configuration for both versions."""
    rows = rows_for(model=model, engine_version=V0, engine_version_requested=V0, rng=rng,
                    **{**kw, **(base_kw or {})})
    hk = {**kw, **(head_kw or {})}
    hk["median_ms"] = hk.get("median_ms", 10.0) * head_factor
    return rows + rows_for(model=model, engine_version=V1, engine_version_requested=V1, rng=rng,
                           **hk)


def run(rows, **opts) -> CompareResult:
    return compare(frame(rows), "engine_version", V0, V1, **opts)


def verdict(res: CompareResult, model: str, aspect: str = "latency") -> str:
    p = res.pairs
    return p.loc[p["model"] == model, aspect].iloc[0]


# ---- latency ---------------------------------------------------------------------------------

def test_ten_percent_slowdown_is_slower():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(5):  # 5 processes x 40 samples, lognormal 3 %, process offsets 1 %
        rows += both(f"m{i}", rng, head_factor=1.10, processes=5, samples=40, sigma=0.03,
                     process_sigma=0.01)
    rows += both("fast", rng, head_factor=1 / 1.10)
    res = run(rows)
    assert all(verdict(res, f"m{i}") == "slower" for i in range(5)), res.to_table()
    assert verdict(res, "fast") == "faster"
    p = res.pairs[res.pairs["model"] == "m0"].iloc[0]
    assert 1.05 < p["ratio"] < 1.15 and 1.02 < p["ci_low"] < p["ratio"] < p["ci_high"]
    assert p["p_slower"] < 0.01 and p["resamples"] == 2000 and p["n_base"] == 200


def test_identical_distributions_never_slower_in_200_trials():
    rng = np.random.default_rng(1)
    rows = []
    for i in range(200):  # 200 independent trials = 200 pairs in one vectorized compare
        rows += both(f"t{i}", rng, processes=5, samples=40, sigma=0.03, process_sigma=0.01)
    res = run(rows, resamples=500)
    assert len(res.pairs) == 200
    assert (res.pairs["latency"] == "slower").sum() == 0
    assert (res.pairs["latency"] == "faster").sum() == 0
    # the rank test alone fires now and then (pooled samples ignore process clustering);
    # the ratio and CI conditions are what keep it honest
    assert res.info["bootstrapped"] == 200


def test_two_percent_shift_is_not_slower():
    rng = np.random.default_rng(2)
    rows = []
    for i in range(20):
        rows += both(f"s{i}", rng, head_factor=1.02, processes=5, samples=40)
    res = run(rows, resamples=500)
    assert (res.pairs["latency"] == "slower").sum() == 0
    assert (res.pairs["p_slower"] < 0.01).sum() > 10  # significant, but below the effect size


def test_bimodal_side_is_unstable():
    rng = np.random.default_rng(3)
    rows = both("bi", rng, head_factor=1.0, head_kw={"bimodal": (0.3, 1.4)})
    res = run(rows)
    assert verdict(res, "bi") == "unstable"
    assert "cv head" in res.pairs["latency_note"].iloc[0]
    assert res.pairs["cv_head"].iloc[0] > 0.10 > res.pairs["cv_base"].iloc[0]


def test_few_samples_are_insufficient():
    rng = np.random.default_rng(4)
    rows = both("few", rng, head_factor=1.5, processes=5, samples=5)  # 25 < 30
    res = run(rows)
    assert verdict(res, "few") == "insufficient"
    assert run(rows, min_samples=20).pairs["latency"].iloc[0] == "slower"


def test_few_processes_are_insufficient():
    """One process a side shows nothing of the process-to-process spread: no latency verdict,
    however many samples it has."""
    rng = np.random.default_rng(5)
    rows = both("one", rng, head_factor=1.5, processes=1, samples=200)
    rows += both("two", rng, head_factor=1.5, processes=2, samples=100)
    res = run(rows)
    assert verdict(res, "one") == verdict(res, "two") == "insufficient"
    assert "latency: 1/1 processes, needs 3 per side" in verdict(res, "one", "latency_note")
    res = run(rows, min_processes=1)
    assert verdict(res, "one") == verdict(res, "two") == "slower"
    with pytest.raises(InputError):
        Thresholds(min_processes=0)


@pytest.mark.parametrize("field,value", [
    ("ci_margin", -1.0),                  # was a ZeroDivisionError deep in the verdicts
    ("ci_margin", -0.5), ("max_core_latency_change", 0.5), ("max_core_latency_change", -1.0),
    ("max_core_latency_change", float("nan")),  # NaN compares false: it turned the rule off
    ("max_contention", -1.0), ("max_cv", -0.1), ("alpha", 2.0), ("alpha", 0.0),
    ("resamples", 0), ("min_samples", -1), ("rss_rel", -1.0), ("temp_rise_c", -5.0),
    ("int8_cosine", 2.0), ("drift_factor", 0.5), ("min_resamples", 0), ("bootstrap_budget", -1),
])
def test_a_threshold_outside_its_range_is_refused_by_name(field, value):
    with pytest.raises(InputError, match=f"compare thresholds: {field}: got"):
        Thresholds(**{field: value})


def test_inf_switches_a_rule_off():
    assert Thresholds(max_core_latency_change=float("inf"), max_contention=float("inf"))


@pytest.mark.parametrize("field,base_val,head_val,note", [
    ("governor_end", "performance", "powersave", "governor changed"),
    ("temp_max_c_end", 50.0, 75.0, "temp rose"),
    ("notes", None, "cpu throttled at 80C", "throttled"),
    # the head's processes shared their CPUs with other work: 12 % of the threads' demand
    ("cpu_contention", 0.0, 0.12, "cpu contention > 5%"),
])
def test_environment_changes_are_unstable(field, base_val, head_val, note):
    rng = np.random.default_rng(5)
    start = {"governor_end": {"governor_start": "performance"},
             "temp_max_c_end": {"temp_max_c_start": 50.0}, "notes": {},
             "cpu_contention": {}}[field]
    rows = both("env", rng, head_factor=1.10,
                base_kw={**start, field: base_val}, head_kw={**start, field: head_val})
    res = run(rows)
    assert verdict(res, "env") == "unstable" and note in res.pairs["latency_note"].iloc[0]


# The two states seen on 2-vCPU CI machines (harness_agent.corelatency): ~185 ns while the vCPUs
# shared a cache, ~450 ns while they did not; MNN on PP-OCRv4 det at 2 threads 34 -> 49 ms.
NEAR, FAR = 185.0, 450.0


def _c2c(*per_process):
    """core_to_core_ns_start/_end per process (lists, as rows_for takes them)."""
    return {"core_to_core_ns_start": [a for a, _ in per_process],
            "core_to_core_ns_end": [b for _, b in per_process]}


def test_a_machine_whose_cores_moved_apart_gives_no_multithread_verdict():
    """Every head process ran while the vCPUs were far apart: its 2-thread latency is 44 %
    higher with a tight CI, and none of that is the engine's."""
    rng = np.random.default_rng(18)
    base, head = _c2c(*[(NEAR, NEAR)] * 5), _c2c(*[(FAR, FAR)] * 5)
    rows = both("moved", rng, head_factor=1.44, threads=2, base_kw=base, head_kw=head)
    rows += both("one_thread", rng, head_factor=1.10, threads=1, base_kw=base, head_kw=head)
    rows += both("steady", rng, head_factor=1.10, threads=2, base_kw=base,
                 head_kw=_c2c(*[(NEAR * 1.15, NEAR * 1.2)] * 5))
    res = run(rows)
    assert verdict(res, "moved") == "unstable", res.to_table()
    assert "core-to-core latency 185 → 450 ns" in verdict(res, "moved", "latency_note")
    # one thread exchanges nothing between cores; a 20 % wobble is within one state
    assert verdict(res, "one_thread") == verdict(res, "steady") == "slower"
    assert verdict(run(rows, max_core_latency_change=1.1), "steady") == "unstable"


def test_a_move_during_one_measurement_makes_the_pair_unstable():
    """One base process started near and ended far: its samples are a mix of both states, and
    the side medians (near on both sides) cannot show it."""
    rng = np.random.default_rng(19)
    rows = both("mixed", rng, head_factor=1.10, threads=2,
                base_kw=_c2c((NEAR, FAR), (NEAR, NEAR), (NEAR, NEAR), (NEAR, NEAR), (NEAR, NEAR)),
                head_kw=_c2c(*[(NEAR, NEAR)] * 5))
    rows += both("old_rows", rng, head_factor=1.10, threads=2)  # no figures: nothing to doubt
    res = run(rows)
    assert verdict(res, "mixed") == "unstable"
    assert ("core-to-core latency changed during a measurement (base×1)"
            in verdict(res, "mixed", "latency_note"))
    assert verdict(res, "old_rows") == "slower"


def test_float_rounding_on_tiny_outputs_is_neither_wrong_nor_drift():
    """The head's outputs all tiny (a saturated sigmoid map): rel_err 2e-3 and cosine 0.99985
    from a max abs error of 1.3e-7, within fp32's absolute floor; the base matched exactly."""
    rng = np.random.default_rng(16)
    rows = both("tiny", rng, base_kw={"out_rel_err": 0.0, "out_cosine": 1.0},
                head_kw={"out_sha256": "e" * 64, "out_rel_err": 2.15e-3,
                         "out_cosine": 0.99985, "out_max_abs_err": 1.3e-7})
    rows += both("big", rng, base_kw={"out_rel_err": 0.0, "out_cosine": 1.0},
                 head_kw={"out_sha256": "f" * 64, "out_rel_err": 2.15e-3,
                          "out_cosine": 0.99985, "out_max_abs_err": 2.15e-3})
    res = run(rows)
    assert verdict(res, "tiny", "correctness") == "ok"
    assert verdict(res, "big", "correctness") == "wrong"


def test_a_memory_change_under_cpu_contention_is_not_judged():
    """ncnn ConvTranspose at 1 thread levelled its heap off 147 MB higher in every process run
    beside a busy process (417 -> 564 MB steady peak): a change seen under load is no
    evidence, in memory as in latency."""
    rng = np.random.default_rng(17)
    base = (50_000, 90_000, 100_000)
    rows = both("loaded", rng, base_kw={"rss_kb": base},
                head_kw={"rss_kb": (50_000, 90_000, 250_000), "cpu_contention": 0.3})
    rows += both("quiet", rng, base_kw={"rss_kb": base},
                 head_kw={"rss_kb": (50_000, 90_000, 250_000), "cpu_contention": 0.01})
    res = run(rows)
    assert verdict(res, "loaded", "rss_steady") == "insufficient"
    assert verdict(res, "loaded", "memory") == "insufficient"
    assert verdict(res, "loaded", "rss_load") == "same"  # no change: nothing to doubt
    note = res.pairs.loc[res.pairs["model"] == "loaded", "latency_note"].iloc[0]
    assert "rss steady: changed under cpu contention, not judged" in note
    assert verdict(res, "quiet", "memory") == "larger"


def test_background_load_below_the_threshold_leaves_a_real_change_standing():
    rng = np.random.default_rng(15)
    rows = both("busy", rng, head_factor=1.10, base_kw={"cpu_contention": 0.01},
                head_kw={"cpu_contention": 0.04})
    assert verdict(run(rows), "busy") == "slower"
    assert verdict(run(rows, max_contention=0.03), "busy") == "unstable"


def test_only_measured_rows_count():
    rng = np.random.default_rng(6)
    rows = both("m", rng, head_factor=1.10)
    rows += rows_for(model="m", engine_version=V1, engine_version_requested=V1, status="timeout",
                     rng=rng)
    res = run(rows)
    assert verdict(res, "m") == "slower" and res.pairs["rows_head"].iloc[0] == 5


def test_fallback_rows_are_measured_and_noted():
    rng = np.random.default_rng(7)
    rows = both("fb", rng, head_kw={"status": "fallback"})
    res = run(rows)
    assert res.pairs["n_head"].iloc[0] == 200
    assert "fallback (head×5)" in res.pairs["latency_note"].iloc[0]


# ---- memory -----------------------------------------------------------------------------------

def test_peak_rss_per_phase():
    rng = np.random.default_rng(8)
    base = (50_000, 90_000, 100_000)
    rows = both("larger", rng, base_kw={"rss_kb": base},
                head_kw={"rss_kb": (50_000, 90_000, 108_000)})           # steady +8 MiB
    rows += both("smaller", rng, base_kw={"rss_kb": base},
                 head_kw={"rss_kb": (40_000, 90_000, 100_000)})           # load -10 MiB
    rows += both("same", rng, base_kw={"rss_kb": base}, head_kw={"rss_kb": base})
    rows += both("tiny", rng, rss_jitter_kb=0.0, base_kw={"rss_kb": base},   # separated but
                 head_kw={"rss_kb": (50_000, 90_000, 100_600)})           # +0.6 MiB < 1 MiB
    rows += both("overlap", rng, rss_jitter_kb=3000.0, base_kw={"rss_kb": base},
                 head_kw={"rss_kb": (50_000, 90_000, 102_500)})           # ranges overlap
    rows += both("norss", rng, base_kw={"rss_kb": base},
                 head_kw={"rss_steady_peak_kb": None})
    res = run(rows)
    pairs = res.pairs.set_index("model")
    assert pairs.loc["larger", "rss_steady"] == "larger"
    assert pairs.loc["larger", "memory"] == "larger"
    assert pairs.loc["larger", "rss_load"] == "same"
    assert pairs.loc["larger", "rss_steady_delta_kb"] == pytest.approx(8000, abs=600)
    assert pairs.loc["smaller", "rss_load"] == "smaller"
    assert pairs.loc["smaller", "memory"] == "smaller"
    assert pairs.loc["same", "memory"] == "same"
    assert pairs.loc["tiny", "rss_steady"] == "same"
    assert pairs.loc["overlap", "rss_steady"] == "same"
    assert pairs.loc["norss", "rss_steady"] == "insufficient"
    assert pairs.loc["norss", "rss_first"] == "same"
    assert res.exit_code("larger") == 1 and res.exit_code("slower") == 0


def test_memory_relative_threshold():
    rng = np.random.default_rng(9)
    big = (2_000_000, 3_000_000, 4_000_000)  # ~4 GB: 2 % is 80 MB
    rows = both("big", rng, rss_jitter_kb=0.0, base_kw={"rss_kb": big},
                head_kw={"rss_kb": (2_000_000, 3_000_000, 4_050_000)})
    assert run(rows).pairs["rss_steady"].iloc[0] == "same"
    assert run(rows, rss_rel=0.01).pairs["rss_steady"].iloc[0] == "larger"


def test_memory_needs_rss_min_processes_per_side():
    rng = np.random.default_rng(10)
    base = (50_000, 90_000, 100_000)
    head = (50_000, 90_000, 150_000)                                      # steady +50 MB
    rows = both("one", rng, processes=1, base_kw={"rss_kb": base}, head_kw={"rss_kb": head})
    rows += both("two", rng, processes=2, base_kw={"rss_kb": base}, head_kw={"rss_kb": head})
    rows += both("three", rng, processes=3, base_kw={"rss_kb": base}, head_kw={"rss_kb": head})
    pairs = run(rows).pairs.set_index("model")
    assert pairs.loc["one", "memory"] == "insufficient"        # one value against one value
    assert pairs.loc["two", "rss_load"] == "insufficient"
    assert pairs.loc["three", "rss_steady"] == "larger"
    assert pairs.loc["three", "rss_load"] == "same"
    pairs = run(rows, rss_min_processes=1).pairs.set_index("model")
    assert pairs.loc["one", "rss_steady"] == "larger" and pairs.loc["one", "rss_load"] == "same"
    assert Thresholds().rss_min_processes == 3
    with pytest.raises(InputError):
        Thresholds(rss_min_processes=0)


def test_memory_delta_must_exceed_the_within_side_range():
    """Identical processes whose peaks differ by 16 MiB steps (allocator state): a separated
    median delta smaller than that spread is `same`; one beyond it is `larger`."""
    def rows_with(model, base_steady, head_steady):
        rows = []
        for ver, steady in ((V0, base_steady), (V1, head_steady)):
            rows += rows_for(model=model, engine_version=V0 if ver == V0 else V1,
                             engine_version_requested=ver, processes=len(steady),
                             rss_steady_peak_kb=[float(x) for x in steady],
                             rng=np.random.default_rng(11))
        return rows
    mib = 1024.0
    rows = rows_with("spread", [500 * mib, 516 * mib, 532 * mib],         # base range 32 MiB
                     [533 * mib, 540 * mib, 548 * mib])                   # +24 MiB median
    rows += rows_with("beyond", [500 * mib, 516 * mib, 532 * mib],
                      [560 * mib, 566 * mib, 570 * mib])                  # +50 MiB median
    rows += rows_with("tight", [500 * mib, 500.1 * mib, 500.2 * mib],
                      [515 * mib, 515.1 * mib, 515.2 * mib])              # +15 MiB > 2 %
    pairs = run(rows).pairs.set_index("model")
    assert pairs.loc["spread", "rss_steady"] == "same"
    assert pairs.loc["beyond", "rss_steady"] == "larger"
    assert pairs.loc["tight", "rss_steady"] == "larger"
    assert pairs.loc["beyond", "rss_steady_delta_kb"] == pytest.approx(50 * mib)


# ---- correctness ------------------------------------------------------------------------------

def test_correctness_verdicts():
    rng = np.random.default_rng(10)
    rows = both("identical", rng)
    rows += both("ok", rng, head_kw={"out_sha256": "b" * 64, "out_rel_err": 2e-5})
    rows += both("wrong", rng, head_kw={"out_sha256": "c" * 64, "out_rel_err": 5e-3})
    rows += both("wrongcos", rng, head_kw={"out_sha256": "c" * 64, "out_cosine": 0.99,
                                             "out_max_abs_err": 0.05})
    rows += both("newnan", rng, head_kw={"out_sha256": "d" * 64, "out_nan": 3})
    rows += both("oldnan", rng, base_kw={"out_nan": 1}, head_kw={"out_sha256": "d" * 64,
                                                                "out_nan": 1})
    rows += both("drift", rng, base_kw={"out_rel_err": 1e-6, "out_cosine": 0.99999999},
                 head_kw={"out_sha256": "e" * 64, "out_rel_err": 5e-5, "out_cosine": 0.9999995})
    rows += both("noref", rng, head_kw={"out_sha256": "f" * 64, "has_reference": False,
                                        "out_rel_err": None, "out_cosine": None})
    rows += both("int8", rng, precision="int8", precision_requested="int8",
                 base_kw={"out_rel_err": 0.04, "out_cosine": 0.996},
                 head_kw={"out_sha256": "g" * 64, "out_rel_err": 0.05, "out_cosine": 0.995})
    rows += both("nondet", rng, head_kw={"out_sha256": ["a" * 64, "h" * 64] * 2 + ["a" * 64]})
    res = run(rows)
    pairs = res.pairs.set_index("model")
    expect = {"identical": "identical", "ok": "ok", "wrong": "wrong", "wrongcos": "wrong",
              "newnan": "wrong", "oldnan": "wrong", "drift": "drift", "noref": "no-ref",
              "int8": "ok", "nondet": "ok"}
    got = {m: pairs.loc[m, "correctness"] for m in expect}
    assert got == expect
    assert pairs.loc["newnan", "correctness_note"] == "new NaN/Inf"
    assert pairs.loc["oldnan", "correctness_note"] == "NaN/Inf (also in base)"
    assert "rel_err grew" in pairs.loc["drift", "correctness_note"] or \
        "1-cos" in pairs.loc["drift", "correctness_note"]
    assert pairs.loc["wrong", "rel_err_head"] == pytest.approx(5e-3)
    assert res.exit_code({"wrong"}) == 1 and res.exit_code({"slower", "larger"}) == 0
    assert res.exit_code({"drift"}) == 1


def test_fp16_tolerance_is_looser():
    rng = np.random.default_rng(11)
    kw = dict(precision="fp16", precision_requested="fp16")
    rows = both("h", rng, **kw, base_kw={"out_rel_err": 3e-3, "out_cosine": 0.9995},
                head_kw={"out_sha256": "z" * 64, "out_rel_err": 4e-3, "out_cosine": 0.9994})
    assert run(rows).pairs["correctness"].iloc[0] == "ok"


# ---- pairing, dimensions, errors ---------------------------------------------------------------

def test_missing_pairs_are_reported():
    rng = np.random.default_rng(12)
    rows = both("paired", rng)
    rows += rows_for(model="gone", engine_version=V0, engine_version_requested=V0, rng=rng)
    rows += rows_for(model="new", engine_version=V1, engine_version_requested=V1, rng=rng)
    rows += rows_for(model="broke", engine_version=V0, engine_version_requested=V0, rng=rng)
    rows += rows_for(model="broke", engine_version=None, engine_version_requested=V1,
                     status="error", rng=rng)
    res = run(rows)
    assert list(res.pairs["model"]) == ["paired"]
    miss = res.missing.set_index("model")
    assert set(miss.index) == {"gone", "new", "broke"}
    assert miss.loc["broke", "head"] == "error×5" and miss.loc["broke", "missing_on"] == "head"
    assert miss.loc["new", "base"] == "absent" and miss.loc["new", "missing_on"] == "base"
    assert res.exit_code("missing") == 1 and res.exit_code("slower") == 0


@pytest.mark.parametrize("dimension,field,a,b", [
    ("host", "host", "pi5", "rk3588"),
    ("precision", "precision", "fp32", "fp16"),
    ("backend", "backend", "cpu", "vulkan"),
    ("run_id", "run_id", "r1", "r2"),
    ("sweep", "run_id", "r1", "r2"),
    ("sweep_tag", "sweep_tag", "nightly", "release"),
])
def test_dimensions(dimension, field, a, b):
    rng = np.random.default_rng(13)
    extra = {"precision": "precision_requested", "backend": "backend_requested"}
    rows = []
    for val, factor in ((a, 1.0), (b, 1.1)):
        kw = {field: val}
        if field in extra:
            kw[extra[field]] = val
        if field == "host":
            kw["cores"] = 4 if val == a else 8  # host property: not part of the key
        rows += rows_for(model="m", median_ms=10 * factor, rng=rng, **kw)
    res = compare(frame(rows), dimension, a, b)
    assert field not in res.key and len(res.pairs) == 1, res.to_table()
    assert res.pairs["latency"].iloc[0] == "slower"
    assert res.dimension == field


def test_run_comparison_pairs_installed_versions_and_notes_changes():
    rng = np.random.default_rng(14)
    rows = rows_for(run_id="r1", engine_version="3.4.0", engine_version_requested="installed",
                    rng=rng)
    rows += rows_for(run_id="r2", engine_version="3.6.1", engine_version_requested="installed",
                     rng=rng, t0=T0 + 86400)
    res = compare(frame(rows), "run_id", "r1", "r2")
    assert "engine_version_requested" in res.key and len(res.pairs) == 1
    assert "engine_version 3.4.0→3.6.1" in res.pairs["latency_note"].iloc[0]


def test_key_columns():
    assert key_columns("engine_version") == ["model", "input_shape", "engine", "backend",
                                             "precision", "threads", "cores_requested",
                                             "cores", "host"]
    assert "engine_version" in key_columns("host") and "cores" not in key_columns("host")
    assert "precision" not in key_columns("precision")


def test_bad_input():
    rng = np.random.default_rng(15)
    df = frame(both("m", rng))
    with pytest.raises(InputError, match="are the same"):
        compare(df, "engine_version", V0, V0)
    with pytest.raises(InputError, match="not comparable"):
        compare(df, "color", "a", "b")
    with pytest.raises(DatasetError, match=r"one of: 3\.4\.0, 3\.6\.1"):
        compare(df, "engine_version", "9.9", V1)
    with pytest.raises(DatasetError):
        compare(df, "engine_version", V0, V1, engine="ncnn")
    with pytest.raises(InputError, match="not a compare threshold"):
        compare(df, "engine_version", V0, V1, alpah=0.05)
    with pytest.raises(InputError, match="not a gate verdict"):
        parse_fail_on("slower,bogus")


def test_thresholds_are_options():
    rng = np.random.default_rng(0)
    rows = both("m", rng, head_factor=1.04)  # realized ratio 1.042
    assert run(rows).pairs["latency"].iloc[0] == "same"
    assert run(rows, min_ratio=1.03).pairs["latency"].iloc[0] == "slower"
    th = Thresholds(min_ratio=1.03, resamples=300)
    res = compare(frame(rows), "engine_version", V0, V1, thresholds=th)
    assert res.pairs["latency"].iloc[0] == "slower" and res.pairs["resamples"].iloc[0] == 300


def test_bootstrap_budget_limits_work():
    rng = np.random.default_rng(17)
    rows = []
    for i in range(6):
        rows += both(f"m{i}", rng, head_factor=1.2 if i < 2 else 1.0)
    res = run(rows, bootstrap_budget=2 * 400 * 2000, min_resamples=200)
    r = res.pairs.set_index("model")["resamples"]
    assert r["m0"] == r["m1"] == 2000               # candidates first, full resamples
    assert (r[[f"m{i}" for i in range(2, 6)]] == 0).all()  # no budget left for the rest
    assert np.isnan(res.pairs.set_index("model").loc["m3", "ci_low"])


# ---- outputs ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixed_result() -> CompareResult:
    rng = np.random.default_rng(18)
    rows = []
    for host in ("pi5", "rk3588"):
        for th in (1, 2, 4):
            rows += both("slow<det>", rng, head_factor=1.1, threads=th, host=host,
                         median_ms=20 / th)
            rows += both("ok|rec", rng, threads=th, host=host, median_ms=8 / th,
                         head_kw={"out_sha256": "b" * 64, "rss_kb": (5e4, 9e4, 1.1e5)})
    rows += rows_for(model="gone", engine_version=V0, engine_version_requested=V0, rng=rng)
    return run(rows)


def test_table_markdown_json(mixed_result):
    res = mixed_result
    text = res.to_table()
    assert "slower" in text and "missing on one side (1)" in text and "held equal:" in text
    assert text.splitlines()[0].startswith("compare engine_version: 3.4.0 (base) → 3.6.1")
    md = res.to_markdown()
    assert "| model |" in md and r"ok\|rec" in md and "### Missing on one side (1)" in md
    data = json.loads(res.to_json())
    assert "NaN" not in res.to_json()
    assert data["counts"]["latency"]["slower"] == 6 and data["counts"]["memory"]["larger"] == 6
    assert data["missing"][0]["key"]["model"] == "gone"
    first = data["pairs"][0]
    assert set(first) == {"key", "latency", "memory", "correctness"}
    assert set(first["memory"]) == {"verdict", "load", "first", "steady"}
    assert first["latency"]["ci"][0] is not None
    assert res.render("md") == md and res.render("json") == res.to_json()
    with pytest.raises(InputError):
        res.render("pdf")


def test_html_report_is_self_contained(mixed_result):
    html = mixed_result.to_html()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    svgs = re.findall(r"<svg\b", html)
    assert len(svgs) >= 2 * 2 * 2 + 1  # per host: latency + memory panels; error panel(s)
    assert len(re.findall(r'class="pt"', html)) > 50
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert not re.search(r"\s(src|href)\s*=", html)
    assert "slow&lt;det&gt;" in html and "<det>" not in html  # escaped
    for words in ("latency (ms)", "threads", "peak RSS (MiB)", "error (log)", "Host pi5",
                  "Host rk3588", "3.4.0 (base)"):
        assert words in html


def test_precision_pairs_each_quantization_of_the_head_apart():
    """int8 rows of one configuration from two calibrations (other model files): two pairs,
    each against the same fp32 rows, each with its own latency and accuracy; pooled, the
    worse one's cosine and both latencies would have been one pair's."""
    rng = np.random.default_rng(22)
    common = dict(model="cls", engine="onnxruntime", threads=1, has_reference=True)
    rows = rows_for(rng=rng, precision="fp32", precision_requested="fp32", median_ms=10.0,
                    out_cosine=1.0, out_rel_err=1e-7, **common)
    for cal, ms, cos in (("random 8 seed+1.. sha256:aaaa", 5.0, 0.993),
                         ("images imgs 6 files size=input sha256:bbbb", 8.0, 0.617)):
        rows += rows_for(rng=rng, precision="int8", precision_requested="int8", median_ms=ms,
                         out_cosine=cos, out_rel_err=0.3, out_sha256="q" + cal[:6],
                         calibration=cal, **common)
    res = compare(frame(rows), "precision", "fp32", "int8")
    p = res.pairs.set_index("calibration")
    assert len(p) == 2 and res.info["rows_base"] == 5 and res.info["rows_head"] == 10
    rnd, img = p.loc["random 8 seed+1.. sha256:aaaa"], p.loc[
        "images imgs 6 files size=input sha256:bbbb"]
    assert rnd["cosine_head"] == pytest.approx(0.993) and rnd["correctness"] == "ok"
    assert img["cosine_head"] == pytest.approx(0.617) and img["correctness"] == "wrong"
    assert rnd["ratio"] == pytest.approx(0.5, rel=0.05)
    assert img["ratio"] == pytest.approx(0.8, rel=0.05)
    assert rnd["median_base"] == img["median_base"]
    # the int8 cosine is a threshold of compare (its default is the row verdict's)
    from harness_agent.tolerance import TOLERANCES
    assert Thresholds().int8_cosine == TOLERANCES["int8"].cosine
    loose = compare(frame(rows), "precision", "fp32", "int8", int8_cosine=0.6).pairs
    assert set(loose["correctness"]) == {"ok"}


def test_precision_report_plots_speed_up_against_accuracy_cost():
    """fp32 -> int8 on two engines: int8 twice as fast at 1 - cos 1e-3 on one, 1.25x at 1e-5
    on the other; each pair is one point at (speed-up, 1 - cosine), coloured by engine."""
    rng = np.random.default_rng(21)
    rows = []
    for engine, speed, cos in (("mnn", 2.0, 0.999), ("onnxruntime", 1.25, 0.99999)):
        common = dict(model="cls", engine=engine, precision_requested="fp32", threads=1,
                      has_reference=True, out_cosine=1.0, out_rel_err=1e-7)
        rows += rows_for(rng=rng, precision="fp32", median_ms=10.0, **common)
        rows += rows_for(rng=rng, precision="int8", median_ms=10.0 / speed,
                         **{**common, "precision_requested": "int8", "out_cosine": cos,
                            "out_rel_err": 1e-2, "out_sha256": "q-" + engine})
    res = compare(frame(rows), "precision", "fp32", "int8")
    html = res.to_html()
    assert "<h2>Speed-up vs accuracy cost</h2>" in html
    chart = html.split("<h2>Speed-up vs accuracy cost</h2>")[1].split("</svg>")[0]
    pts = re.findall(r'data-series="([^"]+)" data-y="([^"]+)"[^>]*><title>([^<]+)</title>', chart)
    got = {series: (float(y), tip) for series, y, tip in pts}
    assert set(got) == {"mnn", "onnxruntime"}
    assert got["mnn"][0] == pytest.approx(1e-3, rel=1e-6)
    assert got["onnxruntime"][0] == pytest.approx(1e-5, rel=1e-4)
    for engine, speed in (("mnn", 2.0), ("onnxruntime", 1.25)):
        shown = float(re.search(r"×([0-9.]+)", got[engine][1]).group(1))
        assert shown == pytest.approx(speed, rel=0.05), got[engine][1]
    assert "1-cos tol" in chart
    # another dimension: no such chart
    assert "Speed-up vs accuracy cost" not in run(both("v", rng)).to_html()


def test_write_report(tmp_path, mixed_result):
    paths = write_report(mixed_result, tmp_path / "_reports" / "cmp")
    assert {p.name for p in paths.values()} == {"cmp.html", "cmp.md", "cmp.json"}
    assert json.loads(paths["json"].read_text())["dimension"] == "engine_version"
    assert not list((tmp_path / "_reports").glob(".*"))


# ---- CLI ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_data(tmp_path_factory):
    rng = np.random.default_rng(19)
    root = tmp_path_factory.mktemp("cli")
    rows = both("slowmodel", rng, head_factor=1.12) + both("steady", rng)
    rows += rows_for(model="steady", engine="ncnn", engine_version="1.0", rng=rng)
    write_dataset(rows, root)
    return root


def _parser():
    return build_parser()


def _run(argv):
    args = _parser().parse_args(argv)
    return args.func(args)


def test_cli_gate(cli_data, capsys):
    base = ["compare", "--data", str(cli_data), "--engine", "mnn", "--base", V0, "--head", V1]
    assert _run(base + ["--fail-on", "slower,larger,wrong"]) == 1
    out = capsys.readouterr()
    assert "slowmodel" in out.out and "FAILED" in out.err
    assert _run(base) == 0                                           # no gate
    assert _run(base + ["--model", "steady", "--fail-on", "slower,larger,wrong"]) == 0
    assert _run(base + ["--fail-on", "slower", "--min-ratio", "1.2"]) == 0
    capsys.readouterr()


def test_cli_a_bad_threshold_is_one_line_and_exit_2(cli_data):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "harness", "compare", "--data", str(cli_data),
                        "--engine", "mnn", "--base", V0, "--head", V1, "--ci-margin", "-1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [
        "harness: error: compare thresholds: ci_margin: got -1.0 (expected a margin >= 0)"]


def test_cli_formats_and_output(cli_data, tmp_path, capsys):
    base = ["compare", "--data", str(cli_data), "--engine", "mnn", "--base", V0, "--head", V1]
    assert _run(base + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["latency"]["slower"] == 1
    out = tmp_path / "r.html"
    assert _run(base + ["--format", "html", "--output", str(out), "--where", "threads=1"]) == 0
    assert "<svg" in out.read_text()
    assert _run(base + ["--format", "markdown", "--resamples", "300"]) == 0
    assert "| model |" in capsys.readouterr().out


def test_cli_bad_input(cli_data):
    base = ["compare", "--data", str(cli_data), "--base", V0, "--head", V1]
    with pytest.raises(InputError, match="not a gate verdict"):
        _run(base + ["--fail-on", "slow"])
    with pytest.raises(InputError, match="COLUMN=VALUE"):
        _run(base + ["--where", "threads"])
    with pytest.raises(DatasetError):
        _run(["compare", "--data", str(cli_data / "nope"), "--base", V0, "--head", V1])
    with pytest.raises(DatasetError):
        _run(["compare", "--data", str(cli_data), "--base", "0.1", "--head", V1])
    with pytest.raises(InputError, match="cv_kind"):
        _run(base + ["--cv-kind", "weird"])


def test_cli_history(tmp_path, capsys):
    rng = np.random.default_rng(20)
    rows = []
    for i in range(10):
        rows += rows_for(model="a", run_id=f"n{i:02d}", sweep_tag="nightly", processes=2,
                         samples=10, median_ms=10.0 if i < 5 else 12.0, t0=T0 + 86400 * i,
                         rng=rng)
        rows += rows_for(model="b", run_id=f"n{i:02d}", sweep_tag="nightly", processes=2,
                         samples=10, t0=T0 + 86400 * i, rng=rng)
    write_dataset(rows, tmp_path)
    assert _run(["history", "--data", str(tmp_path), "--metric", "median_ms",
                 "--tag", "nightly"]) == 0
    out = capsys.readouterr().out
    assert "1 change point" in out and re.search(r"n05 \(3\.4\.0\) \+(19|20)\.\d%", out)
    assert _run(["history", "--data", str(tmp_path), "--all", "--format", "markdown",
                 "--model", "b"]) == 0
    assert "| runs |" in capsys.readouterr().out
    assert _run(["history", "--data", str(tmp_path), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 20
    with pytest.raises(InputError, match="metric"):
        _run(["history", "--data", str(tmp_path), "--metric", "speed"])


# ---- sweeps ------------------------------------------------------------------------------------

def test_compare_with_previous(tmp_path):
    rng = np.random.default_rng(21)
    rows = []
    for i, (run_id, tag, factor) in enumerate([("s1", "nightly", 1.0), ("x1", "adhoc", 3.0),
                                               ("s2", "nightly", 1.0), ("s3", "nightly", 1.2)]):
        rows += rows_for(model="m", run_id=run_id, sweep_tag=tag, median_ms=10 * factor,
                         t0=T0 + 3600 * i, rng=rng)
    write_dataset(rows, tmp_path)
    res = compare_with_previous(tmp_path, "nightly", "s3")
    assert res.base == "s2" and res.head == "s3" and res.dimension == "run_id"
    assert res.pairs["latency"].iloc[0] == "slower"
    assert compare_with_previous(tmp_path, "nightly", "s2").base == "s1"
    assert compare_with_previous(tmp_path, "nightly", "s1") is None
    assert compare_with_previous(tmp_path, "adhoc", "x1") is None
    with pytest.raises(DatasetError):
        compare_with_previous(tmp_path, "nightly", "zzz")
    paths = write_report(res, tmp_path / "_reports" / "s3")
    assert all(p.exists() for p in paths.values())


def test_loaded_run_against_its_relabeled_copy(sample_dataset):
    from harness.results import load
    df = load(sample_dataset)
    runs = df["run_id"].astype(str).unique()
    # one run against itself relabeled: every pair must be identical in correctness
    df2 = df.copy()
    df2["run_id"] = df2["run_id"].astype(str) + "-copy"
    both_runs = pd.concat([df.astype({"run_id": str}), df2])
    res = compare(both_runs, "run_id", runs[0], runs[0] + "-copy", resamples=200)
    assert len(res.pairs) > 0 and set(res.pairs["correctness"]) == {"identical"}
    assert set(res.pairs["latency"]) <= {"same", "insufficient", "unstable"}
