"""Static model analysis (harness.analysis): counts, shapes, memory bounds, tables, CLI."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from harness.analysis import (
    AnalysisError,
    analyze_onnx,
    models_table_row,
    parse_shape,
    pnnx_reference_flops,
    render_table,
    write_models_table,
)
from harness.cli import main as harness_main
from harness.models.registry import BUILTINS
from harness.models.registry import builtin_onnx as builtin_path
from harness.analysis.memory import Step, plan_memory
from harness.analysis.pnnx_ref import parse_pnnx_output

helper, TP = onnx.helper, onnx.TensorProto
HAVE_OCR = importlib.util.find_spec("rapidocr_onnxruntime") is not None
HAVE_PNNX = importlib.util.find_spec("pnnx") is not None


# ---------------------------------------------------------------- tiny model builders


def _const(rng: np.random.Generator, name: str, shape: tuple[int, ...]):
    return onnx.numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def _save(tmp_path: Path, name: str, nodes, inputs, outputs, inits, opset: int = 13) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _fin(name: str, dims) -> object:
    return helper.make_tensor_value_info(name, TP.FLOAT, dims)


def _check_bounds(stats) -> None:
    assert stats.liveness_lower_bound_bytes <= stats.greedy_plan_bytes <= stats.naive_activation_bytes


@pytest.fixture
def conv3x3(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3])
    return _save(tmp_path, "conv3x3", [node], [_fin("x", [1, 1, 5, 5])], [_fin("y", None)],
                 [_const(rng, "w", (1, 1, 3, 3)), _const(rng, "b", (1,))])


# ---------------------------------------------------------------- counts on synthetic models


@pytest.mark.unit
def test_conv3x3_bias_counts(conv3x3: Path) -> None:
    stats = analyze_onnx(conv3x3, (1, 1, 5, 5))
    (layer,) = stats.layers
    assert layer.output_shapes == [(1, 1, 3, 3)]
    assert layer.output_bytes == 9 * 4
    assert stats.macs == 81 and stats.params == 10 and stats.learnable_params == 10
    # 1 MAC = 2 FLOPs; the bias add is inside those 2 per MAC (2K per output, K = 9).
    assert stats.flops == 162
    # Textbook: 9 mul + 8 add = 17 per output = 153; the 9 bias adds are reported separately.
    assert layer.textbook_flops == 153 and layer.bias_flops == 9
    assert layer.textbook_flops + layer.bias_flops == layer.flops
    # im2col of a 3x3 conv: Kh*Kw*Cin x Hout*Wout = 9 x 9 floats.
    assert layer.workspace_elems == 81 and layer.workspace_bytes == 324 and layer.workspace_note == "im2col"
    assert stats.unknown_ops == [] and stats.shape_source == "onnx"
    _check_bounds(stats)


@pytest.mark.unit
def test_linear_2048_to_101_params(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
    path = _save(tmp_path, "linear", [node], [_fin("x", [1, 2048])], [_fin("y", None)],
                 [_const(rng, "w", (101, 2048)), _const(rng, "b", (101,))])
    stats = analyze_onnx(path, (1, 2048))
    assert stats.params == 2048 * 101 + 101 == 206_949
    assert stats.param_bytes == 206_949 * 4 and stats.param_bytes_by_dtype == {"float32": 206_949 * 4}
    assert stats.macs == 2048 * 101 and stats.flops == 2 * stats.macs
    assert stats.layers[0].output_shapes == [(1, 101)]
    _check_bounds(stats)


@pytest.mark.unit
def test_linear_as_matmul_plus_add_counts_bias(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    path = _save(tmp_path, "linear_mm", nodes, [_fin("x", [1, 2048])], [_fin("y", None)],
                 [_const(rng, "w", (2048, 101)), _const(rng, "b", (101,))])
    stats = analyze_onnx(path, (1, 2048))
    assert stats.params == 206_949
    assert [l.params for l in stats.layers] == [2048 * 101, 101]
    assert stats.macs == 2048 * 101 and stats.flops == 2 * 2048 * 101 + 101  # the Add is elementwise


@pytest.mark.unit
def test_conv_transpose_stride2(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[4, 4], strides=[2, 2],
                            pads=[1, 1, 1, 1])
    path = _save(tmp_path, "deconv", [node], [_fin("x", [1, 4, 8, 8])], [_fin("y", None)],
                 [_const(rng, "w", (4, 2, 4, 4))])
    stats = analyze_onnx(path, (1, 4, 8, 8))
    (layer,) = stats.layers
    assert layer.output_shapes == [(1, 2, 16, 16)]
    assert layer.macs == 4 * 2 * 16 * 64  # Cin * Cout * K*K * Hin*Win
    assert layer.workspace_elems == 4 * 4 * 2 * 8 * 8  # col buffer: K*K*Cout x Hin*Win
    assert layer.workspace_bytes == 4 * layer.workspace_elems and layer.workspace_note == "col2im"
    assert stats.params == 4 * 2 * 16
    _check_bounds(stats)


@pytest.mark.unit
def test_no_workspace_for_1x1_and_depthwise(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"]),  # 1x1 stride 1: input is the column matrix
        helper.make_node("Conv", ["a", "wd"], ["b"], group=8, pads=[1, 1, 1, 1]),  # depthwise 3x3
        helper.make_node("Conv", ["b", "w1"], ["c"], strides=[2, 2]),  # 1x1 stride 2 subsamples: im2col
    ]
    path = _save(tmp_path, "dw", nodes, [_fin("x", [1, 8, 6, 6])], [_fin("c", None)],
                 [_const(rng, "w1", (8, 8, 1, 1)), _const(rng, "wd", (8, 1, 3, 3))])
    stats = analyze_onnx(path, (1, 8, 6, 6))
    one, dw, strided = stats.layers
    assert (one.workspace_bytes, one.workspace_note) == (0, "none: 1x1 stride 1")
    assert (dw.workspace_bytes, dw.workspace_note) == (0, "none: depthwise")
    assert dw.macs == 8 * 6 * 6 * 9  # outputs x (Cin/groups = 1) x 3x3
    assert strided.workspace_elems == 8 * 3 * 3
    assert stats.params == 64 + 72  # w1 is shared by two convs but counted once in totals
    assert one.params + dw.params + strided.params == 64 + 72 + 64
    _check_bounds(stats)


@pytest.mark.unit
def test_chain_buffer_reuse_halves_naive(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Conv", ["b", "w1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["d"]),
    ]
    path = _save(tmp_path, "chain", nodes, [_fin("x", [1, 4, 8, 8])], [_fin("d", None)],
                 [_const(rng, "w0", (4, 4, 3, 3)), _const(rng, "w1", (4, 4, 3, 3))])
    stats = analyze_onnx(path, (1, 4, 8, 8))
    size = 4 * 8 * 8 * 4
    assert stats.naive_activation_bytes == 5 * size  # x, a, b, c, d
    assert stats.liveness_lower_bound_bytes == 2 * size  # a conv holds its input and output
    assert stats.greedy_plan_bytes == 2 * size and stats.plan_buffers == 2
    assert stats.greedy_plan_bytes * 2 <= stats.naive_activation_bytes
    _check_bounds(stats)
    assert [l.inplace_of for l in stats.layers] == [None, "a", None, "c"]
    assert [l.live_bytes_after for l in stats.layers] == [size, size, size, size]


@pytest.mark.unit
def test_elementwise_pool_reduce_flops(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("HardSigmoid", ["p"], ["h"]),
        helper.make_node("GlobalAveragePool", ["h"], ["g"]),
        helper.make_node("ReduceMean", ["h"], ["r"], axes=[1], keepdims=1),
        helper.make_node("Softmax", ["r"], ["s"], axis=-1),
        helper.make_node("NotAnOnnxOp", ["s"], ["u"], domain="custom.x"),
    ]
    path = _save(tmp_path, "misc", nodes, [_fin("x", [1, 2, 4, 4])], [_fin("g", None), _fin("u", [1, 1, 2, 2])],
                 [])
    model = onnx.load(str(path))
    model.opset_import.append(helper.make_opsetid("custom.x", 1))
    onnx.save(model, str(path))
    stats = analyze_onnx(path, (1, 2, 4, 4))
    by_op = {l.op_type: l for l in stats.layers}
    assert by_op["MaxPool"].flops == 8 * 4  # 8 outputs x 2x2 window
    assert by_op["HardSigmoid"].flops == 8  # 1 per output element
    assert by_op["GlobalAveragePool"].flops == 8  # 1 per input element
    assert by_op["ReduceMean"].flops == 8
    assert by_op["Softmax"].flops == 4
    assert by_op["custom.x:NotAnOnnxOp"].flops == 0 and not by_op["custom.x:NotAnOnnxOp"].known
    assert stats.unknown_ops == ["custom.x:NotAnOnnxOp"]
    assert stats.shape_source == "onnx+declared"  # onnxruntime cannot run the custom op
    assert stats.macs == 0 and stats.flops == 32 + 8 + 8 + 8 + 4
    _check_bounds(stats)


@pytest.mark.unit
def test_runtime_fallback_for_computed_resize(tmp_path: Path) -> None:
    # ONNX inference cannot follow the float arithmetic on the shape, so y/z stay unknown and
    # are measured by onnxruntime.
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Cast", ["s"], ["sf"], to=TP.FLOAT),
        helper.make_node("Mul", ["sf", "scale"], ["sf2"]),
        helper.make_node("Cast", ["sf2"], ["si"], to=TP.INT64),
        helper.make_node("Resize", ["x", "", "", "si"], ["y"], mode="nearest"),
        helper.make_node("Relu", ["y"], ["z"]),
    ]
    scale = helper.make_tensor("scale", TP.FLOAT, [4], [1, 1, 2, 2])
    path = _save(tmp_path, "resize", nodes, [_fin("x", ["n", 4, "h", "w"])], [_fin("z", None)], [scale])
    stats = analyze_onnx(path, {"x": (1, 4, 8, 8)})
    assert stats.shape_source == "onnx+onnxruntime"
    by_op = {l.op_type: l for l in stats.layers}
    assert by_op["Resize"].output_shapes == [(1, 4, 16, 16)]
    assert by_op["Resize"].flops == 4 * 16 * 16
    assert by_op["Relu"].output_shapes == [(1, 4, 16, 16)] and by_op["Relu"].inplace_of == "y"
    assert stats.params == 0 and stats.initializer_elems == 4
    _check_bounds(stats)


@pytest.mark.unit
def test_multi_input_shapes(tmp_path: Path) -> None:
    nodes = [helper.make_node("Add", ["a", "b"], ["c"])]
    path = _save(tmp_path, "two", nodes, [_fin("a", ["n", 3]), _fin("b", ["n", 3])], [_fin("c", None)], [])
    stats = analyze_onnx(path, parse_shape("a:2x3,b:2x3"))
    assert stats.input_shapes == {"a": (2, 3), "b": (2, 3)}
    assert models_table_row(stats)["input_shape"] == "a:2x3,b:2x3"
    assert stats.layers[0].inplace_of == "a"
    _check_bounds(stats)
    with pytest.raises(AnalysisError, match="2 inputs"):
        analyze_onnx(path, (2, 3))
    with pytest.raises(AnalysisError, match="no model input named z"):
        analyze_onnx(path, {"a": (2, 3), "b": (2, 3), "z": (1,)})
    with pytest.raises(AnalysisError, match="dimension 1 is fixed to 3"):
        analyze_onnx(path, {"a": (2, 4), "b": (2, 3)})


# ---------------------------------------------------------------- memory planner on its own


@pytest.mark.unit
def test_memory_plan_residual_and_growth() -> None:
    sizes = {"x": 100, "a": 100, "b": 100, "c": 100, "big": 300, "out": 50}
    steps = [
        Step("conv1", ("x",), ("a",)),
        Step("relu", ("a",), ("b",), ("a",)),
        Step("add", ("b", "x"), ("c",), ("b", "x")),  # residual: x lives until here
        Step("up", ("c",), ("big",)),
        Step("head", ("big",), ("out",)),
    ]
    plan = plan_memory(steps, sizes, ["x"], ["out"])
    assert plan.naive_bytes == 750
    # conv1 holds x + a; relu overwrites a; add overwrites b (or x); up holds c + big.
    assert plan.lower_bound_bytes == 400
    assert plan.lower_bound_bytes <= plan.plan_bytes <= plan.naive_bytes
    assert plan.inplace == {"b": "a", "c": "b"}
    assert plan.live_after == [200, 200, 100, 300, 50]


# ---------------------------------------------------------------- PP-OCR models

OCR_CASES = [(n, BUILTINS[n].shapes[0]) for n in ("ppocr_det", "ppocr_rec", "ppocr_cls")]


@pytest.mark.unit
@pytest.mark.skipif(not HAVE_OCR, reason="rapidocr_onnxruntime not installed")
@pytest.mark.parametrize("name,shape", OCR_CASES)
def test_ppocr_memory_bounds(name: str, shape: tuple[int, ...]) -> None:
    stats = analyze_onnx(builtin_path(name), shape)
    _check_bounds(stats)
    assert stats.unknown_ops == []
    assert stats.liveness_lower_bound_bytes > 0 and stats.macs > 0
    assert max(l.live_bytes_after for l in stats.layers) <= stats.liveness_lower_bound_bytes
    json.dumps(stats.to_dict())  # JSON-able


def _weight_constant_elems(path: Path) -> int:
    """Independent count: float constants feeding Conv/ConvTranspose weight+bias and BN slots."""
    model = onnx.load(str(path))
    consts = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            (attr,) = [a for a in node.attribute if a.name == "value"]
            if attr.t.data_type == TP.FLOAT:
                consts[node.output[0]] = int(np.prod(attr.t.dims))
    slots = {"Conv": (1, 2), "ConvTranspose": (1, 2), "BatchNormalization": (1, 2, 3, 4), "MatMul": (0, 1)}
    used = {node.input[i] for node in model.graph.node for i in slots.get(node.op_type, ())
            if i < len(node.input) and node.input[i] in consts}
    return sum(consts[n] for n in used)


@pytest.mark.engines
@pytest.mark.skipif(not (HAVE_OCR and HAVE_PNNX), reason="needs rapidocr_onnxruntime and pnnx")
def test_ppocr_det_flops_match_pnnx() -> None:
    """Compared: our total FLOPs (2 x MACs for Conv/ConvTranspose, 1 per output element for
    everything else) against pnnx's FLOPS line (2 x MACs + 1 per output for bias, activations
    weighted 1-6 per element, nearest Resize 0; see pnnx_ref). The MAC part dominates both,
    so they must agree within 5 %; the MAC part alone must also be within 5 %."""
    path = builtin_path("ppocr_det")
    stats = analyze_onnx(path, (1, 3, 640, 640))
    flops, memops = pnnx_reference_flops(path, (1, 3, 640, 640))
    assert abs(stats.flops - flops) / flops < 0.05, (stats.flops, flops)
    assert abs(2 * stats.macs - flops) / flops < 0.05
    assert memops > 0
    assert stats.params == _weight_constant_elems(path)


# ---------------------------------------------------------------- errors, tables, CLI


@pytest.mark.unit
@pytest.mark.parametrize("text", ["", "1x3x", "abc", "1,3,640,640", "x:1x0", "x:1x3,1x3", "x:1,x:2"])
def test_bad_shape_text(text: str) -> None:
    with pytest.raises(AnalysisError) as info:
        parse_shape(text)
    assert "\n" not in str(info.value) and str(info.value)


@pytest.mark.unit
def test_parse_shape_forms() -> None:
    assert parse_shape("1x3x640x640") == (1, 3, 640, 640)
    assert parse_shape(" x:1x3x640x640 , y:1x4 ") == {"x": (1, 3, 640, 640), "y": (1, 4)}


@pytest.mark.unit
@pytest.mark.parametrize("suffix", [".param", ".mnn"])
def test_engine_native_model_rejected(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_text("7767517\n")
    with pytest.raises(AnalysisError, match="needs the ONNX source") as info:
        analyze_onnx(path, (1, 3, 8, 8))
    assert "\n" not in str(info.value)


@pytest.mark.unit
def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="no such file"):
        analyze_onnx(tmp_path / "nope.onnx", (1,))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01not a model")
    with pytest.raises(AnalysisError):
        analyze_onnx(junk, (1,))


@pytest.mark.unit
def test_render_table_and_row(conv3x3: Path) -> None:
    stats = analyze_onnx(conv3x3, (1, 1, 5, 5))
    text = render_table(stats)
    assert "FLOPs convention: 1 MAC = 2 FLOPs; elementwise ops count 1 FLOP per output element" in text
    assert "im2col" not in text.splitlines()[0] and "Conv" in text
    row = models_table_row(stats)
    assert row["input_shape"] == "x:1x1x5x5" and row["macs"] == 81 and row["n_layers"] == 1
    assert row["model_sha256"] == stats.model_sha256 and len(row["model_sha256"]) == 64


@pytest.mark.unit
def test_write_models_table_merges(tmp_path: Path, conv3x3: Path) -> None:
    import pandas as pd

    row = models_table_row(analyze_onnx(conv3x3, (1, 1, 5, 5)))
    out = tmp_path / "results"
    write_models_table([row], out)
    write_models_table([dict(row, flops=1), dict(row, input_shape="x:1x1x7x7")], out)
    table = pd.read_parquet(out / "models.parquet")
    assert len(table) == 2
    assert table.set_index("input_shape").loc["x:1x1x5x5", "flops"] == 1  # newest row wins
    assert not list(out.glob("*.tmp"))


def _cli(argv: list[str]) -> int:
    return harness_main(["models", *argv])


@pytest.mark.unit
def test_cli_stats_json_and_errors(tmp_path: Path, conv3x3: Path, capsys) -> None:
    assert _cli(["stats", str(conv3x3), "--shape", "1x1x5x5", "--json", "--models-table", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["macs"] == 81 and data["input_shape"] == "x:1x1x5x5"
    assert (tmp_path / "models.parquet").exists()

    # The fixture's input is static, so --shape may be omitted; a dynamic one needs it.
    assert _cli(["stats", str(conv3x3)]) == 0
    assert "FLOPs convention" in capsys.readouterr().out
    dyn = _save(tmp_path, "dyn", [helper.make_node("Relu", ["x"], ["y"])], [_fin("x", ["n", 3])],
                [_fin("y", None)], [])
    assert _cli(["stats", str(dyn)]) == 2
    assert "--shape" in capsys.readouterr().err
    assert _cli(["stats", str(tmp_path / "m.param")]) == 2
    assert "ONNX" in capsys.readouterr().err


@pytest.mark.unit
@pytest.mark.skipif(not HAVE_OCR, reason="rapidocr_onnxruntime not installed")
def test_cli_builtin_default_shape(capsys) -> None:
    assert _cli(["stats", "ppocr_cls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_shape"] == "x:1x3x48x192"


@pytest.mark.unit
def test_parse_pnnx_output() -> None:
    log = "...\nmodel inputshape = [1,3,640,640]f32\nFLOPS = 4.764G\nmemory OPS = 180.094M\n"
    flops, memops = parse_pnnx_output(log)
    assert flops == pytest.approx(4.764e9) and memops == pytest.approx(180.094e6)
    assert parse_pnnx_output("FLOPS = 512\nmemory OPS = 3.5K") == (512.0, 3500.0)
    with pytest.raises(AnalysisError, match="FLOPS"):
        parse_pnnx_output("nothing here")


@pytest.mark.unit
def test_dangling_input_is_one_clear_error(tmp_path: Path) -> None:
    path = _save(tmp_path, "dangling", [helper.make_node("Add", ["x", "ghost"], ["y"])], [_fin("x", [1, 2])],
                 [_fin("y", None)], [])
    with pytest.raises(AnalysisError, match="reads 'ghost'"):
        analyze_onnx(path, (1, 2))
