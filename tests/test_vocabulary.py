"""One status vocabulary, one latency statistic, one tolerance check: every place agrees."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.diagnose.run import side_by_side_row
from harness.plan import Config
from harness.rows import RunContext, make_row
from harness.stats import latency_stats, quantile
from harness.status import FAILED, MEASURED, RETRY, SEVERITY, Status, Verdict, worst
from harness.summary import summarize
from harness.verdict import output_verdict, tolerance_for, within

pytestmark = pytest.mark.unit

SAMPLES = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


def _row(status="ok", latency=SAMPLES, **kw):
    cfg = Config("m", "mnn", "installed", "cpu", "fp32", 1, 0)
    res = {"status": status, "latency_ms": list(latency), "backend": "cpu", "precision": "fp32",
           "engine_version": "1", "has_reference": True, "out_cosine": 1.0, "out_rel_err": 0.0,
           **kw}
    return make_row(RunContext("r", "s"), cfg, res)


def test_p90_of_1_to_7_is_the_same_in_row_summary_diagnose_and_numpy():
    row = _row()
    summary = summarize([row]).iloc[0]
    side = side_by_side_row("original", {"status": "ok", "latency_ms": SAMPLES}, "")
    assert row["p90_ms"] == summary["p90_ms"] == side["p90_ms"] == pytest.approx(6.4)
    assert row["median_ms"] == summary["median_ms"] == side["median_ms"] == 4.0
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 30, 101):
        x = rng.exponential(size=n).tolist()
        assert quantile(x, 0.9) == pytest.approx(float(np.quantile(x, 0.9)))
        assert latency_stats(x)["median_ms"] == pytest.approx(float(np.median(x)))


def test_summary_ranks_infrastructure_statuses_above_ok():
    for bad in ("host_busy", "corrupt", "host_error", "unreachable", "timeout"):
        rows = [_row(), _row(status=bad, latency=[])]
        rows[1]["process"] = 1
        assert summarize(rows).iloc[0]["verdict"] == bad, bad
    assert worst(["ok", "host_busy"]) == "host_busy"
    assert worst(["no-ref", "wrong", "ok"]) == "wrong"
    assert worst([]) == "" and worst([None, float("nan")]) == ""


def test_vocabulary_sets():
    assert MEASURED == {Status.OK, Status.FALLBACK} and "ok" in MEASURED
    assert RETRY == {"unreachable", "host_busy", "host_error"}
    assert Status.UNSUPPORTED not in FAILED and Status.CORRUPT in FAILED
    assert not (MEASURED & FAILED)
    # every status and verdict has a place in the one order, and no value appears twice
    assert len(SEVERITY) == len(set(SEVERITY))
    assert {str(s) for s in Status} | {str(v) for v in Verdict} == set(SEVERITY)
    assert SEVERITY.index("wrong") < SEVERITY.index("host_busy") < SEVERITY.index("ok")


def test_one_tolerance_check():
    fp32, fp16 = tolerance_for("fp32"), tolerance_for("fp16")
    assert within({"rel_err": 1e-4, "cosine": 0.99999}, fp32) == (True, "within tolerance")
    ok, why = within({"rel_err": 5e-3, "cosine": 0.99999}, fp32)
    assert not ok and "rel err" in why
    assert within({"rel_err": 5e-3, "cosine": 0.99999}, fp16)[0]
    for bad in ({"rel_err": None, "cosine": 1.0}, {"rel_err": 0.0, "cosine": None},
                {"rel_err": math.nan, "cosine": 1.0}, {"rel_err": math.inf, "cosine": 1.0}):
        assert not within(bad, fp32)[0], bad
    assert within({"cosine": 0.995}, tolerance_for("int8"))[0]
    assert tolerance_for(None) == tolerance_for("no-such") == fp32
    assert output_verdict(_row(out_rel_err=2e-3)) == "wrong"
    assert output_verdict(_row()) == "ok"


def test_outputs_that_are_all_tiny_are_judged_on_the_absolute_floor():
    """PP-OCR det at 320x320 on a seeded random input: a sigmoid map ~0 everywhere (max 5.9e-5);
    MNN 3.6.1 fp32 differed from onnxruntime by 1.27e-7 at most, which read as rel_err 0.00215
    and cosine 0.99985 and made a correct engine `wrong`."""
    fp32, int8 = tolerance_for("fp32"), tolerance_for("int8")
    det = {"rel_err": 0.0021531915567951317, "cosine": 0.9998542628453421,
           "max_abs_err": 1.2654345482587814e-07}
    assert not within({k: v for k, v in det.items() if k != "max_abs_err"}, fp32)[0]
    ok, why = within(det, fp32)
    assert ok and "max abs err 1.27e-07 <= 1e-05" in why
    # above the floor the relative bounds judge; int8 has no floor (cosine only)
    assert not within({**det, "max_abs_err": 2e-5}, fp32)[0]
    assert not within({**det, "cosine": 0.5}, int8)[0]
    for bad in (math.nan, math.inf, None):  # no figure is no pass
        assert not within({**det, "max_abs_err": bad}, fp32)[0]
    assert output_verdict(_row(out_rel_err=det["rel_err"], out_cosine=det["cosine"],
                               out_max_abs_err=det["max_abs_err"])) == "ok"


def test_each_output_is_judged_on_its_own():
    """A tiny output that passes by the floor beside a large one that passes relatively: the
    row's worst figures (cosine of one, max abs error of the other) would fail both tests."""
    import json
    tiny = {"name": "prob", "max_abs_err": 1e-7, "rel_err": 2e-3, "cosine": 0.9998}
    big = {"name": "boxes", "max_abs_err": 1e-3, "rel_err": 1e-5, "cosine": 0.9999999}
    worst = dict(out_rel_err=2e-3, out_cosine=0.9998, out_max_abs_err=1e-3)
    assert output_verdict(_row(**worst)) == "wrong"  # no per-output figures: worst only
    assert output_verdict(_row(**worst, outputs_json=json.dumps([tiny, big]))) == "ok"
    bad = dict(big, rel_err=5e-3, cosine=0.999)
    assert output_verdict(_row(**worst, outputs_json=json.dumps([tiny, bad]))) == "wrong"


def test_layer_name_matching_has_no_floor():
    # two different tensors of tiny values would both sit within any absolute floor
    from harness_agent.layers import MATCH
    assert MATCH.abs_err is None and MATCH.cosine == tolerance_for("fp32").cosine
    assert not within({"rel_err": 0.5, "cosine": 0.2, "max_abs_err": 1e-9}, MATCH)[0]


def test_the_curated_library_api():
    import harness
    for name in harness.__all__:
        assert getattr(harness, name) is not None, name
    with pytest.raises(AttributeError):
        harness.nothing_here  # noqa: B018


def test_identical_outputs_prove_fp32():
    from harness.evidence import fp32_by_output
    base = {"host": "local", "model": "m", "model_sha256": "s", "input_key": "k",
            "engine": "mnn", "engine_version": "3", "backend": "cpu", "threads": 1,
            "status": "ok", "has_reference": True, "out_cosine": 1.0, "out_rel_err": 0.0}
    rows = [dict(base, precision_requested="fp32", precision="fp32", out_sha256="A"),
            dict(base, precision_requested="fp16", precision="fp16", out_sha256="A"),
            dict(base, precision_requested="fp16", precision="fp16", out_sha256="B",
                 threads=2),  # no fp32 sibling: the engine's word stands
            dict(base, precision_requested="fp16", precision="fp16-storage",
                 out_sha256="C")]  # outputs differ: reduced precision is real
    fixed = fp32_by_output(rows)
    assert len(fixed) == 1
    assert (fixed[0]["precision"], fixed[0]["status"]) == ("fp32", "fallback")
    assert "bit-identical to the fp32 row" in fixed[0]["notes"]


def test_a_failed_host_worker_is_infrastructure_with_its_cause():
    from harness.coordinator import worker_failure

    class RayTaskError(Exception):  # the shape of Ray's: a coloured traceback and a cause
        def __init__(self, cause):
            super().__init__("\x1b[36mray::HostWorker.measure()\x1b[39m\n  File ...\n" * 20)
            self.cause = cause

    text = worker_failure(RayTaskError(OSError("No space left on device")))
    assert text == "OSError: No space left on device"
    assert worker_failure(ValueError("\x1b[31mboom\x1b[0m")) == "ValueError: boom"
