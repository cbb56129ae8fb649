"""Scheduled sweeps and version comparison with real MNN versions (provisioned locally).

MNN 3.0.0 kept ConvTranspose's k·k·featuremap work buffer; later versions do not, so the
steady-state peak of the upsampler micro-model is smaller from 3.2 on, by roughly that buffer
(64 MiB at 4×4×64×128×128 fp32) at 1 thread, less as threads add per-thread buffers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

pytestmark = [pytest.mark.engines, pytest.mark.slow]

SUITE = """
name = "versions"
engines = { mnn = ["3.0.0", "3.6.1"] }
threads = [1, 2, 4]
[measure]
warmup = 1
min_iterations = 15
min_seconds = 0.0
processes = 2
[[models]]
name = "upsampler"
builtin = "convtranspose_upsampler"
"""


def _harness(*args):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, timeout=600)


def test_sweep_twice_then_compare_versions(tmp_path):
    suite = tmp_path / "versions.toml"
    suite.write_text(SUITE)
    out = tmp_path / "results"
    first = _harness("sweep", str(suite), "--tag", "nightly", "--data", str(out),
                     "--no-progress", "--fail-on", "wrong")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "first run of this tag" in first.stdout
    second = _harness("sweep", str(suite), "--tag", "nightly", "--data", str(out),
                      "--no-progress", "--fail-on", "wrong", "--junit",
                      str(tmp_path / "junit.xml"), "--summary", str(tmp_path / "summary.md"))
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "sweep nightly: gate passed (--fail-on wrong)" in second.stdout
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    suites = {s.get("name").split()[0]: s for s in junit.iter("testsuite")}
    assert int(suites["run"].get("tests")) == 6 and suites["run"].get("failures") == "0"
    assert int(suites["compare"].get("tests")) == 6 and junit.get("failures") == "0"
    assert (tmp_path / "summary.md").read_text().startswith("## sweep nightly ")
    reports = sorted((out / "_reports").glob("nightly-*.json"))
    assert len(reports) == 1 and (out / "_reports" / (reports[0].stem + ".html")).exists()
    df = pd.read_parquet(out)
    runs = df.sort_values("started_at").run_id.unique()
    assert len(runs) == 2 and set(df.sweep_tag) == {"nightly"}
    rep = json.loads(reports[0].read_text())
    assert rep["gate"]["passed"] is True and rep["gate"]["configurations"] == 6
    text = json.dumps(rep)
    assert runs[0] in text and runs[1] in text  # the second sweep compared to the first

    # version comparison over both sweeps: per thread count, per phase RSS and latency verdicts
    cmp_ = _harness("compare", "--data", str(out), "--engine", "mnn", "--base", "3.0.0",
                    "--head", "3.6.1", "--json")
    assert cmp_.returncode == 0, cmp_.stderr
    res = json.loads(cmp_.stdout)
    pairs = res["pairs"]
    assert sorted(p["key"]["threads"] for p in pairs) == [1, 2, 4]
    by_t = {p["key"]["threads"]: p for p in pairs}
    assert by_t[1]["memory"]["steady"]["verdict"] == "smaller"
    assert by_t[1]["memory"]["steady"]["delta_kb"] < -32 * 1024  # the work buffer went away
    assert by_t[1]["memory"]["load"]["verdict"] == "same"
    for p in pairs:
        assert set(p["memory"]) >= {"load", "first", "steady"}
        assert p["latency"]["base"]["n"] >= 30 and p["latency"]["head"]["n"] >= 30
        assert p["latency"]["verdict"] in ("same", "slower", "faster", "unstable")
        assert p["correctness"]["verdict"] in ("identical", "ok")


def test_a_failing_sweep_says_why_it_exits_1(tmp_path):
    """A first sweep whose one configuration times out: exit 1, and the last line names it;
    the JUnit file fails that configuration with its status."""
    suite = tmp_path / "slow.toml"
    suite.write_text('name = "slow"\nengines = { onnxruntime = "installed" }\nthreads = [1]\n'
                     "[measure]\nwarmup = 0\nmin_iterations = 100000000\nmin_seconds = 60\n"
                     "processes = 1\ntimeout_s = 2\n"
                     '[[models]]\nname = "m"\nbuiltin = "reduction_sum_block"\n')
    res = _harness("sweep", str(suite), "--tag", "t", "--data", str(tmp_path / "r"),
                   "--no-progress", "--junit", str(tmp_path / "j.xml"))
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    last = res.stdout.strip().splitlines()[-1]
    assert last == ("sweep t: gate FAILED (exit 1, --fail-on larger,slower,wrong): "
                    "run: 1 of 1 configuration failed (1 timeout)"), last
    case = ET.parse(tmp_path / "j.xml").getroot().find("testsuite/testcase")
    assert case.find("failure").get("type") == "timeout"
