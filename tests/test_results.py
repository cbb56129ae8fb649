"""harness.results: loading the Parquet dataset, filters, dtypes, long form, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest

from harness.compare.synthetic import T0, rows_for, write_dataset
from harness.errors import HarnessError, InputError
from harness.results import (DIMENSIONS, DatasetError, latency_arrays, load, long_form,
                             measured)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(3)
    rows = []
    for engine, versions in (("mnn", ("3.4.0", "3.6.1")), ("ncnn", ("1.0.20240410",))):
        for v in versions:
            for th in (1, 2):
                rows += rows_for(engine=engine, engine_version=v, engine_version_requested=v,
                                 model="ppocr_det", threads=th, processes=2, samples=7,
                                 run_id="run-a", rng=rng)
    rows += rows_for(model="ppocr_rec", processes=1, samples=3, run_id="run-b",
                     sweep_tag="nightly", t0=T0 + 86400 * 3, rng=rng)
    rows += rows_for(model="ppocr_rec", processes=1, status="error", run_id="run-b",
                     sweep_tag="nightly", t0=T0 + 86400 * 3, rng=rng)
    write_dataset(rows, root)
    # things a reader must skip: the journal, temp files, dot files
    (root / "_journal").mkdir()
    (root / "_journal" / "run-a.jsonl").write_text('{"torn": ')
    (root / "_journal" / "junk.parquet").write_bytes(b"not parquet")
    part = next(root.glob("date=*/engine=mnn"))
    (part / ".part-x.parquet.123.tmp").write_bytes(b"half written")
    (part / ".hidden.parquet").write_bytes(b"nope")
    return root


def test_load_all_dtypes(data):
    df = load(data)
    assert len(df) == 2 * 2 * 2 + 2 * 2 + 2  # mnn 8, ncnn 4, run-b 2
    for c in ("model", "engine", "engine_version", "backend", "precision", "host", "status",
              "verdict", "arch", "date", "run_id"):
        assert isinstance(df[c].dtype, pd.CategoricalDtype), c
    assert set(df["engine"].astype(str)) == {"mnn", "ncnn"}
    assert df["threads"].dtype.kind == "i"
    first = df[df["status"] == "ok"]["latency_ms"].iloc[0]
    assert len(first) == 7 and all(isinstance(x, float) for x in first)
    assert str(df["started_at"].dtype).startswith("datetime64")
    assert all(c in df.columns for c in DIMENSIONS)


def test_filters(data):
    assert set(load(data, engine="mnn")["engine"].astype(str)) == {"mnn"}
    df = load(data, engine="mnn", engine_version=["3.4.0", "3.6.1"], threads=2)
    assert len(df) == 4 and set(df["threads"]) == {2}
    assert len(load(data, threads="2")) == len(load(data, threads=2))  # CLI passes text
    assert len(load(data, run_id="run-b")) == 2
    assert len(load(data, sweep_tag="nightly")) == 2
    assert len(load(data, sweep_tag=None)) == 12                     # None: is null
    assert len(load(data, engine_version=("3.4.0",), threads=[1, 2])) == 4 + 2  # + run-b
    assert len(load(data, where=pc.field("process") == 1)) == 6
    cols = load(data, columns=["model", "latency_ms"], model="ppocr_rec")
    assert list(cols.columns) == ["model", "latency_ms"] and len(cols) == 2


def test_missing_and_empty_datasets(tmp_path, data):
    with pytest.raises(DatasetError) as e:
        load(tmp_path / "nope")
    assert isinstance(e.value, HarnessError) and "\n" not in str(e.value)
    assert "no results dataset" in str(e.value)
    (tmp_path / "empty" / "_journal").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no Parquet files"):
        load(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no rows match engine='tflite'"):
        load(data, engine="tflite")
    assert load(data, engine="tflite", allow_empty=True).empty


def test_bad_filters(data):
    with pytest.raises(InputError, match="not a dataset column"):
        load(data, flavour="x")
    with pytest.raises(InputError, match="wrong type"):
        load(data, threads="two")
    with pytest.raises(InputError, match="not dataset columns"):
        load(data, columns=["model", "nope"])


def test_long_form(data):
    df = load(data, engine="ncnn")
    lf = long_form(df)
    assert len(lf) == 4 * 7
    assert lf["latency_ms"].dtype == float
    assert list(lf["sample"].iloc[:8]) == [0, 1, 2, 3, 4, 5, 6, 0]
    np.testing.assert_allclose(lf["latency_ms"].iloc[:7], df["latency_ms"].iloc[0])
    assert isinstance(lf["model"].dtype, pd.CategoricalDtype)
    # rows without samples (errors) vanish
    assert len(long_form(load(data, run_id="run-b"))) == 3


def test_latency_arrays_object_column():
    s = pd.Series([[1.0, 2.0], None, np.array([3.0]), []], dtype=object)
    values, lengths = latency_arrays(s)
    assert list(values) == [1.0, 2.0, 3.0] and list(lengths) == [2, 0, 1, 0]


def test_measured(data):
    df = load(data, run_id="run-b")
    assert list(measured(df)["status"].astype(str)) == ["ok"]


def test_sample_dataset_loads(sample_dataset):
    df = load(sample_dataset)
    assert len(df) > 0 and isinstance(df["engine"].dtype, pd.CategoricalDtype)
    assert len(long_form(df)) == int(df["latency_ms"].list.len().fillna(0).sum())
