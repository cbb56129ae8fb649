"""Bad input: one clear line (what, where, what was expected), exit 2, no traceback, nothing
written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import write_inventory

OK_SUITE = """
name = "b"
engines = { ncnn = "installed" }
[measure]
min_iterations = 2
min_seconds = 0.0
[[models]]
name = "m"
builtin = "reduction_sum_block"
"""


def _run(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, timeout=timeout)


def _one_line(p, *fragments):
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.mark.unit
@pytest.mark.parametrize("hosts, fragment", [
    ([{"name": "a", "host": "h"}, {"name": "a", "host": "h2"}], "duplicate host name 'a'"),
    ([{"name": "bad name;rm", "host": "h"}], "is not a valid name"),
    ([{"name": "a", "host": "h", "password": "x"}], "secrets do not belong"),
    ([{"name": "a", "host": "h", "prot": 22}], "hosts[0].prot: unknown key"),
    # a host string reaches ssh's config (`Match exec` runs commands): a name or an address only
    ([{"name": "a", "host": "h;touch /tmp/pwned"}], "hosts[0].host: 'h;touch /tmp/pwned' is not"),
    ([{"name": "a", "host": "-oProxyCommand"}], "is not a host name or address"),
])
def test_bad_inventory(tmp_path, hosts, fragment):
    inv = write_inventory(tmp_path / "inv.toml", hosts)
    (tmp_path / "s.toml").write_text(OK_SUITE)
    out = tmp_path / "out"
    p = _run("run", str(tmp_path / "s.toml"), "--inventory", str(inv), "--data", str(out))
    _one_line(p, "inv.toml", fragment)
    assert not out.exists()


@pytest.mark.unit
def test_results_dir_not_writable(tmp_path):
    (tmp_path / "s.toml").write_text(OK_SUITE)
    (tmp_path / "afile").write_text("")
    p = _run("run", str(tmp_path / "s.toml"), "--data", str(tmp_path / "afile" / "results"))
    _one_line(p, "results directory is not writable")


@pytest.mark.engines
@pytest.mark.slow
def test_input_shape_that_does_not_fit(tmp_path):
    (tmp_path / "s.toml").write_text(OK_SUITE.replace('builtin = "reduction_sum_block"',
                                                      'builtin = "reduction_sum_block"\n'
                                                      'shape = [1, 3, 64, 64]'))
    out = tmp_path / "out"
    p = _run("run", str(tmp_path / "s.toml"), "--data", str(out))
    _one_line(p, "m: the input (x:1x3x64x64) does not fit the model", "declares (x:1x8x128x128)")
    assert not list(out.rglob("*.parquet"))


@pytest.mark.slow
def test_missing_model_file_and_not_onnx(tmp_path):
    (tmp_path / "s.toml").write_text(OK_SUITE.replace('builtin = "reduction_sum_block"',
                                                      'onnx = "nope.onnx"'))
    _one_line(_run("run", str(tmp_path / "s.toml"), "--data", str(tmp_path / "o")),
              "models[0].onnx", "an existing file")
    (tmp_path / "fake.onnx").write_bytes(b"PK\x03\x04 a zip, not a model")
    (tmp_path / "s.toml").write_text(OK_SUITE.replace('builtin = "reduction_sum_block"',
                                                      'onnx = "fake.onnx"'))
    _one_line(_run("run", str(tmp_path / "s.toml"), "--data", str(tmp_path / "o")),
              "not ONNX")
    assert not (tmp_path / "o").exists()


def test_wrong_ssh_key_is_a_clear_check_failure(x86_host_a, tmp_path):
    from tests.hosts.keys import generate_ed25519
    key, _ = generate_ed25519(tmp_path / "other_key", "not authorized")
    e = x86_host_a.inventory_entry()
    e["identity_file"] = str(key)
    inv = write_inventory(tmp_path / "inv.toml", [e])
    p = _run("devices", "check", str(inv))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "FAIL" in p.stdout and "Authentication failed" in p.stdout, p.stdout


@pytest.mark.slow
def test_malformed_toml_and_unknown_values(tmp_path):
    for text, frag in (("engines = {", "not valid TOML"),
                       (OK_SUITE.replace('ncnn = "installed"', 'ncnn = 3'),
                        "engines.ncnn"),
                       (OK_SUITE + 'backends = ["tpu"]\n', "backends"),
                       (OK_SUITE + 'precisions = ["int4"]\n', "precisions")):
        (tmp_path / "s.toml").write_text(text)
        _one_line(_run("run", str(tmp_path / "s.toml"), "--data", str(tmp_path / "o")), frag)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_input_file_that_is_not_an_array_and_a_shape_beyond_memory(tmp_path):
    (tmp_path / "bad.npy").write_text("not numpy")
    (tmp_path / "s.toml").write_text(OK_SUITE + '[[models.inputs]]\nnpy = "bad.npy"\n')
    out = tmp_path / "out"
    p = _run("run", str(tmp_path / "s.toml"), "--data", str(out))
    _one_line(p, "bad.npy: is not a NumPy .npy/.npz array file")
    assert not out.exists()
    p = _run("run", "--model", "reduction_sum_block", "--shape", "100000x100000x3x3",
             "--engine", "onnxruntime", "--data", str(out))
    _one_line(p, "input x: shape 100000x100000x3x3 needs", "GiB available here")
    assert not out.exists()


@pytest.mark.slow
def test_missing_key_file_is_named(tmp_path):
    inv = write_inventory(tmp_path / "inv.toml", [{
        "name": "a", "host": "127.0.0.1", "port": 1,
        "identity_file": str(tmp_path / "no_such_key")}])
    p = subprocess.run([sys.executable, "-m", "harness", "devices", "check", str(inv)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert f"identity_file {tmp_path / 'no_such_key'} does not exist" in p.stdout, p.stdout
