"""CI output: the gate's reasons, JUnit XML (`--junit`), the Markdown job summary
(`--summary`) and the gate in the JSON report, from synthetic datasets with known verdicts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from harness.cli import main
from harness.compare import compare
from harness.compare.gate import evaluate
from harness.compare.junit import to_junit
from harness.compare.synthetic import frame, rows_for, write_dataset

pytestmark = pytest.mark.unit

HEAD_RUN = "20260529T000000Z-000002"


def _rows():
    """a: 20 % slower; b: wrong outputs on head; c: measured on base only; d: the same."""
    rng = np.random.default_rng(3)
    rows = []
    for model, base_kw, head_kw in (
            ("a", {"median_ms": 10.0}, {"median_ms": 12.0}),
            ("b", {"median_ms": 5.0}, {"median_ms": 5.0, "out_rel_err": 0.5, "out_cosine": 0.2}),
            ("d", {"median_ms": 7.0}, {"median_ms": 7.0})):
        rows += rows_for(model=model, engine_version="3.4.0", rng=rng, **base_kw)
        rows += rows_for(model=model, engine_version="3.6.1", run_id=HEAD_RUN, rng=rng,
                         **head_kw)
    rows += rows_for(model="c\x1b[31m", engine_version="3.4.0", rng=rng)
    return rows


def _result():
    return compare(frame(_rows()), "engine_version", "3.4.0", "3.6.1")


def _cases(xml_text: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml_text.encode())
    return {c.get("name"): c for c in root.iter("testcase")}


def test_gate_counts_each_gated_verdict_and_says_why():
    g = evaluate(_result(), "slower,wrong,missing")
    assert not g.passed and g.exit_code == 1
    assert g.verdicts == {"slower": 1, "wrong": 1, "missing": 1}
    assert g.reasons() == ["1 pair missing", "1 pair slower", "1 pair wrong"]
    assert "gate FAILED (exit 1, --fail-on missing,slower,wrong)" in g.line("compare")
    assert evaluate(_result(), "larger").passed


def test_gate_counts_a_runs_failed_configurations_once_by_worst_status():
    rows = rows_for(model="m", processes=3, status=["ok", "timeout", "error"])
    rows += rows_for(model="n", processes=2, out_rel_err=0.9, out_cosine=0.1)
    rows += rows_for(model="o", processes=2)
    g = evaluate(None, "slower", rows)
    assert g.run_failed == {"error": 1, "wrong": 1} and g.configurations == 3
    assert g.reasons() == ["run: 2 of 3 configurations failed (1 error, 1 wrong)"]


def test_junit_has_the_schema_fields_and_fails_exactly_the_gated_pairs():
    res = _result()
    text = to_junit(evaluate(res, "slower,wrong"), res)
    root = ET.fromstring(text.encode())  # control characters in names made parseable
    suite = root.find("testsuite")
    assert suite.get("name") and int(suite.get("tests")) == 4
    assert (int(suite.get("failures")), int(suite.get("skipped"))) == (2, 1)
    for case in root.iter("testcase"):
        assert case.get("name") and case.get("classname") == "harness.compare.engine_version"
    cases = _cases(text)
    assert cases["model=a"].find("failure").get("type") == "slower"
    ratio = res.pairs.set_index("model").loc["a", "ratio"]
    assert f"ratio {ratio:.3f}" in cases["model=a"].find("failure").get("message")
    assert cases["model=b"].find("failure").get("type") == "wrong"
    assert cases["model=d"].find("failure") is None
    assert "latency same" in cases["model=d"].find("system-out").text
    assert cases[r"model=c\x1b[31m"].find("skipped") is not None  # missing, not gated
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["engine"] == "mnn" and props["threads"] == "1"


def test_cli_compare_writes_junit_summary_and_json_gate(tmp_path, capsys):
    data = tmp_path / "results"
    write_dataset(_rows(), data)
    junit, summary, js = tmp_path / "ci" / "junit.xml", data / "summary.md", tmp_path / "c.json"
    code = main(["compare", "--data", str(data), "--base", "3.4.0", "--head", "3.6.1",
                 "--fail-on", "slower,missing", "--junit", str(junit), "--summary",
                 str(summary), "--json", "--output", str(js)])
    assert code == 1
    err = capsys.readouterr().err
    assert "gate FAILED (exit 1, --fail-on missing,slower): 1 pair missing; 1 pair slower" in err
    cases = _cases(junit.read_text())
    assert cases["model=a"].find("failure").get("type") == "slower"
    assert cases[r"model=c\x1b[31m"].find("failure").get("type") == "missing"
    assert cases["model=b"].find("failure") is None  # wrong is not gated here
    md = summary.read_text()
    assert md.startswith("## compare engine_version: 3.4.0 → 3.6.1: gate FAILED")
    assert "- 1 pair slower" in md and "### Failing pairs (1)" in md and "\x1b" not in md
    gate = json.loads(js.read_text())["gate"]
    assert gate["passed"] is False and gate["reasons"] == ["1 pair missing", "1 pair slower"]
    # the summary file written into the dataset directory does not break reading it
    assert main(["compare", "--data", str(data), "--base", "3.4.0", "--head", "3.6.1"]) == 0


def test_unwritable_junit_path_is_one_line(tmp_path, capsys):
    data = tmp_path / "results"
    write_dataset(_rows(), data)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["compare", "--data", str(data), "--base", "3.4.0", "--head", "3.6.1",
                 "--junit", str(blocker / "junit.xml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("harness: error: --junit ")
    assert "Traceback" not in err[0]
