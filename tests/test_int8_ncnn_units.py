"""ncnn int8 without engines or compilers: ncnn2table's command line and list files, the
.param rewriting around the tools, int8 layer counts, where the tools come from, and the
recipe's own tests/prng.h."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from harness.builds.build import BuildContext
from harness.builds.recipes import ncnn as recipe
from harness.builds.source import EngineSource
from harness.config.suite import parse_suite
from harness.errors import InputError
from harness.models.converters import Artifact, ConvertError
from harness.models.quantize import (Calibration, NcnnTools, QuantizerUnavailable, _ncnn_lists,
                                     merge_params, ncnn2table_argv, ncnn_input_blobs,
                                     ncnn_quantizer, ncnn_sample, ncnn_tools, tool_param)
from harness_agent.engines.ncnn import param_int8_layers

pytestmark = pytest.mark.unit

TOOLS = NcnnTools(Path("/b/ncnn2table"), Path("/b/ncnn2int8"),
                  "src:ncnn-20260526 sha256:1e6a1d3c6285", "ncnn-1e6a1d3c6285-x")

# a float .param as pnnx writes it (Reshape with batch axes and a batch token) ...
FLOAT = """7767517
6 6
Input                    in0                      0 1 in0
Convolution              conv_0                   1 1 in0 1 0=8 1=3 4=1 5=1 6=216
Split                    splitncnn_0              1 2 1 2 3
Reshape                  reshape_1                1 1 2 4 12=0 13=0 6="1,1,//(96,0n),0n"
InnerProduct             fc_2                     1 1 4 5 0=10 1=1 2=80
BinaryOp                 add_3                    2 1 3 5 out0 0=0
"""
# ... and as ncnn2int8 of an older ncnn writes it back: Reshape without its batch axes, the
# expression as the tools read it, defaults left out, the convolution quantized
TOOLS_OUT = """7767517
6 6
Input                    in0                      0 1 in0
Convolution              conv_0                   1 1 in0 1 0=8 1=3 4=1 6=216 8=2
Split                    splitncnn_0              1 2 1 2 3
Reshape                  reshape_1                1 1 2 4 6="1,1,//(96,1),1"
InnerProduct             fc_2                     1 1 4 5 0=10 1=1 2=80
BinaryOp                 add_3                    2 1 3 5 out0
"""


def test_int8_layers_are_counted_from_the_param_and_routing_layers_are_not_ops():
    assert param_int8_layers(FLOAT) == (0, 4)  # Input and Split are not ops
    assert param_int8_layers(TOOLS_OUT) == (1, 4)
    gemm = FLOAT.replace("6 6", "7 7") + "Gemm g 1 1 out0 y 18=2\nInnerProduct f 1 1 y z 8=0\n"
    assert param_int8_layers(gemm) == (1, 6)  # Gemm's term is param 18; 8=0 is float
    with pytest.raises(ValueError, match="7767517"):
        param_int8_layers("not a param\n")


def test_argv_has_one_list_per_input_and_shapes_in_ncnn_order():
    argv = ncnn2table_argv(TOOLS, Path("tool.param"), Path("/m/model.bin"),
                           ["calib/list0.txt", "calib/list1.txt"], [(3, 48, 192), (16,)],
                           "model.table", "kl", 2)
    assert argv == ["/b/ncnn2table", "tool.param", "/m/model.bin",
                    "calib/list0.txt,calib/list1.txt", "model.table",
                    "shape=[192,48,3],[16]", "method=kl", "type=1", "thread=2"]
    assert ncnn_quantizer(TOOLS, "aciq") == \
        "ncnn2table method=aciq + ncnn2int8 (src:ncnn-20260526 sha256:1e6a1d3c6285)"


def test_input_blobs_in_the_order_of_the_input_layers():
    two = FLOAT.replace("Input                    in0                      0 1 in0",
                        "Input in1 0 1 in1\nInput in0 0 1 in0")
    assert ncnn_input_blobs(FLOAT) == ["in0"]
    assert ncnn_input_blobs(two) == ["in1", "in0"]


def test_samples_are_written_as_ncnn2table_reads_them(tmp_path):
    cal_dir = tmp_path / "cal"
    cal_dir.mkdir()
    files = []
    for i in range(2):
        p = cal_dir / f"s{i}.npy"
        np.save(p, np.full((1, 3, 4, 5), i, np.float64))
        files.append((p,))
    cal = Calibration("k", ("x",), tuple(files), "npy", False)
    art = Artifact("ncnn", {}, "pnnx", ("in0",), ("out0",), "sha", feed={"batch_index":
                   {"in0": 0}}, source_input_names=("x",))
    d = tmp_path / "q"
    d.mkdir()
    lists, shapes = _ncnn_lists(d, art, cal, ["in0"])
    assert lists == ["calib/list0.txt"] and shapes == [(3, 4, 5)]
    names = (d / lists[0]).read_text().split()
    assert names == ["calib/s0_in0.npy", "calib/s1_in0.npy"]  # relative: 255 characters max
    arr = np.load(d / names[1])
    assert arr.dtype == np.float32 and arr.shape == (3, 4, 5) and arr.flags.c_contiguous
    assert (arr == 1).all()


def test_samples_ncnn2table_cannot_read_are_convert_errors():
    with pytest.raises(ConvertError, match="float32 .npy files only"):
        ncnn_sample(np.zeros((1, 4), np.int64), "unknown")
    with pytest.raises(ConvertError, match="batch 1 only"):
        ncnn_sample(np.zeros((2, 3, 4, 4), np.float32), 0)
    # pnnx kept every axis (batch_index None): nothing is dropped
    assert ncnn_sample(np.zeros((1, 7), np.float32), None).shape == (1, 7)
    assert ncnn_sample(np.zeros((1, 3, 2, 2), np.float32), "unknown").shape == (3, 2, 2)


def test_tools_read_the_batch_token_as_1_and_the_int8_param_keeps_the_float_layers():
    fixed, changed = tool_param(FLOAT)
    assert '6="1,1,//(96,1),1"' in fixed and "0n" not in fixed
    assert changed == {"reshape_1": '6="1,1,//(96,0n),0n"'}
    merged = merge_params(FLOAT, TOOLS_OUT).splitlines()
    # not quantized: the float model's line as it was (batch axes, expression, defaults)
    assert merged[5].split() == FLOAT.splitlines()[5].split()
    assert merged[7].split() == FLOAT.splitlines()[7].split()
    # quantized: the tools' line, with the params they left out added back
    conv = merged[3].split()
    assert conv[-1] == "5=1" and "8=2" in conv and conv.count("4=1") == 1
    assert param_int8_layers("\n".join(merged)) == (1, 4)
    with pytest.raises(ValueError, match="does not have"):
        merge_params(FLOAT, TOOLS_OUT.replace("fc_2", "fc_9"))


def _tarball(tmp_path: Path) -> Path:
    src = tmp_path / "ncnn-20260526"
    (src / "src").mkdir(parents=True)
    out = tmp_path / "ncnn-20260526.tar.gz"
    with tarfile.open(out, "w:gz") as tf:
        tf.add(src, arcname=src.name)
    return out


def test_tools_source_is_the_quantize_key_else_the_ncnn_source_entry(tmp_path):
    tar = _tarball(tmp_path)
    model = [{"name": "m", "builtin": "reduction_sum_block"}]
    plain = parse_suite({"engines": {"ncnn": "installed"}, "models": model}, "t", tmp_path)
    assert plain.ncnn_tools is None and plain.ncnn_method == "kl"
    entry = parse_suite({"engines": {"ncnn": ["installed", {"source": str(tar)}]},
                         "models": model}, "t", tmp_path)
    assert entry.ncnn_tools.path == str(tar) and entry.ncnn_tools.name == "src:ncnn-20260526"
    keyed = parse_suite({"engines": {"ncnn": "installed"}, "models": model,
                         "quantize": {"ncnn_tools": tar.name, "ncnn_method": "aciq"}},
                        "t", tmp_path)
    assert keyed.ncnn_tools.path == str(tar) and keyed.ncnn_method == "aciq"
    with pytest.raises(InputError, match="ncnn_method"):
        parse_suite({"engines": {"ncnn": "installed"}, "models": model,
                     "quantize": {"ncnn_method": "minmax"}}, "t", tmp_path)
    with pytest.raises(InputError, match="ncnn_tools"):
        parse_suite({"engines": {"ncnn": "installed"}, "models": model,
                     "quantize": {"ncnn_tools": "missing.tar.xz"}}, "t", tmp_path)


def test_without_a_source_ncnn_int8_is_unsupported_saying_how_to_give_one():
    with pytest.raises(QuantizerUnavailable, match=r"\[quantize\] ncnn_tools"):
        ncnn_tools(None)


def _ctx(tmp_path: Path, src: Path) -> BuildContext:
    source = EngineSource(engine="ncnn", path=str(tmp_path / "x.tar.gz"), name="src:x")
    return BuildContext(source=source, target=None, src=src, build=tmp_path / "b",
                        stage=tmp_path / "s", tools=tmp_path / "t", log_path=tmp_path / "l")


def test_recipe_supplies_prng_h_only_where_the_tree_has_none(tmp_path):
    src = tmp_path / "src"
    (src / "tools" / "quantize").mkdir(parents=True)
    ctx = _ctx(tmp_path, src)
    assert recipe.ninja_targets(ctx) == ["pyncnn", "benchncnn", "ncnn2table", "ncnn2int8"]
    header = (src / "tests" / "prng.h").read_text()
    assert "prng_srand" in header and "prng_rand(struct prng_rand_t*" in header
    assert ctx.notes == [recipe.PRNG_NOTE]
    # a later build of the same unpacked tree finds the harness's header: noted again
    again = _ctx(tmp_path, src)
    recipe.ninja_targets(again)
    assert again.notes == [recipe.PRNG_NOTE]
    # ncnn's own header is left alone and not noted
    own = tmp_path / "own"
    (own / "tools" / "quantize").mkdir(parents=True)
    (own / "tests").mkdir()
    (own / "tests" / "prng.h").write_text("// ncnn's\n")
    ctx = _ctx(tmp_path, own)
    assert "ncnn2int8" in recipe.ninja_targets(ctx) and ctx.notes == []
    assert (own / "tests" / "prng.h").read_text() == "// ncnn's\n"
    # a tree without the tools builds neither and writes nothing
    bare = tmp_path / "bare"
    bare.mkdir()
    ctx = _ctx(tmp_path, bare)
    assert recipe.ninja_targets(ctx) == ["pyncnn", "benchncnn"]
    assert not (bare / "tests").exists()
