"""Expansion order: processes outermost, engine versions innermost (ABAB interleaving)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from harness.plan import expand
from harness.config.suite import parse_suite

pytestmark = pytest.mark.unit

TEXT = """
name = "p"
engines = { mnn = ["3.4.0", "3.6.1"] }
threads = [1, 2, 4]
[measure]
processes = 3
[[models]]
name = "u"
builtin = "convtranspose_upsampler"
"""


def test_versions_alternate_and_processes_spread():
    suite = parse_suite(tomllib.loads(TEXT), "p.toml", Path("."))
    configs = expand(suite, ["h1", "h2"])
    assert len(configs) == 2 * 3 * 2 * 3
    per_host = [c for c in configs if c.host == "h1"]
    versions = [c.version for c in per_host]
    assert versions[:6] == ["3.4.0", "3.6.1"] * 3  # ABAB within a round
    procs = [c.process for c in per_host]
    assert procs == sorted(procs)  # round 0 of everything before round 1 of anything
    assert len({(c.series, c.process) for c in configs}) == len(configs)
