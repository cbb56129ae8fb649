"""Where host workers run (harness.placement): a hung host never holds the others of its group;
Ray groups hosts by route and size; a local run without a cluster starts no Ray at all."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
import time

import pytest

from harness.coordinator import choose_placement
from harness.errors import InputError
from harness.placement import RayPlacement, ThreadPlacement


class _Executor:
    """A stand-in executor: `measure` returns at once, or waits on `gate` for the hung host."""

    transfers: list = []

    def __init__(self, name: str, gate: threading.Event | None = None):
        self.name, self.gate = name, gate

    def setup(self) -> dict:
        return {"hostname": self.name}

    def measure(self, job: dict, timeout_s: float) -> dict:
        if self.gate is not None:
            self.gate.wait(timeout_s)
        return {"status": "ok", "host": self.name, "n": job["n"]}

    def close(self) -> None:
        pass


@pytest.mark.unit
def test_a_hung_host_holds_only_its_own_thread():
    gate = threading.Event()
    factories = {"hung": functools.partial(_Executor, "hung", gate),
                 **{f"h{i}": functools.partial(_Executor, f"h{i}") for i in range(3)}}
    workers = ThreadPlacement(factories, {})
    try:
        assert {h: workers.call(h, "setup").result(5)["hostname"] for h in factories} == \
            {h: h for h in factories}
        hung = workers.call("hung", "measure", {"n": 0}, 30)
        # the others finish many jobs, one call per host at a time, while "hung" waits
        for n in range(5):
            done = [workers.call(f"h{i}", "measure", {"n": n}, 30) for i in range(3)]
            assert [f.result(5)["n"] for f in done] == [n] * 3
        assert not hung.done()
        gate.set()
        assert hung.result(5) == {"status": "ok", "host": "hung", "n": 0}
        assert workers.call("h0", "finish").result(5) == []
    finally:
        gate.set()
        workers.close()


@pytest.mark.unit
def test_auto_placement_is_threads_without_a_cluster(monkeypatch):
    from types import SimpleNamespace
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # whether this test session started Ray must not matter: a stand-in says "not running"
    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(is_initialized=lambda: False))
    assert choose_placement("auto", None) == "threads"
    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(is_initialized=lambda: True))
    assert choose_placement("auto", None) == "ray"  # a caller's (a notebook's) instance
    monkeypatch.delitem(sys.modules, "ray")
    assert choose_placement("auto", None) == "threads"
    assert choose_placement("auto", "10.0.0.1:6379") == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert choose_placement("auto", None) == "ray"
    assert choose_placement("threads", None) == "threads"
    with pytest.raises(InputError, match="placement 'actors'"):
        choose_placement("actors", None)


@pytest.mark.engines
def test_ray_groups_hosts_by_route_and_size(ray_instance):
    """Five hosts in groups of at most two: the four reachable ones take two actors; a host
    behind a route no node offers is named and gets none."""
    factories = {h: functools.partial(dict) for h in ("a1", "a2", "a3", "b1", "c1")}
    routes = {"a1": None, "a2": None, "a3": None, "b1": None, "c1": "lab-nowhere"}
    workers = RayPlacement(ray_instance, factories, routes, group_size=2)
    try:
        assert workers.workers == 2
        assert set(workers.no_route) == {"c1"} and "lab-nowhere" in workers.no_route["c1"]
        actors = workers.actor_of
        assert actors["a1"] is actors["a2"] and actors["a3"] is actors["b1"]
        assert actors["a1"] is not actors["a3"]
        # a factory that builds no executor: setup says so, as one host's error
        assert "setup" in workers.call("a1", "setup").result(60)["error"]
    finally:
        workers.close()


@pytest.mark.engines
@pytest.mark.slow
def test_a_local_run_starts_no_ray(tmp_path):
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from harness.coordinator import run_suite\n"
        "from harness.config.suite import load_suite\n"
        f"rep = run_suite(load_suite({str(tmp_path / 's.toml')!r}), Path({str(tmp_path / 'r')!r}),"
        " progress=False)\n"
        "print(json.dumps({'ray': 'ray' in sys.modules, 'status': rep.rows[0]['status'],"
        " 'placement': rep.timings['placement']}))\n")
    (tmp_path / "s.toml").write_text(
        'name = "one"\nengines = { onnxruntime = "installed" }\nthreads = [1]\n'
        "[measure]\nwarmup = 0\nmin_iterations = 1\nmin_seconds = 0.0\nprocesses = 1\n"
        '[[models]]\nname = "m"\nbuiltin = "reduction_sum_block"\n')
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out == {"ray": False, "status": "ok", "placement": "threads"}, (out, wall)


@pytest.mark.hosts
@pytest.mark.slow
def test_max_parallel_hosts_one_measures_one_host_at_a_time(x86_host_a, x86_host_b, tmp_path):
    """Two hosts, three processes each, --max-parallel-hosts 1: no two measurements overlap
    in time, and the hosts take turns (plan order), so neither waits for the other's all."""
    from tests.helpers import write_inventory
    inv = write_inventory(tmp_path / "inv.toml", [x86_host_a.inventory_entry(),
                                                 x86_host_b.inventory_entry()])
    (tmp_path / "s.toml").write_text(
        'name = "turns"\nengines = { onnxruntime = "installed" }\nthreads = [1]\n'
        "[measure]\nwarmup = 0\nmin_iterations = 3\nmin_seconds = 0.3\nprocesses = 3\n"
        '[[models]]\nname = "m"\nbuiltin = "reduction_sum_block"\n')
    p = subprocess.run([sys.executable, "-m", "harness", "run", str(tmp_path / "s.toml"),
                        "--inventory", str(inv), "--data", str(tmp_path / "r"), "--no-progress",
                        "--max-parallel-hosts", "1"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    from harness.results import load
    df = load(tmp_path / "r").sort_values("started_at")
    assert len(df) == 6 and set(df["status"]) == {"ok"}
    spans = list(zip(df["started_at"], df["ended_at"], df["host"].astype(str)))
    for (_, e0, _), (s1, _, _) in zip(spans, spans[1:]):
        assert (s1 - e0).total_seconds() >= -0.05, spans  # 50 ms for an agent's exit
    assert len({h for _, _, h in spans[:2]}) == 2  # taking turns, not one host's three first


@pytest.mark.unit
def test_an_unreachable_ray_address_is_one_line_not_minutes_of_retries():
    import socket
    from harness.raysession import check_reachable
    with socket.socket() as s:  # bound, not listening: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(InputError, match=f"--ray-address 127.0.0.1:{port}.*no Ray cluster"):
            check_reachable(f"127.0.0.1:{port}", timeout_s=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        check_reachable(f"127.0.0.1:{s.getsockname()[1]}", timeout_s=2)
    check_reachable("auto")  # left to Ray


@pytest.mark.engines
def test_a_host_worker_that_never_answers_costs_the_run_its_call_limit_only(tmp_path,
                                                                            monkeypatch):
    """The executors bound every wait on a host; the coordinator bounds the executor too. A
    worker call that never returns (here: made to hang) becomes an `unreachable` row after
    the measurement's timeout + CALL_GRACE_S, the host's other jobs `unreachable` rows that
    say they were not measured, and the run returns with every row written."""
    pytest.importorskip("onnxruntime")
    from harness import coordinator
    from harness.placement import HostGroup
    from tests.helpers import run_suite_text

    gate, calls = threading.Event(), []
    real = HostGroup.measure

    def measure(self, host, job, timeout_s):
        calls.append(host)
        if len(calls) == 2:  # the second call hangs until the test ends
            gate.wait(300)
        return real(self, host, job, timeout_s)

    monkeypatch.setattr(HostGroup, "measure", measure)
    monkeypatch.setattr(coordinator, "CALL_GRACE_S", 2.0)
    t0 = time.monotonic()
    try:
        df = run_suite_text(tmp_path, 'name = "stuck"\nengines = { onnxruntime = "installed" }\n'
                            "threads = [1]\n[measure]\nwarmup = 0\nmin_iterations = 3\n"
                            "min_seconds = 0.0\nprocesses = 3\ntimeout_s = 5\n"
                            '[[models]]\nname = "m"\nbuiltin = "reduction_sum_block"\n')
    finally:
        gate.set()
    took = time.monotonic() - t0
    rows = df.sort_values("process")
    assert list(rows["status"]) == ["ok", "unreachable", "unreachable"], rows[["process", "error"]]
    assert "gave no answer within 7 s (the measurement's 5 s + 2 s)" in rows["error"].iloc[1]
    assert rows["error"].iloc[2].startswith("not measured: local: the host worker gave no answer")
    assert took < 60, took
