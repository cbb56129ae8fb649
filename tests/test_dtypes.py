"""Data types come from the model, everywhere (issue 12, section 1).

Inputs take the dtype the model declares (or ``--shape``'s / a suite's), integers get values in
a small range that stays inside the table they index (or a given range, or a literal value),
scalars and bools work, inputs are matched to the model by name, pnnx is told every input with
its type, and each engine adapter feeds and reads the dtypes its engine has (MNN: int32 where
the model has int64; the values are compared with the int64 reference).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.config.suite import InputSpec, parse_suite
from harness.errors import InputError
from harness.models.converters import Artifact, pnnx_inputshape
from harness.models.errors import ModelError
from harness.models.inputs import (DEFAULT_INT_RANGE, bind_inputs, make_input, onnx_inputs,
                                   prepare_inputs)
from harness.models.shapes import InputText, format_shapes, parse_inputs, shape_entries

from . import dtype_models


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# -- the shape grammar takes a dtype ------------------------------------------------------------
@pytest.mark.unit
def test_shape_text_takes_an_optional_dtype():
    assert parse_inputs("ids:1x16:int64,x:1x3") == [InputText("ids", (1, 16), "int64"),
                                                    InputText("x", (1, 3), None)]
    assert parse_inputs("1x16:int32") == [InputText(None, (1, 16), "int32")]
    # a name may hold ':' (TensorFlow exports): the text is read from the right
    assert parse_inputs("input:0:1x3:float16") == [InputText("input:0", (1, 3), "float16")]
    assert parse_inputs("sr:scalar:int64") == [InputText("sr", (), "int64")]
    assert shape_entries("ids:1x16:int64,m:1x16") == [
        {"name": "ids", "shape": [1, 16], "dtype": "int64"}, {"name": "m", "shape": [1, 16]}]
    assert format_shapes([("x", (1, 2)), ("sr", ())]) == "x:1x2,sr:scalar"
    with pytest.raises(ModelError, match="unknown dtype 'int63'"):
        parse_inputs("ids:1x16:int63")


@pytest.mark.unit
def test_shape_flag_dtype_reaches_the_suite(tmp_path, capsys):
    import tomllib
    from harness.cli import main
    src = dtype_models.mixed(tmp_path / "mixed.onnx")
    saved = tmp_path / "saved.toml"
    assert main(["run", "--model", str(src), "--shape", "ids:1x6:int32,x:1x6x8", "--engine",
                 "onnxruntime", "--dry-run", "--save-suite", str(saved)]) == 0
    capsys.readouterr()
    inputs = tomllib.loads(saved.read_text())["models"][0]["inputs"]
    assert inputs == [{"name": "ids", "shape": [1, 6], "dtype": "int32"},
                      {"name": "x", "shape": [1, 6, 8]}]


# -- input values ---------------------------------------------------------------------------------
@pytest.mark.unit
def test_input_values_by_dtype_range_value_and_file(tmp_path):
    ints = make_input(InputSpec(shape=(2, 50), dtype="int64"))
    assert ints.dtype == np.int64 and ints.min() >= DEFAULT_INT_RANGE[0]
    assert ints.max() <= DEFAULT_INT_RANGE[1]
    # the table an input indexes bounds the default range
    assert make_input(InputSpec(shape=(200,), dtype="int64"), index_limit=3).max() <= 2
    ranged = make_input(InputSpec(shape=(500,), dtype="int32", range=(5, 7)))
    assert set(np.unique(ranged)) == {5, 6, 7}
    rate = make_input(InputSpec(shape=(), dtype="int64", value=16000))
    assert rate.shape == () and rate.dtype == np.int64 and int(rate) == 16000
    mask = make_input(InputSpec(shape=(64,), dtype="bool"))
    assert mask.dtype == np.bool_ and 0 < mask.sum() < 64
    floats = make_input(InputSpec(shape=(100,), dtype="float32", range=(2.0, 3.0)))
    assert floats.dtype == np.float32 and 2.0 <= floats.min() and floats.max() < 3.0
    np.savez(tmp_path / "in.npz", ids=np.arange(4, dtype=np.int64).reshape(1, 4),
             other=np.zeros(3))
    got = make_input(InputSpec(shape=(1, 4), name="ids", dtype="int64",
                               npy=tmp_path / "in.npz"))
    assert got.tolist() == [[0, 1, 2, 3]]


@pytest.mark.unit
def test_input_cache_key_depends_on_dtype_range_and_value():
    keys = {InputSpec(shape=(1,)).key(), InputSpec(shape=(1,), dtype="int64").key(),
            InputSpec(shape=(1,), dtype="int64", range=(0, 3)).key(),
            InputSpec(shape=(1,), dtype="int64", value=16000).key()}
    assert len(keys) == 4


@pytest.mark.unit
def test_suite_inputs_take_dtype_range_value_and_scalars(tmp_path):
    model = dtype_models.scalar_rate(tmp_path / "scalar.onnx")
    data = {"name": "s", "engines": {"onnxruntime": ["installed"]},
            "models": [{"name": "m", "onnx": str(model),
                        "inputs": [{"name": "sr", "shape": [], "value": 16000},
                                   {"name": "x", "shape": [1, 4, 8], "range": [-1, 1]}]}]}
    spec = parse_suite(data, "t", tmp_path).models[0]
    assert spec.inputs[0] == InputSpec(shape=(), name="sr", value=16000)
    assert spec.inputs[1].range == (-1, 1) and spec.inputs[1].dtype is None
    bad = json.loads(json.dumps(data))
    bad["models"][0]["inputs"][0]["value"] = "fast"
    with pytest.raises(InputError, match="value"):
        parse_suite(bad, "t", tmp_path)
    bad["models"][0]["inputs"][0].update(value=1, range=[0, 2])
    with pytest.raises(InputError, match="one of npy, range or value"):
        parse_suite(bad, "t", tmp_path)


# -- inputs bound to the model by name, dtypes from the model ------------------------------------
@pytest.mark.unit
def test_inputs_are_bound_by_name_in_model_order_with_the_models_dtypes(tmp_path):
    model = onnx_inputs(dtype_models.mixed(tmp_path / "mixed.onnx"))
    assert [(m.name, m.dtype) for m in model] == [
        ("ids", "int64"), ("mask", "bool"), ("scale", "int32"), ("x", "float32")]
    assert model[0].index_limit == 7  # ids index a 7-row table
    given = (InputSpec(shape=(1, 6, 8), name="x"), InputSpec(shape=(1, 6), name="scale",
                                                             dtype="int64"))
    bound = bind_inputs("mixed", model, given)
    assert [(s.name, s.dtype) for s, _ in bound] == [
        ("ids", "int64"), ("mask", "bool"), ("scale", "int64"), ("x", "float32")]
    with pytest.raises(InputError, match="no model input named idz"):
        bind_inputs("mixed", model, (InputSpec(shape=(1, 6), name="idz"),))


@pytest.mark.unit
def test_reference_of_a_mixed_dtype_model_needs_no_flags(tmp_path, cache):
    src = dtype_models.mixed(tmp_path / "mixed.onnx")
    specs = tuple(InputSpec(shape=(1, 6, 8) if n == "x" else (1, 6), name=n)
                  for n in ("x", "ids", "mask", "scale"))  # not the model's order
    inputs = prepare_inputs("mixed", src, specs, "sha")
    assert inputs.names == ("ids", "mask", "scale", "x")
    assert inputs.dtypes == ("int64", "bool", "int32", "float32")
    assert inputs.output_dtypes == ("int64", "float32")
    ids = np.load(inputs.inputs[0])
    assert ids.max() <= 6  # inside the table


@pytest.mark.unit
def test_pnnx_is_told_every_input_with_its_type():
    assert pnnx_inputshape([(1, 2), (1, 3, 8, 8)], ["int64", "float32"]) == "[1,2]i64,[1,3,8,8]f32"
    assert pnnx_inputshape([(1, 6)], ["bool"]) == "[1,6]bool"


@pytest.mark.unit
def test_job_input_names_follow_the_inputs_by_name():
    from harness.jobs import job_input_names
    from harness.models.inputs import InputSet
    art = Artifact("ncnn", {}, "pnnx", ("in0", "in1"), ("out0",),
                   source_input_names=("a", "b"))
    inputs = InputSet("k", "", ("b", "a"), ((1,), (1,)), (), ())
    assert job_input_names(art, inputs) == ["in1", "in0"]


# -- engines --------------------------------------------------------------------------------------
def _rows(tmp_path, models: dict, engines=("mnn", "ncnn", "onnxruntime"), inputs=None):
    """Run a suite of ``models`` ({name: onnx path}) on ``engines``; {(model, engine): row}."""
    from harness.config.suite import load_suite
    from harness.coordinator import run_suite
    lines = ['name = "dtypes"', "engines = { " + ", ".join(f'{e} = "installed"'
                                                             for e in engines) + " }",
             "threads = [1]", "[measure]", "warmup = 1", "min_iterations = 3",
             "min_seconds = 0.0", "timeout_s = 120"]
    for name, path in models.items():
        lines += ["[[models]]", f'name = "{name}"', f'onnx = "{path}"']
        for inp in (inputs or {}).get(name, []):
            lines += ["[[models.inputs]]"] + [f"{k} = {json.dumps(v)}" for k, v in inp.items()]
    (tmp_path / "suite.toml").write_text("\n".join(lines) + "\n")
    report = run_suite(load_suite(tmp_path / "suite.toml"), tmp_path / "results", progress=False)
    return {(r["model"], r["engine"]): r for r in report.rows}


@pytest.mark.engines
@pytest.mark.slow
def test_mixed_dtype_model_runs_ad_hoc_with_only_model(tmp_path, cache):
    """int64, int32, bool and float inputs, int64 + float outputs, `harness run --model` with
    nothing else: MNN (int64 held as int32, noted) and onnxruntime ok/ok; pnnx cannot take a
    bool input and says so (a clean convert_error with its own words)."""
    import pandas as pd
    from harness.cli import main
    src = dtype_models.mixed(tmp_path / "mixed.onnx")
    assert main(["run", "--model", str(src), "--data", str(tmp_path / "adhoc"),
                 "--no-progress"]) == 1  # ncnn's convert_error counts as failed
    df = pd.read_parquet(tmp_path / "adhoc")
    got = {r.engine: (r.status, r.verdict) for r in df.itertuples()}
    assert got == {"mnn": ("ok", "ok"), "ncnn": ("convert_error", "convert_error")}
    mnn = df[df.engine == "mnn"].iloc[0]
    assert "output label is int32 in MNN (model: int64)" in str(mnn.notes)
    outs = {o["name"]: o for o in json.loads(mnn.outputs_json)}
    assert outs["label"]["dtype"] == "int32" and outs["label"]["max_abs_err"] == 0.0
    assert "unsupported tensor elem data type 9" in str(df[df.engine == "ncnn"].iloc[0].error)
    # onnxruntime, asked for, feeds the model's own dtypes
    assert main(["run", "--model", str(src), "--engine", "onnxruntime", "--data",
                 str(tmp_path / "ort"), "--no-progress"]) == 0
    ort = pd.read_parquet(tmp_path / "ort").iloc[0]
    assert (ort.status, ort.verdict) == ("ok", "ok")


@pytest.mark.engines
@pytest.mark.slow
def test_int_output_case(tmp_path, cache):
    """cases/int-output: MNN reads labels as int32 and they equal the int64 reference (ok/ok);
    ncnn has no ArgMax layer and its own words say so."""
    rows = _rows(tmp_path, {"argmax": dtype_models.argmax_labels(tmp_path / "argmax.onnx")},
                 engines=("mnn", "ncnn"))
    mnn, ncnn = rows[("argmax", "mnn")], rows[("argmax", "ncnn")]
    assert (mnn["status"], mnn["verdict"]) == ("ok", "ok")
    labels = {o["name"]: o for o in json.loads(mnn["outputs_json"])}["labels"]
    assert labels["dtype"] == "int32" and labels["max_abs_err"] == 0.0
    assert labels["cosine"] == 1.0
    assert ncnn["status"] in ("error", "unsupported", "convert_error")
    assert "ArgMax not exists or registered" in ncnn["error"]


@pytest.mark.engines
@pytest.mark.slow
def test_inputs_matched_by_name_and_scalar_values_on_every_engine(tmp_path, cache):
    """Inputs listed in another order than the model's reach the right inputs on every engine;
    a 0-d int64 sample rate given as a value runs where the engine has the ops."""
    models = {"two": dtype_models.two_inputs(tmp_path / "two.onnx"),
              "rate": dtype_models.scalar_rate(tmp_path / "rate.onnx")}
    inputs = {"two": [{"name": "b", "shape": [1, 3, 1, 1]}, {"name": "a", "shape": [1, 3, 4, 4]}],
              "rate": [{"name": "sr", "shape": [], "value": 16000}]}
    rows = _rows(tmp_path, models, inputs=inputs)
    got = {k: (r["status"], r["verdict"]) for k, r in rows.items()}
    for engine in ("mnn", "ncnn", "onnxruntime"):
        assert got[("two", engine)] == ("ok", "ok"), rows[("two", engine)].get("error")
    assert got[("rate", "mnn")] == got[("rate", "onnxruntime")] == ("ok", "ok")
    # pnnx keeps the Cast as Tensor.to, a layer ncnn does not have: its words are kept
    assert got[("rate", "ncnn")][0] in ("error", "unsupported", "convert_error")
    assert "Tensor.to" in rows[("rate", "ncnn")]["error"]


@pytest.mark.engines
def test_native_mnn_file_declares_its_inputs(tmp_path, cache):
    """An .mnn file given alone: names, dtypes (MNN's int32 for int64) and static shapes come
    from the file, so no --shape is needed and integer inputs get integer values."""
    from harness.models.converters import to_mnn
    from harness.models.prepare import prepare_model
    from harness.models.registry import model_spec
    art = to_mnn(dtype_models.mixed(tmp_path / "mixed.onnx"))
    spec = model_spec(str(art.files["mnn"]), ["mnn"])
    assert {i.name: i.shape for i in spec.inputs} == {
        "ids": (1, 6), "mask": (1, 6), "scale": (1, 6), "x": (1, 6, 8)}
    pm = prepare_model(spec, ["mnn"])
    got = dict(zip(pm.inputs.names, pm.inputs.dtypes))
    assert got == {"ids": "int32", "mask": "int32", "scale": "int32", "x": "float32"}
