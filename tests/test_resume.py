"""`--resume` resumes the run it names, as that run: the same plan, its sweep tag, and never a
run that is still alive or has nothing to resume from."""

from __future__ import annotations

import pytest

from harness.config.suite import load_suite
from harness.coordinator import _resumable
from harness.errors import InputError
from harness.plan import expand
from harness.store.journal import Journal

pytestmark = pytest.mark.unit

SUITE = """
name = "{name}"
engines = {{ onnxruntime = "installed" }}
threads = {threads}
[[models]]
name = "m"
builtin = "reduction_sum_block"
"""


def _suite(tmp_path, name="s", threads="[1, 2]"):
    f = tmp_path / f"{name}-{len(threads)}.toml"
    f.write_text(SUITE.format(name=name, threads=threads))
    return load_suite(f)


def _journal(tmp_path, suite, run_id, statuses, tag="nightly"):
    j = Journal(tmp_path, run_id)
    for cfg, status in zip(expand(suite), statuses):
        j.append({"run_id": run_id, "suite": suite.name, "sweep_kind": "sweep",
                  "sweep_tag": tag, "host": cfg.host, "series": cfg.series,
                  "process": cfg.process, "status": status})
    return j


def test_resume_keeps_the_runs_identity(tmp_path):
    suite = _suite(tmp_path)
    _journal(tmp_path, suite, "r1", ["ok", "unreachable"]).close(done=False)
    kept, kind, tag = _resumable(suite, None, tmp_path, "r1")
    assert [r["status"] for r in kept] == ["ok"]  # the unreachable one is measured again
    assert (kind, tag) == ("sweep", "nightly")


def test_resume_refuses_another_plan_a_live_run_and_nothing(tmp_path):
    suite = _suite(tmp_path)
    _journal(tmp_path, suite, "r1", ["ok", "ok"]).close(done=False)
    with pytest.raises(InputError, match="measured another plan"):
        _resumable(_suite(tmp_path, "other"), None, tmp_path, "r1")
    with pytest.raises(InputError, match="measured another plan"):
        _resumable(_suite(tmp_path, threads="[4]"), None, tmp_path, "r1")
    live = _journal(tmp_path, suite, "r2", ["ok"])
    with pytest.raises(InputError, match="is still running"):
        _resumable(suite, None, tmp_path, "r2")
    live.close()
    Journal(tmp_path, "r3").close(done=False)  # a run killed before its first row
    with pytest.raises(InputError, match="no finished row"):
        _resumable(suite, None, tmp_path, "r3")
    with pytest.raises(InputError, match="no journal for run r4"):
        _resumable(suite, None, tmp_path, "r4")
