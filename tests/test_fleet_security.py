"""Fleet details: engine versions per host, host-key policy, quoting of hostile names."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from harness.coordinator import run_suite
from harness.fleet.inventory import load_inventory
from harness.config.suite import load_suite
from tests.helpers import write_inventory

TWO_VERSIONS = """
name = "versions"
engines = { mnn = ["3.4.0", "3.6.1"] }
threads = [1]
[measure]
warmup = 1
min_iterations = 3
min_seconds = 0.0
[[models]]
name = "reduce"
builtin = "reduction_sum_block"
"""


def test_two_mnn_versions_on_one_host_each_in_its_own_environment(x86_host_a, tmp_path,
                                                                    ray_instance):
    inv = write_inventory(tmp_path / "inv.toml", [x86_host_a.inventory_entry()])
    (tmp_path / "s.toml").write_text(TWO_VERSIONS)
    report = run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "out",
                       hosts=load_inventory(inv), progress=False)
    df = pd.DataFrame(report.rows).set_index("engine_version_requested")
    assert (df.status == "ok").all(), df.error.to_dict()
    # the version the engine reported, not the request
    assert df.loc["3.4.0", "engine_version"] == "3.4.0"
    assert df.loc["3.6.1", "engine_version"] == "3.6.1"
    wheels = [t for t in report.transfers if t["kind"] == "wheel"]
    assert [w["name"].split("-")[1] for w in wheels] == ["3.4.0"]  # 3.6.1 is the host's own
    env = x86_host_a.local_path(x86_host_a.workdir) / "envs"
    assert any(p.name.startswith("mnn-3.4.0-") for p in env.iterdir())


def _check(inv, *extra):
    return subprocess.run([sys.executable, "-m", "harness", "devices", "check", str(inv), *extra],
                          capture_output=True, text=True, timeout=120)


def test_unknown_host_key_refused_unless_trusted(x86_host_b, tmp_path):
    e = x86_host_b.inventory_entry()
    kh = tmp_path / "known_hosts"
    e["known_hosts"] = str(kh)
    # lines paramiko cannot parse, which trusting a new key must leave as they are
    before = ("# lab hosts, managed by hand\n"
              "@cert-authority *.lab ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBogus\n"
              "oldhost ssh-unknown-type AAAAB3NzaC1yc2EAAAADAQABAAABAQ")  # no final newline
    kh.write_text(before)
    inv = write_inventory(tmp_path / "inv.toml", [e])
    p = _check(inv)
    assert p.returncode == 1 and "unknown host key" in p.stdout, p.stdout
    p = _check(inv, "--trust-new-host-key")
    assert p.returncode == 0, p.stdout
    after = kh.read_text()
    assert after.startswith(before + "\n")  # appended, nothing rewritten
    added = after[len(before) + 1:].splitlines()
    assert len(added) == 1 and "ssh-ed25519" in added[0]
    p = _check(inv, "--trust-new-host-key")  # already known: nothing appended again
    assert p.returncode == 0 and kh.read_text() == after, p.stdout
    p = _check(inv)  # now known: verified, no trust needed
    assert p.returncode == 0, p.stdout


def test_changed_host_key_refused_even_when_trusted(x86_host_b, gpu_host, tmp_path):
    e = x86_host_b.inventory_entry()
    other_key = gpu_host.known_hosts.read_text().split()[1:]  # another server's key
    line = f"[127.0.0.1]:{x86_host_b.port} {' '.join(other_key)}\n"
    (tmp_path / "kh").write_text(line)
    e["known_hosts"] = str(tmp_path / "kh")
    e["trust_host_key"] = True
    inv = write_inventory(tmp_path / "inv.toml", [e])
    p = _check(inv, "--trust-new-host-key")
    assert p.returncode == 1 and "CHANGED" in p.stdout, p.stdout
    assert (tmp_path / "kh").read_text() == line  # nothing rewritten


HOSTILE = """
name = "hostile"
engines = { ncnn = "installed" }
[measure]
warmup = 0
min_iterations = 2
min_seconds = 0.0
[[models]]
name = "m"
onnx = "{model}"
shape = [1, 8, 128, 128]
"""


def test_hostile_names_run_nothing_extra(x86_host_a, tmp_path, ray_instance):
    import os
    import uuid
    from pathlib import Path

    from harness.models.registry import builtin_onnx
    canary = f"CANARY_{uuid.uuid4().hex[:8]}"
    evil_dir = tmp_path / f"dir with 'quotes' and $(touch {canary})"
    evil_dir.mkdir()
    name = f"m; touch {canary}; `touch {canary}` $(touch {canary}) \"x'.onnx"
    (evil_dir / name).write_bytes(builtin_onnx("reduction_sum_block").read_bytes())
    (evil_dir / "suite.toml").write_text(HOSTILE.replace("{model}", name.replace('"', '\\"')))
    e = x86_host_a.inventory_entry()
    e["workdir"] = e["workdir"] + f"/work dir; touch {canary}; $(touch {canary}) ../`touch {canary}`"
    inv = write_inventory(tmp_path / "inv.toml", [e])
    report = run_suite(load_suite(evil_dir / "suite.toml"), evil_dir / f"out $(touch {canary})",
                       hosts=load_inventory(inv), progress=False)
    assert [r["status"] for r in report.rows] == ["ok"], report.rows[0].get("error")
    # the remote shells start in root's home; the coordinator runs here and in tmp_path
    for d in (Path.home(), Path.cwd(), tmp_path, evil_dir, Path(x86_host_a.workdir)):
        assert not (d / canary).exists(), d
    assert not [p for p in tmp_path.rglob(canary + "*") if p.name == canary]
    assert not os.path.exists("/" + canary)


@pytest.mark.slow
def test_dry_run_prints_plan_without_connecting(tmp_path):
    inv = write_inventory(tmp_path / "inv.toml", [
        {"name": "a", "host": "127.0.0.1", "port": 9}, {"name": "b", "host": "127.0.0.1",
                                                        "port": 9, "tags": {"gpu": "vulkan"}}])
    (tmp_path / "s.toml").write_text(TWO_VERSIONS)
    p = subprocess.run([sys.executable, "-m", "harness", "run", str(tmp_path / "s.toml"),
                        "--inventory", str(inv), "--dry-run"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "4 configurations on 2 host(s)" in p.stdout
    p = subprocess.run([sys.executable, "-m", "harness", "run", str(tmp_path / "s.toml"),
                        "--inventory", str(inv), "--devices", "tag:gpu", "--dry-run"],
                       capture_output=True, text=True, timeout=120)
    assert "2 configurations on 1 host(s)" in p.stdout


def test_host_behind_a_missing_ray_resource_is_unreachable_not_a_hang(x86_host_a, tmp_path,
                                                                      ray_instance):
    e = x86_host_a.inventory_entry()
    e["name"] = "behind-lab9"
    e["ray_resource"] = "lab9-gateway"
    ok = x86_host_a.inventory_entry()
    inv = load_inventory(write_inventory(tmp_path / "inv.toml", [e, ok]))
    (tmp_path / "s.toml").write_text(TWO_VERSIONS.replace('["3.4.0", "3.6.1"]', '"installed"'))
    report = run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "out", hosts=inv,
                       progress=False)
    df = pd.DataFrame(report.rows).set_index("host")
    assert df.loc["behind-lab9", "status"] == "unreachable"
    assert "lab9-gateway" in df.loc["behind-lab9", "error"]
    assert df.loc["x86-a", "status"] == "ok"


def test_proxyjump_gateway_key_is_checked_too(x86_host_a, x86_host_b, tmp_path):
    """A host reached through a ProxyJump gateway (from ~/.ssh/config): the gateway's host key
    is checked against the same known_hosts as the host's, as OpenSSH does; fabric alone would
    accept any gateway key. (The gateway is named localhost: fabric drops a ProxyJump whose
    host is the target's own address.)"""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    a, b = x86_host_a, x86_host_b
    (home / ".ssh" / "config").write_text(
        f"Host b-via-a\n    HostName {b.host}\n    Port {b.port}\n    User {b.user}\n"
        f"    IdentityFile {b.identity_file}\n    ProxyJump {a.user}@localhost:{a.port}\n"
        f"Host localhost\n    IdentityFile {a.identity_file}\n")
    e = b.inventory_entry()
    e.update(host="b-via-a", ssh_config_alias=True)
    inv = write_inventory(tmp_path / "inv.toml", [e])

    def check(known_hosts):
        e["known_hosts"] = str(known_hosts)
        write_inventory(inv, [e])
        return subprocess.run([sys.executable, "-m", "harness", "devices", "check", str(inv)],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "HOME": str(home)})

    only_b = tmp_path / "only_b"
    only_b.write_text(b.known_hosts.read_text())
    p = check(only_b)  # the gateway's key is unknown: refused
    assert p.returncode == 1 and "unknown host key" in p.stdout, p.stdout
    assert str(a.port) in p.stdout, p.stdout  # names the gateway
    both = tmp_path / "both"
    both.write_text(b.known_hosts.read_text()
                    + a.known_hosts.read_text().replace(a.host, "localhost"))
    p = check(both)
    assert p.returncode == 0, p.stdout
