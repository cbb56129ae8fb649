"""The host side of pushing the agent: an upload whose sha256 is not the coordinator's is
refused, a half-made copy is replaced, and concurrent setups of one host all succeed."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from harness.executors.ssh import _UNPACK_AGENT, agent_tarball

pytestmark = pytest.mark.unit


def _upload(d, raw: bytes) -> str:
    f = os.path.join(d, ".%s.tar" % secrets.token_hex(4))
    with open(f, "wb") as fh:
        fh.write(raw)
    return f


def _unpack(dest, sha, src):
    return subprocess.Popen([sys.executable, "-c", _UNPACK_AGENT, dest, sha, src],
                            stderr=subprocess.PIPE, text=True)


def test_unpack_verifies_replaces_and_races(tmp_path):
    sha, raw = agent_tarball()
    d = str(tmp_path)
    dest = os.path.join(d, sha[:16])
    p = _unpack(dest, "0" * 64, _upload(d, raw))
    assert p.wait() == 1 and "expected 000" in p.stderr.read()
    assert not os.path.exists(dest) and os.listdir(d) == []  # nothing unpacked, upload gone
    os.makedirs(dest)
    open(os.path.join(dest, "junk"), "w").close()  # an interrupted setup's half copy
    procs = [_unpack(dest, sha, _upload(d, raw)) for _ in range(4)]
    assert [p.wait() for p in procs] == [0] * 4, [p.stderr.read() for p in procs]
    assert sorted(os.listdir(dest)) == [".complete", "harness_agent"]
    assert os.listdir(d) == [sha[:16]]  # no uploads or temporary directories left
    assert os.path.exists(os.path.join(dest, "harness_agent", "__main__.py"))
