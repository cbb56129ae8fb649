"""The executor interface: classifying an agent that gave no result, the agent's protocol check,
and local provisioning that fails quietly and cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.diagnose.search import _short
from harness.executors.base import AgentExit, Executor, NoRuntime, no_result, parse_lines
from harness.executors.local import LocalExecutor, provision_venv
from harness.executors.ssh import SshExecutor
from harness.fleet.inventory import HostSpec
from harness_agent import PROTOCOL
from harness_agent.hostctl import HostctlError, venv
from harness_agent.protocol import PROGRESS_MARKER, RESULT_MARKER, STARTED

ROOT = Path(__file__).resolve().parent.parent


# -- a result-less agent --------------------------------------------------------------------------
@pytest.mark.unit
def test_parse_lines_reads_the_result_and_the_progress():
    out = "\n".join([PROGRESS_MARKER + '{"phase": "load", "rss_peak_kb": 7}', "engine chatter",
                     RESULT_MARKER + '{"status": "ok"}'])
    assert parse_lines(out) == ({"status": "ok"}, [{"phase": "load", "rss_peak_kb": 7}])
    assert parse_lines("nothing") == (None, [])


@pytest.mark.unit
@pytest.mark.parametrize("rc, elapsed, status, says", [
    (124, 3.0, "timeout", "no result within 10 s (last phase: load)"),  # timeout's TERM
    (137, 10.5, "timeout", "no result within 10 s"),  # timeout's KILL after the grace
    (137, 2.0, "oom", "killed by SIGKILL after phase load (out of memory)"),
    (139, 2.0, "error", "agent exited 139 without a result (killed by SIGSEGV in phase load; last phase"),
    (3, 2.0, "error", "agent exited 3 without a result (last phase: load): boom"),
])
def test_no_result_is_classified_from_the_exit(rc, elapsed, status, says):
    progress = [STARTED, {"phase": "load", "rss_peak_kb": 1234}]
    res = no_result(AgentExit(rc, "", "boom", elapsed), progress, 10.0)
    assert res["status"] == status and says in res["error"]
    assert res["rss_last_peak_kb"] == 1234


@pytest.mark.unit
def test_a_crash_reads_as_a_signal_in_the_fix_search():
    res = no_result(AgentExit(139, "", "", 1.0), [STARTED], 10.0)
    assert _short(res["error"]) == "process died with SIGSEGV"


@pytest.mark.unit
@pytest.mark.parametrize("rc, stderr, says", [
    (127, "bash: line 1: /opt/py/bin/python3: No such file or directory\n",
     "the agent could not start (exit 127): bash: line 1: /opt/py/bin/python3: No such file"),
    (1, "/usr/bin/python3: No module named harness_agent\n",
     "the agent could not start (exit 1): /usr/bin/python3: No module named harness_agent"),
    (3, "harness_agent cannot start on this host: ModuleNotFoundError: No module named "
        "'numpy'\n", "could not start (exit 3): harness_agent cannot start on this host: "
                      "ModuleNotFoundError: No module named 'numpy'"),
    (1, "Traceback (most recent call last):\n  File \"x\", line 1\n\x1b[31mSyntaxError: "
        "invalid syntax\x1b[0m\n", "could not start (exit 1): SyntaxError: invalid syntax"),
    (137, "", "the agent could not start (exit 137): no message"),
])
def test_an_agent_that_never_started_is_the_hosts_failure(rc, stderr, says):
    """No engine code runs before the agent's STARTED line: an exit before it is host_error
    (measured again on resume) with the host's own last line, plain."""
    res = no_result(AgentExit(rc, "", stderr, 0.5), [], 10.0)
    assert res["status"] == "host_error" and says in res["error"], res
    assert "\x1b" not in res["error"] and "Traceback" not in res["error"]
    # no engine code ran before the deadline either: the host's failure, said so
    late = no_result(AgentExit(124, "", stderr, 10.0), [], 10.0)
    assert late["status"] == "host_error"
    assert late["error"] == "the agent did not start within 10 s; process group killed"
    assert no_result(AgentExit(124, "", "", 10.0), [STARTED], 10.0)["status"] == "timeout"


def _fake_python(tmp_path: Path, body: str) -> str:
    """A 'python' that ignores its arguments and runs ``body`` (sh)."""
    p = tmp_path / "python"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)
    return str(p)


def _installed_engine() -> str:
    import importlib.metadata as md

    from harness.engines import adapter_class, known_engines
    for name in known_engines():
        try:
            md.version(adapter_class(name).PIP_PACKAGE)
            return name
        except md.PackageNotFoundError:
            continue
    pytest.skip("no engine installed")


@pytest.mark.slow
@pytest.mark.parametrize("body, timeout_s, status, says", [
    ("sleep 30", 1.0, "timeout", "no result within 1 s"),
    ("kill -KILL $$", 30.0, "oom", "out of memory"),
    ("kill -SEGV $$", 30.0, "error", "killed by SIGSEGV"),
    ("echo broken >&2; exit 3", 30.0, "error", "exited 3 without a result"),
    ("echo no numpy >&2; exit 1", 30.0, "host_error", "could not start (exit 1): no numpy"),
])
def test_a_local_agent_without_a_result(tmp_path, body, timeout_s, status, says):
    if status != "host_error":  # an agent that started, then failed
        body = f"echo '{PROGRESS_MARKER}{json.dumps(STARTED)}'; {body}"
    ex = LocalExecutor(python=_fake_python(tmp_path, body))
    res = ex.run_agent("measure", {"protocol": PROTOCOL, "engine": _installed_engine()},
                       timeout_s)
    assert res["status"] == status and says in res["error"]


# -- the protocol -------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_agent_answers_another_protocol_with_an_error_naming_both():
    res = LocalExecutor().run_agent("measure", {"protocol": PROTOCOL + 1, "engine":
                                                _installed_engine()}, 60)
    assert res["status"] == "error"
    assert res["error"] == (f"agent speaks protocol {PROTOCOL}, the coordinator sent "
                            f"{PROTOCOL + 1}")


@pytest.mark.slow
def test_the_agent_refuses_an_unknown_mode(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"protocol": PROTOCOL}))
    p = subprocess.run([sys.executable, "-m", "harness_agent", "bogus", str(job)],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and "usage:" in p.stderr and RESULT_MARKER not in p.stdout


@pytest.mark.slow
def test_a_bad_job_file_is_an_error_result(tmp_path):
    job = tmp_path / "job.json"
    job.write_text("{not json")
    p = subprocess.run([sys.executable, "-m", "harness_agent", "dump", str(job)],
                       capture_output=True, text=True, cwd=ROOT)
    res, _ = parse_lines(p.stdout)
    assert p.returncode == 2 and res["status"] == "error" and "bad job" in res["error"]


# -- provisioning and hostctl ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_failed_pip_install_prints_nothing_and_leaves_no_temp_venv(tmp_path, capfd):
    env = tmp_path / "envs" / "mnn-0.0-cp311"
    with pytest.raises(NoRuntime, match="could not be installed.*pip install failed"):
        provision_venv(env, [tmp_path / "missing.whl"], "mnn 0.0")
    assert capfd.readouterr().out == ""
    assert not env.exists() and not list(env.parent.glob("*.tmp-*"))


@pytest.mark.slow
def test_a_failed_venv_creation_is_a_hostctl_error(tmp_path, capfd):
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the venv's parent directory should be
    with pytest.raises(HostctlError, match="venv failed"):
        venv(str(blocker / "env"), [str(tmp_path / "x.whl")])
    assert capfd.readouterr().out == ""


@pytest.mark.slow
def test_hostctl_main_answers_a_failure_with_one_json_line(tmp_path):
    f = tmp_path / "blob"
    f.write_bytes(b"abc")
    p = subprocess.run([sys.executable, "-m", "harness_agent.hostctl", "verify", str(f), "0" * 64],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 3
    assert json.loads(p.stdout)["error"].startswith("sha256 mismatch for")


# -- the interface --------------------------------------------------------------------------------
@pytest.mark.unit
def test_both_executors_implement_the_interface():
    ssh = SshExecutor(HostSpec(name="h", host="127.0.0.1"), "owner")  # connects lazily
    local = LocalExecutor()
    for ex in (local, ssh):
        assert isinstance(ex, Executor) and ex.transfers == []
    assert ssh.work is None and ssh.agent_root is None and not ssh.busy
    assert local.transfers is not LocalExecutor().transfers  # per instance
    assert local.push(Path("/x/y.onnx"), "model") == "/x/y.onnx"
    d = local.device_dir(f"test-{os.getpid()}")
    assert os.path.isdir(d)
    local.remove_device_dir(f"test-{os.getpid()}")
    assert not os.path.exists(d)


@pytest.mark.slow
def test_a_failed_local_provisioning_is_no_runtime_and_quiet(tmp_path, monkeypatch, capfd):
    import harness.fleet.wheels as wheels
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(wheels, "download", lambda *a, **k: tmp_path / "gone.whl")
    ex = LocalExecutor()
    with pytest.raises(NoRuntime, match="mnn 0.0.1 could not be installed"):
        ex.runtime("mnn", "0.0.1")
    res = ex.run_agent("measure", {"protocol": PROTOCOL, "engine": "mnn", "version": "0.0.1"}, 5)
    assert res["status"] == "unsupported" and "pip install failed" in res["error"]
    assert capfd.readouterr().out == ""
    envs = tmp_path / "cache" / "envs"
    assert envs.is_dir() and list(envs.iterdir()) == []
