"""The command line itself: flags users trip on, one dataset flag, the error edge, logging."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "suites" / "smoke.toml"
# every command (and sub-command) as its argv prefix
COMMANDS = (["run"], ["sweep"], ["devices", "check"], ["compare"], ["history"], ["diagnose"],
            ["profile"], ["models", "stats"], ["publish"])


def _harness(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def _parsers(p: argparse.ArgumentParser, path=("harness",)):
    """Every parser of the command line with its path: the top level and each sub-command."""
    yield path, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _parsers(sub, path + (name,))


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


@pytest.mark.slow
def test_out_is_refused_with_one_line_naming_output_and_data(tmp_path):
    p = _harness("compare", "--out", str(tmp_path / "x"), "--base", "a", "--head", "b")
    assert p.returncode == 2, p.stderr
    lines = _lines(p.stderr)
    assert len(lines) == 1 and "--output" in lines[0] and "--data" in lines[0], p.stderr
    assert lines[0].startswith("harness: error: --out")
    assert not (tmp_path / "x").exists() and p.stdout == ""


@pytest.mark.unit
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_out(command, capsys):
    assert main([*command, "--out", "somewhere"]) == 2
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and "--output" in lines[0] and "--data" in lines[0]


@pytest.mark.unit
def test_no_abbreviations_anywhere(capsys):
    for path, p in _parsers(build_parser()):
        assert p.allow_abbrev is False, path
    for argv, flag in ((["run", "--mod", "m.onnx"], "--mod"),
                       (["compare", "--dat", "X", "--base", "a", "--head", "b"], "--dat"),
                       (["compare", "--outp", "r.txt", "--base", "a", "--head", "b"], "--outp"),
                       (["sweep", str(SMOKE), "--tag", "t", "--fail-o", "slower"], "--fail-o")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2, argv
        assert f"unrecognized arguments: {flag}" in capsys.readouterr().err, argv


@pytest.mark.unit
def test_every_dataset_command_takes_data():
    parser = build_parser()
    for argv in (["run", str(SMOKE)], ["sweep", str(SMOKE), "--tag", "t"],
                 ["compare", "--base", "a", "--head", "b"], ["history"],
                 ["diagnose", "--model", "m", "--engine", "ncnn"], ["models", "stats", "m"]):
        args = parser.parse_args([*argv, "--data", "DIR"])
        assert args.data == "DIR", argv
    defaults = {argv[0]: parser.parse_args(argv).data for argv in (
        ["run", str(SMOKE)], ["sweep", str(SMOKE), "--tag", "t"],
        ["compare", "--base", "a", "--head", "b"], ["history"])}
    assert set(defaults.values()) == {"results"}


@pytest.mark.unit
def test_help_on_every_flag():
    for path, p in _parsers(build_parser()):
        assert p.format_help(), path  # renders: no stray % in a help text
        for a in p._actions:
            if a.help == argparse.SUPPRESS or isinstance(a, (argparse._HelpAction,
                                                             argparse._VersionAction,
                                                             argparse._SubParsersAction)):
                continue
            assert a.help and a.help.strip(), (path, a.option_strings or a.dest)


@pytest.mark.unit
def test_json_is_the_one_machine_readable_switch(capsys):
    parser = build_parser()
    for argv in (["compare", "--base", "a", "--head", "b"], ["history"], ["models", "stats", "m"]):
        assert parser.parse_args([*argv, "--json"]).json is True
    for argv in (["compare", "--base", "a", "--head", "b", "--format", "json"],
                 ["compare", "--base", "a", "--head", "b", "--format", "html", "--json"],
                 ["history", "--format", "json"]):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(argv)
        assert e.value.code == 2
    capsys.readouterr()


@pytest.mark.unit
def test_error_edge_one_line_and_debug_traceback(tmp_path, capsys):
    missing = str(tmp_path / "nope.toml")
    assert main(["run", missing]) == 2
    err = capsys.readouterr().err
    assert _lines(err) == [f"harness: error: {missing}: suite file not found "
                           "(expected a TOML suite file)"]
    for argv in (["--debug", "run", missing], ["run", missing, "--debug"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "InputError" in err, argv
        assert _lines(err)[-1].startswith("harness: error: "), argv
    # a bad flag value before the command has parsed is still one line, or a traceback
    assert main(["--debug", "compare", "--out", "x"]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.slow
def test_verbose_logs_the_run_path(tmp_path):
    quiet = _harness("run", str(SMOKE), "--dry-run", "--data", str(tmp_path / "d"))
    assert quiet.returncode == 0, quiet.stderr
    assert " INFO " not in quiet.stderr
    for argv in (["-v", "run", str(SMOKE)], ["run", str(SMOKE), "--verbose"]):
        p = _harness(*argv, "--dry-run", "--data", str(tmp_path / "d"))
        assert p.returncode == 0, p.stderr
        assert "INFO harness.config.suite: suite smoke" in p.stderr, p.stderr
        assert "INFO harness.cli.run: hosts: this machine" in p.stderr, p.stderr
        assert p.stdout == quiet.stdout  # logging goes to stderr only
    assert not (tmp_path / "d").exists()


@pytest.mark.unit
def test_models_stats_data_writes_the_dataset_models_table(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), model)
    assert main(["models", "stats", str(model), "--data", str(tmp_path / "res")]) == 0
    assert (tmp_path / "res" / "_models" / "models.parquet").is_file()
    assert main(["models", "stats", str(tmp_path / "m.param")]) == 2
    assert _lines(capsys.readouterr().err)[-1].startswith("harness: error: ")


@pytest.mark.unit
def test_control_characters_never_reach_the_terminal(tmp_path, capsys):
    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\nengines = { onnxruntime = "installed" }\n[[models]]\n'
                     'name = "m\\u001b[31mRED\\u0007"\nbuiltin = "reduction_sum_block"\n')
    assert main(["run", str(suite), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "m\\x1b[31mRED\\x07" in out


@pytest.mark.unit
def test_suite_file_with_one_off_flags_is_refused(capsys):
    for extra in (["--timeout", "5"], ["--save-suite", "x.toml"]):
        assert main(["run", str(SMOKE), *extra, "--dry-run"]) == 2
        assert f"a suite file and {extra[0]} were both given" in capsys.readouterr().err
