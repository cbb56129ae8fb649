"""The background load the agent records beside each timed loop (harness_agent.cpuload):
its arithmetic on /proc text, and a real competing process seen on this machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from harness_agent import cpuload
from harness_agent.cpuload import CpuLoad, busy_ticks, contention, own_ticks

pytestmark = pytest.mark.unit

STAT = """cpu  900 10 300 5000 40 0 7 3 0 0
cpu0 100 1 50 2000 10 0 2 1 0 0
cpu1 200 2 60 1000 20 0 3 2 50 0
cpu12 5 0 5 100 0 0 0 0 0 0
intr 1 2 3
"""


def test_busy_ticks_sum_the_busy_columns_of_the_named_cpus_only():
    # user nice system irq softirq steal; idle and iowait are not busy, guest is inside user
    assert busy_ticks([0], STAT) == 100 + 1 + 50 + 0 + 2 + 1
    assert busy_ticks([0, 1], STAT) == 154 + (200 + 2 + 60 + 0 + 3 + 2)
    assert busy_ticks([1, 2], STAT) == 267  # "cpu12" is not cpu1 or cpu2
    assert busy_ticks([7], STAT) is None     # no such CPU: unknown, not zero


def test_own_ticks_count_from_the_last_parenthesis():
    # a command name with spaces and a ")" must not shift the fields
    fields = ["S", "1", "1", "1", "0", "-1", "4194304", "10", "0", "0", "0", "70", "30"]
    text = "4242 (a) b (c) %s 0 0 20 0 3 0 1\n" % " ".join(fields)
    assert own_ticks(text) == 100
    assert own_ticks("4242 (short)") is None


@pytest.mark.parametrize("other,cpus,threads,expected", [
    (1.0, 2, 1, 0.0),     # one thread, one CPU left for the other load: no contention
    (0.2, 2, 2, 0.1),     # two threads on two CPUs: all of it comes out of their share
    (1.5, 2, 1, 0.5),     # more than the spare CPU: the rest is the thread's
    (1.58, 2, 4, 0.79),   # oversubscribed: four threads can use two cores, others held 79 %
    (0.0, 4, 2, 0.0),
])
def test_contention_is_the_load_beyond_the_spare_cpus_per_thread(other, cpus, threads,
                                                                  expected):
    assert contention(other, cpus, threads) == pytest.approx(expected)


def test_a_window_too_short_to_count_gives_no_figure(monkeypatch):
    monkeypatch.setattr(cpuload, "MIN_TICKS_PER_CPU", 10 ** 9)
    load = CpuLoad(1)
    load.start()
    assert load.end() == {"cpu_other_load": None, "cpu_contention": None}
    assert CpuLoad(1).end() == {"cpu_other_load": None, "cpu_contention": None}  # never started


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc")
def test_a_competing_process_on_the_measuring_cpu_is_seen():
    """A real busy process pinned to the one CPU this window measures: about a core of other
    load (this process sleeps), all of it out of a one-thread measurement's share."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    hog = subprocess.Popen(
        [sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
    old = os.sched_getaffinity(0)
    try:
        time.sleep(0.3)  # the interpreter is up and spinning
        os.sched_setaffinity(0, {cpu})
        load = CpuLoad(1)
        load.start()
        time.sleep(1.0)
        got = load.end()
    finally:
        os.sched_setaffinity(0, old)
        hog.kill()
        hog.wait()
    assert load.cpus == (cpu,)
    assert got["cpu_other_load"] > 0.6, got
    assert got["cpu_contention"] == pytest.approx(got["cpu_other_load"]), got


def test_the_run_footer_says_which_rows_shared_their_cpus_and_which_were_not_looked_at(
        capsys, tmp_path):
    from types import SimpleNamespace

    from harness.cli.run import run_footer

    def row(model, contention, status="ok"):
        return {"model": model, "engine": "ncnn", "threads": 2, "host": "local",
                "status": status, "cpu_contention": contention, "verdict": "ok"}
    rows = [row("busy", 0.12), row("quiet", 0.01), row("short", None),
            row("failed", None, status="timeout")]
    rep = SimpleNamespace(rows=rows, run_id="R", wall_s=1.0, files=[])
    run_footer(rep, tmp_path)
    out = capsys.readouterr().out
    assert ("1 of 4 rows shared their CPUs with other work (CPU contention > 5%, worst 12%: "
            "busy ncnn 2 threads on local)") in out
    # only the measured row without a figure; a failed row measured nothing
    assert "1 of 4 rows had timed loops too short (< 0.2 s) to measure CPU contention" in out
