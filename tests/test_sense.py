"""Cool-down, sustained runs and core pinning: their decisions on fake sysfs trees (this
machine has no thermal zones or cpufreq), the suite keys, the schema migration, the side
table, the report section and `compare --dimension cores`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness_agent import cooldown, cores, sustained, sysinfo
from tests.helpers import fake_sysfs

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sysroot(tmp_path, monkeypatch):
    root = tmp_path / "sys"
    root.mkdir()
    monkeypatch.setenv(sysinfo.SYSFS_ENV, str(root))
    return root


# -- sensors under the sysfs root ----------------------------------------------------------------
def test_sensors_are_read_under_the_sysfs_root(sysroot):
    fake_sysfs(sysroot, max_khz={0: 2_400_000, 1: 1_800_000}, cur_khz={0: 2_000_000, 1: 600_000},
               temps_c=[41.5, 57.25], governor="schedutil")
    assert sysinfo.temperatures_c() == [41.5, 57.25]
    assert sysinfo.hottest_c() == 57.25
    assert sysinfo.core_max_khz() == {0: 2_400_000, 1: 1_800_000}
    dyn = sysinfo.dynamic_info()
    assert dyn == {"governor": "schedutil", "temp_max_c": 57.25, "freq_cur_mhz_min": 600.0,
                   "freq_cur_mhz_max": 2000.0, "freq_max_mhz": 2400.0}


def test_no_sensors_reads_as_none(sysroot):
    assert sysinfo.hottest_c() is None and sysinfo.temperatures_c() == []
    assert sysinfo.dynamic_info() == {"governor": None, "temp_max_c": None,
                                      "freq_cur_mhz_min": None, "freq_cur_mhz_max": None,
                                      "freq_max_mhz": None}


# -- core pinning: which cores ----------------------------------------------------------------
def test_cpu_lists_round_trip():
    assert cores.parse_cpu_list("0-3,5") == {0, 1, 2, 3, 5}
    assert cores.format_cpu_list({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert cores.format_cpu_list({3}) == "3"
    for bad in ("3-1", "a", "0,", "", "1-2-3"):
        assert not cores.valid_spec(bad)
        with pytest.raises(ValueError):
            cores.parse_cpu_list(bad)
    assert all(cores.valid_spec(s) for s in ("all", "big", "little", "0", "0-3", "0,2,4-5"))


def test_big_and_little_by_max_frequency(sysroot):
    # a 4+3+1 SoC: the prime core is big, the A55s little, the middle cluster neither
    fake_sysfs(sysroot, max_khz={**{c: 1_800_000 for c in range(4)},
                                 **{c: 2_400_000 for c in range(4, 7)}, 7: 3_000_000})
    big, little, how = cores.clusters(set(range(8)))
    assert (big, little) == ({7}, {0, 1, 2, 3}) and "cpuinfo_max_freq" in how
    assert cores.resolve("little", set(range(8)))[0] == {0, 1, 2, 3}
    # the process may only use cores 0-5: the fastest of those are big
    assert cores.resolve("big", set(range(6)))[0] == {4, 5}


def test_big_and_little_by_cpu_part_ids(sysroot):
    cpuinfo = "".join(f"processor\t: {c}\nCPU part\t: {p}\n\n"
                      for c, p in enumerate(["0xd05"] * 4 + ["0xd41"] * 4))
    parts = sysinfo.cpu_parts(cpuinfo)
    assert parts == {c: (0xd05 if c < 4 else 0xd41) for c in range(8)}
    big, little, how = cores.clusters(set(range(8)), max_khz={}, parts=parts)
    assert (big, little, how) == ({4, 5, 6, 7}, {0, 1, 2, 3}, "CPU part ids")


def test_same_cores_have_no_big_or_little(sysroot):
    fake_sysfs(sysroot, max_khz={0: 2_000_000, 1: 2_000_000})
    with pytest.raises(cores.CoresError, match="every core's cpuinfo_max_freq is 2000 MHz"):
        cores.resolve("big", {0, 1}, parts={})
    with pytest.raises(cores.CoresError, match="no per-core cpufreq"):
        cores.resolve("little", {0, 1}, max_khz={}, parts={})


def test_explicit_lists_keep_what_exists():
    cpus, how = cores.resolve("1-3", {0, 1})
    assert cpus == {1} and how == "explicit list (2-3 not available)"
    with pytest.raises(cores.CoresError, match="cores 4-7: none of them is available"):
        cores.resolve("4-7", {0, 1})
    assert cores.resolve("all", {0, 1}) == ({0, 1}, "all CPUs this process may use")


PIN = """
import json, os, sys, threading
from harness_agent import cores
start = os.sched_getaffinity(0)
res = cores.pin(sys.argv[1], int(sys.argv[2]))
t = threading.Thread(target=lambda: None); t.start(); t.join()
res["affinity"] = sorted(os.sched_getaffinity(0))
res["escaped"] = cores.escaped(res["cpu_mask"])
# a thread that keeps another mask (as one started before the pinning would) is named
os.sched_setaffinity(0, start)
res["escaped_after"] = cores.escaped(res["cpu_mask"])
print(json.dumps(res))
"""


def _pin(spec: str, threads: int, env=None) -> dict:
    out = subprocess.run([sys.executable, "-c", PIN, spec, str(threads)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs")
def test_pin_to_one_core_reads_the_mask_back():
    first = min(os.sched_getaffinity(0))
    res = _pin(str(first), 2)
    assert res["cpu_mask"] == str(first) and res["cpu_mask_cores"] == 1
    assert res["affinity"] == [first] and res["escaped"] is None
    everything = cores.format_cpu_list(os.sched_getaffinity(0))
    assert res["escaped_after"] == (f"threads outside the pinned cores {first}: 1 thread on "
                                    f"{everything}")
    assert res["notes"] == [f"2 threads on 1 core ({first}): threads share cores"]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs")
def test_pin_big_on_a_fake_big_little_tree(tmp_path):
    a, b = sorted(os.sched_getaffinity(0))[:2]
    root = fake_sysfs(tmp_path / "sys", max_khz={a: 2_000_000, b: 1_000_000})
    env = {sysinfo.SYSFS_ENV: str(root)}
    assert _pin("big", 1, env)["cpu_mask"] == str(a)
    assert _pin("little", 1, env)["cpu_mask"] == str(b)


# -- cool-down decisions --------------------------------------------------------------------------
class FakeTime:
    """A clock and sleep: sleeping advances the clock and may run a callback (the device
    cooling down while the agent waits)."""

    def __init__(self, on_sleep=None):
        self.t = 100.0
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s
        if self.on_sleep:
            self.on_sleep(self.t)


def test_nothing_asked_waits_nothing(sysroot):
    ft = FakeTime()
    res = cooldown.cool_down(None, clock=ft.clock, sleep=ft.sleep)
    assert res["cooldown"] == "none" and res["cooldown_wait_s"] == 0 and ft.slept == []


def test_fixed_pause(sysroot):
    fake_sysfs(sysroot, temps_c=[50.0])
    ft = FakeTime()
    res = cooldown.cool_down({"pause_s": 5.0}, clock=ft.clock, sleep=ft.sleep)
    assert ft.slept == [5.0]
    assert res == {"cooldown": "pause", "cooldown_wait_s": 5.0, "cooldown_temp_before_c": 50.0,
                   "cooldown_temp_after_c": 50.0, "cooldown_target_c": None}


def test_waits_until_within_n_degrees_of_the_sweep_start(sysroot):
    # starts at 70 °C, cools 2 °C per second; the sweep started at 45 °C; within 5 °C: <= 50
    fake_sysfs(sysroot, temps_c=[40.0, 70.0])
    ft = FakeTime(on_sleep=lambda t: fake_sysfs(sysroot, temps_c=[40.0, 70.0 - 2 * (t - 102)]))
    res = cooldown.cool_down({"pause_s": 2.0, "to_c": 5.0, "max_s": 60.0, "baseline_c": 45.0},
                             clock=ft.clock, sleep=ft.sleep)
    assert res["cooldown"] == "reached" and res["cooldown_target_c"] == 50.0
    assert res["cooldown_temp_before_c"] == 70.0 and res["cooldown_temp_after_c"] == 50.0
    assert res["cooldown_wait_s"] == 12.0  # the pause, then 10 one-second polls
    assert ft.slept == [2.0] + [1.0] * 10


def test_gives_up_after_the_maximum_wait(sysroot):
    fake_sysfs(sysroot, temps_c=[80.0])
    ft = FakeTime()
    res = cooldown.cool_down({"to_c": 3.0, "max_s": 7.5, "baseline_c": 40.0, "poll_s": 2.0},
                             clock=ft.clock, sleep=ft.sleep)
    assert res["cooldown"] == "max_wait" and res["cooldown_wait_s"] == 7.5
    assert ft.slept == [2.0, 2.0, 2.0, 1.5] and res["cooldown_temp_after_c"] == 80.0


def test_already_cool_does_not_wait(sysroot):
    fake_sysfs(sysroot, temps_c=[44.0])
    ft = FakeTime()
    res = cooldown.cool_down({"to_c": 3.0, "max_s": 60, "baseline_c": 42.0},
                             clock=ft.clock, sleep=ft.sleep)
    assert res["cooldown"] == "reached" and ft.slept == [] and res["cooldown_wait_s"] == 0


def test_no_sensor_says_so_and_the_pause_applies(sysroot):
    ft = FakeTime()
    res = cooldown.cool_down({"pause_s": 3.0, "to_c": 3.0, "max_s": 60, "baseline_c": None},
                             clock=ft.clock, sleep=ft.sleep)
    assert res["cooldown"] == "pause_no_sensor" and ft.slept == [3.0]
    assert res["cooldown_temp_before_c"] is None and res["cooldown_target_c"] is None


# -- sustained runs ------------------------------------------------------------------------------
def _fake_run(seconds: float, latency_s, sensors=None):
    """sustained.run on a fake clock: each run takes latency_s(t) seconds."""
    now = [0]

    def clock() -> int:
        return now[0]

    def run_once():
        now[0] += int(latency_s(now[0] / 1e9) * 1e9)
        return "out"

    return sustained.run(run_once, seconds, read=sensors or (lambda: {"temp_max_c": None}),
                         clock=clock)


def test_windows_of_a_second_with_sensors():
    reads = iter(range(1000))
    windows, total, last, elapsed = _fake_run(
        10.0, lambda t: 0.1, sensors=lambda: {"temp_max_c": 40.0 + next(reads),
                                             "freq_cur_mhz_min": 1000.0,
                                             "freq_cur_mhz_max": 2000.0})
    assert len(windows) == 10 and total == 100 and last == "out"
    assert [w["iterations"] for w in windows] == [10] * 10
    assert windows[0]["latency_ms"] == pytest.approx(100.0)
    assert [w["temp_max_c"] for w in windows[:3]] == [40.0, 41.0, 42.0]
    assert windows[-1]["t_s"] == pytest.approx(10.0) and elapsed == pytest.approx(10e9)


def test_a_model_slower_than_a_second_gets_a_window_per_run():
    windows, total, _, _ = _fake_run(6.0, lambda t: 2.5)
    assert total == 3 and [w["iterations"] for w in windows] == [1, 1, 1]


def test_throttle_ratio_last_minute_over_first():
    # 10 ms for the first 4 minutes, then 15 ms: a 600 s run throttled by 1.5
    windows, _, _, _ = _fake_run(600.0, lambda t: 0.010 if t < 240 else 0.015)
    ratio, span = sustained.throttle_ratio(windows, 600.0)
    assert span == 60.0 and ratio == pytest.approx(1.5, rel=1e-3)


def test_throttle_ratio_of_short_runs_uses_quarters():
    windows, _, _, _ = _fake_run(60.0, lambda t: 0.010 if t < 40 else 0.012)
    ratio, span = sustained.throttle_ratio(windows, 60.0)
    assert span == 15.0 and ratio == pytest.approx(1.2, rel=1e-3)
    assert sustained.throttle_ratio([], 60.0) == (None, None)


# -- suite keys, plan, jobs ----------------------------------------------------------------------
def _suite(extra: dict):
    from harness.config.suite import parse_suite
    data = {"engines": {"mnn": "installed"},
            "models": [{"name": "r", "builtin": "reduction_sum_block"}], **extra}
    return parse_suite(data, "s.toml", ROOT)


def test_suite_keys():
    s = _suite({"cores": ["all", 0, "2-3", "big"],
                "measure": {"cooldown_s": 2, "cooldown_to_c": 3, "cooldown_max_s": 30,
                            "sustained_s": 60, "timeout_s": 100}})
    assert s.cores == ("all", "0", "2-3", "big")
    m = s.measure
    assert (m.cooldown_s, m.cooldown_to_c, m.cooldown_max_s, m.sustained_s) == (2, 3, 30, 60)
    assert m.agent_timeout_s() == 100 + 2 + 30 + 60
    assert _suite({}).cores == ("all",) and _suite({}).measure.sustained_s is None


@pytest.mark.parametrize("extra, message", [
    ({"cores": "fast"}, "s.toml: cores: got 'fast' (expected all, big, little or a CPU list"),
    ({"cores": ["3-1"]}, "s.toml: cores: got '3-1'"),
    ({"measure": {"sustained_s": 0}}, "s.toml: measure.sustained_s: got 0.0 (expected a "
                                      "value >= 1)"),
    ({"measure": {"cooldown_to_c": -1}}, "measure.cooldown_to_c: got -1.0"),
    ({"measure": {"cooldown": 5}}, "measure.cooldown: unknown key"),
])
def test_suite_key_errors(extra, message):
    from harness.errors import InputError
    with pytest.raises(InputError) as e:
        _suite(extra)
    assert message in str(e.value)


def test_cores_is_a_dimension_of_the_plan():
    from harness.plan import Config, expand
    s = _suite({"cores": ["all", "0"], "threads": [1, 2]})
    configs = expand(s)
    assert [(c.threads, c.cores) for c in configs] == [(1, "all"), (1, "0"), (2, "all"),
                                                       (2, "0")]
    # unpinned series keep the ids they had before core pinning existed
    old = Config("r", "mnn", "installed", "cpu", "fp32", 1, 0)
    from harness.cache import sha256_text
    assert old.series == sha256_text("local", "r", "mnn", "installed", "cpu", "fp32", "1")[:16]
    assert Config("r", "mnn", "installed", "cpu", "fp32", 1, 0, cores="0").series != old.series


# -- schema: version 3 and the migration ----------------------------------------------------------
def test_version_2_files_migrate_to_unpinned_rows_without_cooldown(tmp_path):
    from harness.compare.synthetic import rows_for
    from harness.results import load
    from harness.store.schema import SCHEMA_VERSION, VERSION_KEY, to_table
    assert SCHEMA_VERSION >= 3  # version 2 files upgrade through every later layout
    rows = rows_for(processes=2, samples=5)
    new = {"cores_requested", "cpu_mask", "cpu_mask_cores", "core_hint", "cooldown",
           "cooldown_wait_s", "cooldown_temp_before_c", "cooldown_temp_after_c",
           "cooldown_target_c", "sustained_s", "throttle_ratio", "throttle_window_s"}
    table = to_table(rows)
    table = table.drop_columns(sorted(new))
    table = table.set_column(table.column_names.index("schema_version"), "schema_version",
                             pa.array([2, 2], type=pa.int64()))
    table = table.replace_schema_metadata({VERSION_KEY: b"2"})
    path = tmp_path / "date=2026-05-28" / "engine=mnn" / "part-old.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    df = load(tmp_path)
    assert list(df["cores_requested"].astype(str)) == ["all", "all"]
    assert list(df["cooldown"].astype(str)) == ["none", "none"]
    assert df["cpu_mask"].isna().all() and df["throttle_ratio"].isna().all()
    assert list(df["schema_version"]) == [2, 2]


# -- the sustained side table and its report section ------------------------------------------
def _sustained_row(run_id="R1", series="s1", process=0, **kw):
    return {"run_id": run_id, "host": "local", "series": series, "process": process,
            "model": "r", "engine": "mnn", "engine_version": "3.6.1", "backend": "cpu",
            "precision": "fp32", "threads": 2, "cores_requested": "0", "cpu_mask": "0", **kw}


def _windows(n=8, temps=True):
    return [{"t_s": i + 1.0, "latency_ms": 1.0 + 0.01 * i, "iterations": 100,
             "temp_max_c": 40.0 + i if temps else None,
             "freq_cur_mhz_min": 1000.0 if temps else None,
             "freq_cur_mhz_max": 2000.0 if temps else None} for i in range(n)]


def test_side_table_one_file_per_run_keyed_by_the_row(tmp_path):
    from harness.store.tables import SustainedWriter, read_sustained, sustained_path
    w = SustainedWriter(tmp_path, "R1")
    w.add(_sustained_row(process=0), _windows(3))
    w.add(_sustained_row(process=1), _windows(4, temps=False))
    # a resumed run reopens the file; a series measured again replaces its windows
    SustainedWriter(tmp_path, "R1").add(_sustained_row(process=0), _windows(2))
    df = read_sustained(tmp_path, "R1")
    assert sorted(df.groupby("process").size().items()) == [(0, 2), (1, 4)]
    assert df[df.process == 1]["temp_max_c"].isna().all()
    assert sustained_path(tmp_path, "R1") == tmp_path / "_sustained" / "R1.parquet"
    assert read_sustained(tmp_path, "other").empty


def test_report_section_plots_latency_temperature_frequency():
    import pandas as pd
    from harness.compare.sustained import section
    from harness.store.tables import sustained_records
    recs = (sustained_records(_sustained_row(series="a"), _windows())
            + sustained_records(_sustained_row(series="b"), _windows(temps=False)))
    html = section(pd.DataFrame(recs), {("R1", "local", "a", 0): (1.07, 15.0)})
    assert html.count("<h3>") == 2 and "throttling factor 1.070 (windows of 15 s)" in html
    assert html.count("<svg") == 4  # a: latency, temperature, frequency; b: latency only
    assert "no thermal zone was readable" in html and "no cpufreq was readable" in html
    assert "cores 0 (mask 0)" in html and 'aria-label="CPU frequency"' in html


# -- compare --dimension cores ---------------------------------------------------------------------
def test_compare_dimension_cores(tmp_path, capsys):
    from harness.cli import main
    from harness.compare.synthetic import rows_for, write_dataset
    rng = np.random.default_rng(3)
    rows = []
    for spec, mask, ms in (("big", "4-7", 10.0), ("little", "0-3", 25.0)):
        for threads in (1, 2):
            rows += rows_for(cores_requested=spec, cpu_mask=mask, threads=threads,
                             median_ms=ms, rng=rng)
    write_dataset(rows, tmp_path)
    code = main(["compare", "--dimension", "cores", "--base", "big", "--head", "little",
                 "--data", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["dimension"] == "cores_requested"
    assert len(out["pairs"]) == 2
    assert {p["latency"]["verdict"] for p in out["pairs"]} == {"slower"}


def test_sweep_report_carries_the_sustained_section(tmp_path):
    from harness.compare import compare, write_report
    from harness.compare.synthetic import frame, rows_for
    rng = np.random.default_rng(5)
    rows = (rows_for(run_id="A", rng=rng) + rows_for(run_id="B", rng=rng))
    res = compare(frame(rows), "run_id", "A", "B")
    paths = write_report(res, tmp_path / "nightly-B", extra_html="<h2>Sustained runs</h2>")
    html = paths["html"].read_text()
    assert html.index("<h2>Sustained runs</h2>") < html.index("</body>")


def test_cores_flag_of_adhoc_runs():
    from harness.config.flags import SuiteFlags, suite_from_flags
    suite, data = suite_from_flags(SuiteFlags(model="reduction_sum_block", engine="mnn",
                                              cores=["0", "0,1"]))
    assert data["cores"] == ["0", "0,1"] and suite.cores == ("0", "0,1")


def test_cores_a_machine_lacks_make_an_unsupported_row():
    from harness_agent.__main__ import record_failure
    res = {"phase": "pin"}
    record_failure(res, cores.CoresError("no big.LITTLE cores on this machine (every core's "
                                         "cpuinfo_max_freq is 2000 MHz)"))
    assert res["status"] == "unsupported" and res["error"].startswith("no big.LITTLE cores")
