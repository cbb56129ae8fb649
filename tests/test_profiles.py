"""Per-layer profiles kept: FLOPs attributed to engine layers, the `_profiles` side table, the
per-layer-type comparison, and `harness profile` end to end on the real engines."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from harness.cli import main
from harness.diagnose.profiles import (
    attribute,
    by_type,
    compare_profiles,
    direct_by_name,
    direct_by_value,
    find_profile,
    profile_rows,
)
from harness.diagnose.run import Config, Profile, write_profile
from harness.errors import InputError
from harness.store.schema import SCHEMA_VERSION, VERSION_KEY
from harness.store.tables import PROFILES_DIR, read_profile_rows

# an ONNX graph: Conv(c) -> BatchNormalization(b) -> Relu(r) -> MatMul(m) -> Softmax(s)
NODES = [(["c"], 1000), (["b"], 10), (["r"], 10), (["m"], 500), (["s"], 5)]
CHAINS = {"c": ["c", "b", "r"], "b": ["b", "r"], "r": ["r"], "m": ["m"], "s": ["s"]}


@pytest.mark.unit
def test_fused_ops_attribution_gives_fused_successors_to_the_op_named_after_the_head():
    # MNN: op "c" (Conv with BN and Relu fused in), op "m", an op of its own ("m_raster_0")
    layers = [{"name": "conv0"}, {"name": "m_raster_0", "type": "Raster"}, {"name": "m"},
              {"name": "c#2"}]
    tensors = {"c": 0, "b": 1, "r": 2, "m": 3, "s": 4}
    direct = direct_by_name(layers, tensors, {"conv0": "c"})
    assert direct == {"c": 0, "m": 2}
    owned, lost = attribute(NODES, CHAINS, direct)
    assert owned == {0: [0, 1, 2], 2: [3]} and lost == 5  # the Softmax matched no layer
    # an ONNX op MNN split into layout copies and a compute op, all named s_raster_N
    layers += [{"name": "s_raster_0", "type": "Raster"}, {"name": "s_raster_1",
                                                         "type": "Softmax"}]
    direct = direct_by_name(layers, tensors, {"conv0": "c"})
    assert direct == {"c": 0, "m": 2, "s": 5}
    assert attribute(NODES, CHAINS, direct) == ({0: [0, 1, 2], 2: [3], 5: [4]}, 0)


@pytest.mark.unit
def test_by_value_attribution_gives_fused_producers_to_the_layer_of_the_later_tensor():
    # ncnn: "convrelu_0" produced a blob equal to r (Relu's output); "fc" matched m by value;
    # a blob matched only by order agreed with nothing and is left out
    layers = [{"name": "in0"}, {"name": "convrelu_0"}, {"name": "fc"}, {"name": "sm"}]
    walked = [{"name": "convrelu_0", "tensors": {"1": {"ref_name": "r", "match": "value"}}},
              {"name": "fc", "tensors": {"2": {"ref_name": "m", "match": "value"}}},
              {"name": "sm", "tensors": {"3": {"ref_name": "s", "match": "order"}}}]
    direct = direct_by_value(layers, walked)
    assert direct == {"r": 1, "m": 2}
    owned, lost = attribute(NODES, CHAINS, direct)
    assert owned == {1: [0, 1, 2], 2: [3]} and lost == 5


def _profile(pid="20260101T000000Z-aaaaaa", engine="mnn", version="3.4.0", conv_ms=2.0,
             host="local") -> Profile:
    layers = [{"index": 0, "name": "c", "type": "Convolution", "ms": conv_ms, "flops": 2_000_000,
               "onnx_nodes": ["Conv@0", "Relu@0"]},
              {"index": 1, "name": "c2", "type": "Convolution", "ms": 1.0, "flops": 1_000_000,
               "onnx_nodes": ["Conv@1"]},
              {"index": 2, "name": "r", "type": "Raster", "ms": 1.0, "flops": None,
               "onnx_nodes": []}]
    return Profile("m", engine, version, Config("cpu", "fp32", 2), ("cpu", "fp32"),
                   "mnn-callback", layers, 5, "a note", profile_id=pid,
                   created_at=1_780_000_000.0, host=host, model_sha256="s" * 64,
                   artifact_sha256="a" * 64, input_shape="x:1x3x8x8",
                   flops_source="onnx static analysis, layers matched fused-ops",
                   model_flops=3_100_000)


@pytest.mark.unit
def test_types_rows_and_the_stored_file(tmp_path):
    p = _profile()
    (conv, raster) = by_type(p.layers)
    assert conv["count"] == 2 and conv["ms"] == 3.0 and conv["time_share"] == 0.75
    assert conv["flops"] == 3_000_000 and conv["gflops_per_s"] == pytest.approx(1.0)
    assert raster["flops"] is None and raster["gflops_per_s"] is None
    rows = profile_rows(p)
    assert [r["level"] for r in rows] == ["layer"] * 3 + ["type"] * 2 + ["total"]
    assert rows[0]["gflops_per_s"] == pytest.approx(1.0) and rows[0]["time_share"] == 0.5
    assert rows[0]["onnx_nodes"] == "Conv@0,Relu@0"
    path = write_profile(tmp_path, p)
    assert path.parent.parent == tmp_path / PROFILES_DIR and p.file == path
    assert path.name == f"part-{p.profile_id}.parquet"
    table = pq.read_table(path)
    assert table.schema.metadata[VERSION_KEY] == str(SCHEMA_VERSION).encode()
    back = read_profile_rows(path)
    assert {r["schema_version"] for r in back} == {SCHEMA_VERSION}
    assert back[-1]["model_flops"] == 3_100_000 and back[-1]["ms"] == 4.0
    assert back[0]["created_at"] == pytest.approx(p.created_at)
    assert find_profile(tmp_path, p.profile_id) == path
    with pytest.raises(InputError, match="no stored profile"):
        find_profile(tmp_path, "nope")


@pytest.mark.unit
def test_compare_per_layer_type(tmp_path, capsys):
    a = _profile("20260101T000000Z-aaaaaa", version="3.4.0", conv_ms=2.0)
    b = _profile("20260102T000000Z-bbbbbb", version="3.6.1", conv_ms=4.0)
    b.layers.append({"index": 3, "name": "s", "type": "Softmax", "ms": 0.5, "flops": 10,
                     "onnx_nodes": ["Softmax@0"]})
    c = compare_profiles(profile_rows(a), profile_rows(b))
    conv = c["types"][0]
    assert conv["layer_type"] == "Convolution" and conv["ms_a"] == 3.0 and conv["ms_b"] == 5.0
    assert conv["ratio"] == pytest.approx(5 / 3) and conv["count_a"] == conv["count_b"] == 2
    soft = next(t for t in c["types"] if t["layer_type"] == "Softmax")
    assert soft["ms_a"] is None and soft["ratio"] is None and soft["count_b"] == 1
    assert c["total"]["ratio"] == pytest.approx(6.5 / 4) and c["notes"] == []
    # through the command: ids in --data, or a file path of another dataset
    write_profile(tmp_path / "one", a)
    write_profile(tmp_path / "two", b)
    assert main(["profile", "--data", str(tmp_path / "one"), "--compare", a.profile_id,
                 str(b.file)]) == 0
    out = capsys.readouterr().out
    assert "3.4.0" in out and "3.6.1" in out and "Convolution" in out and "1.67" in out
    assert main(["profile", "--data", str(tmp_path / "one"), "--compare", a.profile_id,
                 str(b.file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["types"][0]["layer_type"] == "Convolution"
    assert main(["profile", "--data", str(tmp_path / "one"), "--compare", a.profile_id,
                 a.profile_id, "--engine", "mnn"]) == 2
    assert main(["profile", "--engine", "mnn"]) == 2
    assert "--model" in capsys.readouterr().err


@pytest.mark.engines
@pytest.mark.parametrize("engine", ["mnn", "ncnn"])
def test_profile_is_kept_with_flops_per_layer_and_type(engine, tmp_path, capsys):
    data = tmp_path / "results"
    assert main(["profile", "--model", "ppocr_cls", "--engine", engine, "--iterations", "2",
                 "--data", str(data), "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    rows = read_profile_rows(find_profile(data, j["profile_id"]))
    layers = [r for r in rows if r["level"] == "layer"]
    types = [r for r in rows if r["level"] == "type"]
    (total,) = [r for r in rows if r["level"] == "total"]
    assert len(layers) == total["count"] == len(j["layers"]) > 50
    assert sum(t["count"] for t in types) == len(layers)
    assert sum(t["time_share"] for t in types) == pytest.approx(1.0)
    conv = next(t for t in types if t["layer_type"] == "Convolution")
    assert conv["flops"] > 0 and conv["gflops_per_s"] > 0
    # the static analysis' FLOPs, nearly all of them matched to layers
    assert total["flops"] >= 0.9 * total["model_flops"] and total["model_flops"] > 3e7
    assert rows[0]["timing"] == {"mnn": "mnn-callback", "ncnn": "ncnn-extract-delta"}[engine]
    if engine == "ncnn":
        assert rows[0]["note"].startswith("per-layer times need ncnn built with "
                                          "NCNN_BENCHMARK; this is the wheel")


@pytest.mark.engines
def test_two_engine_versions_profiled_and_compared_per_layer_type(tmp_path, capsys):
    """MNN 3.0.0 (provisioned into a virtual environment, as sweeps do) against the installed
    MNN; both profiles are kept and --compare gives the same comparison from the files."""
    assert main(["profile", "--model", "reduction_sum_block", "--engine", "mnn==3.0.0,mnn",
                 "--iterations", "3", "--data", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    c = out["comparison"]
    assert c["a"]["engine_version"] == "3.0.0" and c["b"]["engine_version"] != "3.0.0"
    assert c["notes"] == [] and [p["engine_version"] for p in out["profiles"]] == [
        c["a"]["engine_version"], c["b"]["engine_version"]]
    conv = next(t for t in c["types"] if t["layer_type"] == "Convolution")
    assert conv["count_a"] == conv["count_b"] == 1 and conv["ratio"] > 0
    assert conv["gflops_per_s_a"] > 0 and conv["gflops_per_s_b"] > 0
    ids = [p["profile_id"] for p in out["profiles"]]
    assert main(["profile", "--data", str(tmp_path), "--compare", *ids, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["types"] == c["types"]
