"""Ad hoc runs: one command, no suite file, this machine or any SSH host."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pandas as pd
import pytest

from harness.config.flags import suite_from_flags
from harness.models.registry import builtin_onnx
from harness.cli import build_parser
from harness.cli.run import suite_flags
from harness.plan import expand
from harness.config.suite import load_suite

CLS = str(builtin_onnx("ppocr_cls"))


def _harness(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.engines
@pytest.mark.slow
def test_local_adhoc_run_without_suite_file(tmp_path):
    out = tmp_path / "res"
    p = _harness("run", "--model", CLS, "--engine", "mnn,ncnn", "--threads", "1,2", "--on",
                 "local", "--data", str(out), "--iterations", "5", "--seconds", "0",
                 "--no-progress")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "median_ms" in p.stdout and "ch_ppocr_mobile_v2.0_cls_infer" in p.stdout
    df = pd.read_parquet(out)
    assert len(df) == 4 and set(df.sweep_kind) == {"adhoc"}
    assert set(df.engine) == {"mnn", "ncnn"} and set(df.threads) == {1, 2}
    assert (df.verdict == "ok").all()


def _ssh_args(host, known_hosts):
    return ["--on", f"root@127.0.0.1:{host.port}", "--identity-file", str(host.identity_file),
            "--known-hosts", str(known_hosts), "--python", host.python,
            "--workdir", host.workdir]


@pytest.mark.engines
@pytest.mark.slow
def test_adhoc_over_ssh_and_host_key_refusal(x86_host_a, tmp_path):
    common = ["run", "--model", "ppocr_cls", "--engine", "ncnn", "--threads", "1",
              "--iterations", "3", "--seconds", "0", "--no-progress"]
    out = tmp_path / "res"
    p = _harness(*common, "--data", str(out), *_ssh_args(x86_host_a, x86_host_a.known_hosts))
    assert p.returncode == 0, p.stdout + p.stderr[-2000:]
    df = pd.read_parquet(out)
    assert list(df.status) == ["ok"] and list(df.sweep_kind) == ["adhoc"]
    assert df.host.iloc[0] == f"127.0.0.1-{x86_host_a.port}"

    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    out2 = tmp_path / "res2"
    p = _harness(*common, "--data", str(out2), *_ssh_args(x86_host_a, empty))
    assert p.returncode != 0
    assert "unknown host key" in p.stderr
    assert list(pd.read_parquet(out2).status) == ["unreachable"]
    assert empty.read_text() == ""

    p = _harness(*common, "--data", str(out2), *_ssh_args(x86_host_a, empty),
                 "--trust-new-host-key")
    assert p.returncode == 0, p.stdout + p.stderr[-2000:]
    assert "ssh-ed25519" in empty.read_text()


@pytest.mark.unit
def test_saved_suite_expands_to_the_same_configurations(tmp_path):
    saved = tmp_path / "saved.toml"
    argv = ["run", "--model", CLS, "--shape", "1x3x48x192", "--engine", "mnn==3.6.1,ncnn",
            "--threads", "1,2,4", "--precision", "fp32,fp16", "--backend", "cpu,vulkan",
            "--processes", "2", "--iterations", "7", "--seconds", "0.25",
            "--save-suite", str(saved)]
    args = build_parser().parse_args(argv)
    flags_suite, data = suite_from_flags(suite_flags(args))
    from harness.config.flags import save_suite
    save_suite(data, str(saved))
    file_suite = load_suite(saved)
    assert expand(file_suite) == expand(flags_suite)
    assert len(expand(file_suite)) == 2 * 3 * 2 * 2 * 2
    assert file_suite.measure == flags_suite.measure
    assert isinstance(args, argparse.Namespace)


@pytest.mark.slow
def test_bad_flags_one_line_exit_2(tmp_path):
    for argv, frag in ((["--model", "nope.onnx"], "--model"),
                       (["--model", CLS, "--threads", "one"], "--threads"),
                       (["--model", CLS, "--shape", "1x3xx"], "--shape"),
                       (["--model", CLS, "--engine", "tflite"], "engines.tflite")):
        p = _harness("run", *argv, "--data", str(tmp_path / "o"))
        assert p.returncode == 2, (argv, p.stderr)
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and frag in lines[0], (argv, p.stderr)
        assert not (tmp_path / "o").exists()
