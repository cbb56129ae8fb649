"""harness_agent.corelatency: a real ping-pong between two processes on two CPUs."""

from __future__ import annotations

import os

import pytest

from harness_agent import corelatency

pytestmark = pytest.mark.unit

CPUS = sorted(os.sched_getaffinity(0))
two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="needs 2 CPUs")


def _children() -> set[int]:
    """This process's children, zombies included (other tests may have left live ones)."""
    me, out = os.getpid(), set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(rest[1]) == me:
                out.add(int(d))
    return out


@pytest.fixture
def no_child_left():
    before = _children()
    yield
    assert _children() <= before


@two_cpus
def test_a_round_trip_between_two_cpus_is_measured_and_leaves_nothing_behind(
        no_child_left):
    ns = corelatency.round_trip_ns(CPUS[0], CPUS[1], rounds=500, trials=3)
    # a cache line there and back through the interpreter: tens of ns at the least, and far
    # from the milliseconds of a scheduler slice (which would mean the two never ran together)
    assert ns is not None and 20 < ns < 100_000, ns
    assert sorted(os.sched_getaffinity(0)) == CPUS  # this thread's mask is put back


@two_cpus
def test_a_probe_that_cannot_finish_in_time_gives_none_and_cleans_up(no_child_left):
    assert corelatency.round_trip_ns(CPUS[0], CPUS[1], rounds=10_000_000, deadline_s=0.05) is None
    assert sorted(os.sched_getaffinity(0)) == CPUS


def test_a_single_cpu_has_no_pair():
    assert corelatency.probe([CPUS[0]]) is None
    assert corelatency.pairs([5, 3, 3, 9, 1], max_pairs=2) == [(1, 3), (1, 5)]


def test_a_cpu_outside_the_mask_is_refused_not_raised(no_child_left):
    assert corelatency.round_trip_ns(CPUS[0], 4095) is None
    assert sorted(os.sched_getaffinity(0)) == CPUS


def test_the_run_footer_says_when_the_core_to_core_latency_moved(capsys, tmp_path):
    from types import SimpleNamespace

    from harness.cli.run import run_footer

    def row(host, threads, start, end):
        return {"model": "m", "engine": "mnn", "threads": threads, "host": host, "status": "ok",
                "verdict": "ok", "cpu_contention": 0.0, "core_to_core_ns_start": start,
                "core_to_core_ns_end": end}
    rows = [row("vm", 2, 185.0, 190.0), row("vm", 2, 188.0, 452.0),
            row("board", 2, 90.0, 95.0), row("board", 1, 90.0, 900.0),  # 1 thread: no matter
            row("single", 2, None, None)]
    run_footer(SimpleNamespace(rows=rows, run_id="R", wall_s=1.0, files=[]), tmp_path)
    out = capsys.readouterr().out
    assert "core-to-core latency on vm varied 185-452 ns during this run" in out
    assert "on board" not in out and "on single" not in out
