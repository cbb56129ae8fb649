"""A full disk under the journal: a row that does not fit is cut off again (the journal keeps
whole rows only), and what counts as a full disk."""

from __future__ import annotations

import errno
import json
import os

import pytest

from harness.errors import is_disk_full
from harness.store import journal as journal_mod
from harness.store.journal import Journal, read_journal

pytestmark = pytest.mark.unit


def test_a_row_that_does_not_fit_is_cut_off_again(tmp_path, monkeypatch):
    j = Journal(tmp_path, "run1")
    j.append({"host": "h", "series": "s", "process": 0, "status": "ok"})
    real_write = os.write
    calls = []

    def full_disk(fd, data):  # the disk takes part of the row, then no more
        if fd != j.file.fileno():
            return real_write(fd, data)
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:7]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_mod.os, "write", full_disk)
    with pytest.raises(OSError) as e:
        j.append({"host": "h", "series": "s", "process": 1, "status": "ok"})
    assert is_disk_full(e.value) and len(calls) == 2
    monkeypatch.undo()
    raw = (tmp_path / "_journal" / "run1.jsonl").read_bytes()
    assert raw.endswith(b"\n") and [json.loads(ln)["process"] for ln in raw.splitlines()] == [0]
    j.append({"host": "h", "series": "s", "process": 2, "status": "ok"})  # space again
    j.close()
    assert [r["process"] for r in read_journal(tmp_path, "run1")] == [0, 2]


def test_what_counts_as_a_full_disk():
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    # pyarrow says it in the text only
    assert is_disk_full(OSError("Error writing bytes to file. Detail: [errno 28] No space left "
                                "on device"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("No space left on device"))


def test_a_failed_write_on_the_host_is_the_hosts_failure_not_the_engines(tmp_path):
    from harness_agent import PROTOCOL
    from harness_agent.__main__ import record_failure, run
    for err, status in ((errno.ENOSPC, "host_error"), (errno.EROFS, "host_error"),
                        (errno.EDQUOT, "host_error"), (errno.ENOENT, "error")):
        res = {"phase": "load"}
        try:
            raise OSError(err, os.strerror(err))
        except OSError as e:
            record_failure(res, e)
        assert res["status"] == status, (err, res)
        assert os.strerror(err) in res["error"] and "phase load" in res["error"]
    # the lease cannot be renewed because its directory cannot be written: host_error too
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = run("measure", {"protocol": PROTOCOL, "lease": {"dir": str(blocker / "work"),
                                                           "owner": "o", "ttl_s": 5}}, None)
    assert res["status"] == "host_error", res
    assert res["error"].startswith(f"renewing the host lease in {blocker / 'work'} failed: ")
