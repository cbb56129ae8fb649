"""harness.store: atomic writes, schema versions (refuse newer, migrate older), partitions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.compare.synthetic import T0, frame, rows_for, write_dataset
from harness.results import DatasetError, load
from harness.store.atomic import atomic_write, atomic_write_text
from harness.store.journal import Journal
from harness.store.schema import (COLUMNS, MIGRATIONS, SCHEMA_VERSION, VERSION_KEY,
                                  file_version)
from harness.store.writer import RunWriter, recover_orphans


def _rows(run_id="run-a", **kw):
    return rows_for(processes=2, samples=5, run_id=run_id, rng=np.random.default_rng(1), **kw)


def _versions(path) -> set:
    return {pq.read_schema(p).metadata.get(VERSION_KEY) for p in path.rglob("*.parquet")}


# -- atomic write ---------------------------------------------------------------------------------
pytestmark = pytest.mark.unit

def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_atomic_write_keeps_old_file_when_writer_raises(tmp_path):
    target = tmp_path / "f.parquet"
    target.write_text("old")

    def half_then_fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.parquet"]


# -- rows and files carry the version -------------------------------------------------------------
def test_rows_and_files_carry_schema_version(tmp_path):
    w = RunWriter(tmp_path, "r1")
    for r in _rows(run_id="r1"):
        w.add(r)
    w.close()
    assert "schema_version" in dict(COLUMNS)
    assert _versions(tmp_path) == {str(SCHEMA_VERSION).encode()}
    df = load(tmp_path)
    assert len(df) == 2 and set(df["schema_version"]) == {SCHEMA_VERSION}
    assert set(pd.read_parquet(tmp_path)["schema_version"]) == {SCHEMA_VERSION}


def test_every_old_version_has_a_migration():
    assert set(MIGRATIONS) == set(range(1, SCHEMA_VERSION))
    assert file_version(None, "f") == 1 and file_version({}, "f") == 1


# -- reading: newer refused, older migrated -------------------------------------------------------
def _write_newer(root):
    path = root / "date=2026-05-28" / "engine=mnn" / "part-future.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"run_id": ["future"], "renamed_column": [1.0]})
    newer = str(SCHEMA_VERSION + 1).encode()
    pq.write_table(table.replace_schema_metadata({VERSION_KEY: newer}), path)
    return path


def test_newer_file_is_refused_with_one_line(tmp_path):
    write_dataset(_rows(), tmp_path)
    path = _write_newer(tmp_path)
    with pytest.raises(DatasetError) as e:
        load(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and e.value.exit_code == 2
    assert msg == (f"{path}: schema_version {SCHEMA_VERSION + 1} is newer than this harness "
                   f"reads ({SCHEMA_VERSION}); upgrade harness")


def test_compare_cli_refuses_newer_dataset_with_exit_2(tmp_path, capsys):
    from harness.cli import main
    write_dataset(_rows(), tmp_path)
    _write_newer(tmp_path)
    code = main(["compare", "--data", str(tmp_path), "--base", "3.4.0", "--head", "3.6.1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "is newer than this harness reads" in err and len(err.strip().splitlines()) == 1


def _write_v1(root, rows):
    """A file in layout 1 as the harness wrote it before versioning: plain pyarrow, no
    harness metadata, no schema_version column."""
    old = [(n, t) for n, t in COLUMNS if n != "schema_version"]
    from harness.store.schema import to_table
    table = to_table(rows).select([n for n, _ in old])
    r = rows[0]
    path = root / f"date={r['date']}" / f"engine={r['engine']}" / f"part-{r['run_id']}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(None), path, compression="zstd")
    assert VERSION_KEY not in (pq.read_schema(path).metadata or {})
    return path


def test_unversioned_files_load_through_the_migration(tmp_path):
    _write_v1(tmp_path, _rows(run_id="old", model="legacy", engine="ncnn"))
    df = load(tmp_path)
    assert len(df) == 2 and set(df["schema_version"]) == {1}
    assert set(df["engine"].astype(str)) == {"ncnn"} and len(df["latency_ms"].iloc[0]) == 5
    assert isinstance(df["model"].dtype, pd.CategoricalDtype)

    # mixed with current files: one frame, filters apply to both, dtypes as usual
    write_dataset(_rows(run_id="new", t0=T0 + 86400), tmp_path)
    df = load(tmp_path)
    assert len(df) == 4
    assert df.groupby("run_id", observed=True)["schema_version"].first().to_dict() == {
        "new": SCHEMA_VERSION, "old": 1}
    assert isinstance(df["engine"].dtype, pd.CategoricalDtype)
    assert isinstance(df["model"].dtype, pd.CategoricalDtype)
    assert list(load(tmp_path, model="legacy")["run_id"].astype(str)) == ["old", "old"]
    assert list(load(tmp_path, engine="mnn")["run_id"].astype(str)) == ["new", "new"]
    cols = load(tmp_path, columns=["model", "schema_version"], schema_version=1)
    assert list(cols.columns) == ["model", "schema_version"] and len(cols) == 2


# -- writer pieces --------------------------------------------------------------------------------
def test_recover_orphans_writes_journaled_rows(tmp_path):
    j = Journal(tmp_path, "dead")
    for r in _rows(run_id="dead"):
        j.append(r)
    j.close(done=False)  # the coordinator died before writing its Parquet files
    assert not list(tmp_path.rglob("*.parquet"))
    assert recover_orphans(tmp_path) == ["dead"]
    assert len(load(tmp_path)) == 2 and _versions(tmp_path) == {str(SCHEMA_VERSION).encode()}
    assert (tmp_path / "_journal" / "dead.done").read_text() == "recovered\n"
    assert recover_orphans(tmp_path) == []


def test_live_journal_is_not_recovered(tmp_path):
    w = RunWriter(tmp_path, "live", flush_every_s=3600)
    w.add(_rows(run_id="live")[0])
    assert recover_orphans(tmp_path) == []
    with pytest.raises(OSError):
        Journal(tmp_path, "live")
    w.close()


# -- JSON outputs carry the version ---------------------------------------------------------------
def test_compare_json_carries_schema_version():
    from harness.compare import compare
    rng = np.random.default_rng(2)
    rows = (rows_for(engine_version="a", rng=rng, samples=20)
            + rows_for(engine_version="b", rng=rng, samples=20))
    res = compare(frame(rows), "engine_version", "a", "b")
    assert json.loads(res.to_json())["schema_version"] == SCHEMA_VERSION


def test_history_json_records_carry_schema_version(tmp_path, capsys):
    from harness.cli import main
    write_dataset(_rows(), tmp_path)
    assert main(["history", "--data", str(tmp_path), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records and all(r["schema_version"] == SCHEMA_VERSION for r in records)


def test_models_stats_json_and_table_carry_schema_version(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from harness.cli import main
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(model))
    table_dir = tmp_path / "_models"
    assert main(["models", "stats", str(model), "--json", "--models-table", str(table_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["schema_version"] == SCHEMA_VERSION
    assert _versions(table_dir) == {str(SCHEMA_VERSION).encode()}


def test_a_torn_journal_line_hides_nothing_and_recovery_keeps_every_row(tmp_path, caplog):
    from harness.store.journal import read_journal
    rows = _rows(run_id="torn") + _rows(run_id="torn", model="m2")
    for r in rows:
        r["series"] = r["model"]  # (host, series, process) identifies a row in a run
    assert len(rows) == 4
    w = RunWriter(tmp_path, "torn", flush_every_s=0)
    for r in rows[:3]:
        w.add(r)
    w.close()  # three finished rows in the Parquet files
    path = tmp_path / "_journal" / "torn.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    # what a full disk leaves: the second row torn in the middle, no newline
    path.write_text(lines[0] + lines[1][: len(lines[1]) // 2] + "\n" + lines[2])
    (tmp_path / "_journal" / "torn.done").unlink()
    got = read_journal(tmp_path, "torn")
    assert len(got) == 2 and "damaged line" in caplog.text  # the row after the torn one too
    assert recover_orphans(tmp_path) == ["torn"]
    assert len(load(tmp_path)) == 3  # the torn row is kept from the Parquet file
    # a resume appends on a fresh line even when the journal ends mid-line
    with open(path, "a") as f:
        f.write('{"torn": ')
    j = Journal(tmp_path, "torn")
    j.append(rows[3])
    j.close(done=False)
    assert len(read_journal(tmp_path, "torn")) == 3
