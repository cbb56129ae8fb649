"""The fleet over real SSH hosts: x86 ×2, a lavapipe Vulkan host and an emulated armv7l board."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from harness.coordinator import run_suite
from harness.fleet.inventory import load_inventory
from harness.config.suite import load_suite
from tests.helpers import write_inventory

pytestmark = [pytest.mark.hosts, pytest.mark.slow]

SUITE = """
name = "fleet-it"
engines = { mnn = "installed", ncnn = "installed" }
backends = ["cpu", "vulkan"]
threads = [1]
[measure]
warmup = 1
min_iterations = 3
min_seconds = 0.0
processes = 2
timeout_s = 240
[[models]]
name = "reduce"
builtin = "reduction_sum_block"
"""


@pytest.fixture(scope="module")
def inventory(test_hosts, tmp_path_factory):
    d = tmp_path_factory.mktemp("inv")
    return write_inventory(d / "fleet.toml", [h.inventory_entry() for h in test_hosts.values()])


@pytest.fixture(scope="module")
def fleet_runs(inventory, tmp_path_factory, ray_instance):
    d = tmp_path_factory.mktemp("fleet")
    (d / "suite.toml").write_text(SUITE)
    suite = load_suite(d / "suite.toml")
    hosts = load_inventory(inventory)
    first = run_suite(suite, d / "results", hosts=hosts, progress=False)
    second = run_suite(suite, d / "results", hosts=hosts, progress=False)
    return first, second, d / "results"


def test_rows_from_every_host(fleet_runs):
    first, _, out = fleet_runs
    df = pd.DataFrame(first.rows)
    assert set(df.host) == {"x86-a", "x86-b", "gpu", "armv7"}
    assert set(df.arch.dropna()) == {"x86_64", "armv7l"}
    assert (df[df.host == "armv7"].arch == "armv7l").all()
    # one row per configuration and process: 2 engines x 2 backends x 2 processes per host
    assert len(df) == 4 * 8
    on_disk = pd.read_parquet(out)
    assert set(on_disk.run_id) == {first.run_id, fleet_runs[1].run_id}


def test_ncnn_runs_on_vulkan_only_on_the_gpu_host(fleet_runs):
    df = pd.DataFrame(fleet_runs[0].rows)
    vk = df[(df.engine == "ncnn") & (df.backend_requested == "vulkan")].set_index("host")
    gpu = vk.loc["gpu"]
    assert (gpu.backend == "vulkan").all() and (gpu.status == "ok").all()
    assert gpu.gpu_device.str.contains("llvmpipe").all()
    for h in ("x86-a", "x86-b", "armv7"):
        rows = vk.loc[h]
        assert (rows.backend == "cpu").all() and (rows.status == "fallback").all(), h


def test_mnn_on_armv7_is_unsupported_with_a_reason(fleet_runs):
    df = pd.DataFrame(fleet_runs[0].rows)
    arm = df[df.host == "armv7"]
    mnn = arm[arm.engine == "mnn"]
    assert (mnn.status == "unsupported").all()
    assert mnn.error.str.contains("MNN").all() and mnn.error.str.contains("armv7l|not import",
                                                                          regex=True).all()
    ncnn_cpu = arm[(arm.engine == "ncnn") & (arm.backend_requested == "cpu")]
    assert (ncnn_cpu.status == "ok").all() and (ncnn_cpu.verdict == "ok").all()


def test_second_run_transfers_no_model_bytes(fleet_runs):
    first, second, _ = fleet_runs
    sent1 = sum(t["bytes"] for t in first.transfers if t["kind"] == "model")
    sent2 = [t for t in second.transfers if t["kind"] in ("model", "input", "reference")]
    assert sent1 > 0
    assert sent2 == []


def test_no_two_measurements_overlap_on_a_host(fleet_runs):
    for report in fleet_runs[:2]:
        df = pd.DataFrame(report.rows)
        df = df[df.status.isin(["ok", "fallback"])]
        for host, g in df.groupby("host"):
            g = g.sort_values("started_at")
            assert len(g) >= 4
            starts, ends = list(g.started_at), list(g.ended_at)
            assert all(ends[i] <= starts[i + 1] for i in range(len(g) - 1)), host
        # hosts ran in parallel: measurement intervals of different hosts do overlap
        a = df[df.host == "x86-a"]
        b = df[df.host == "x86-b"]
        assert a.started_at.min() < b.ended_at.max() and b.started_at.min() < a.ended_at.max()


def test_devices_check_four_good_one_unreachable(test_hosts, tmp_path):
    entries = [h.inventory_entry() for h in test_hosts.values()]
    entries.append({"name": "ghost", "host": "127.0.0.1", "port": 9,
                    "identity_file": entries[0]["identity_file"],
                    "known_hosts": entries[0]["known_hosts"]})
    inv = write_inventory(tmp_path / "inv.toml", entries)
    p = subprocess.run([sys.executable, "-m", "harness", "devices", "check", str(inv)],
                       capture_output=True, text=True, timeout=300)
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    assert p.returncode == 1, p.stdout + p.stderr
    ok = [ln for ln in lines if " ok " in ln]
    fail = [ln for ln in lines if " FAIL " in ln]
    assert len(ok) == 4 and len(fail) == 1, p.stdout
    assert fail[0].startswith("ghost") and "cannot reach" in fail[0]
    arm = next(ln for ln in ok if ln.startswith("armv7"))
    assert "armv7l" in arm and "ncnn" in arm
    gpu = next(ln for ln in ok if ln.startswith("gpu"))
    assert "llvmpipe" in gpu and "mnn 3.6.1" in gpu.lower() or "mnn" in gpu
    assert "Traceback" not in p.stderr
