"""Static analysis of weights that reach a layer through constant ops, and `models stats`
checked against published figures for classic architectures."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.analysis import AnalysisError, analyze_onnx
from harness.analysis.graph import build_graph
from harness.analysis.model_file import load_structure, with_values_as_inputs

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


# ------------------------------------------------- the cases of issue 12 item 6 (same seeded code)


def _case_models(out: Path) -> tuple[Path, Path]:
    """fc_reshaped_weight.onnx and qdq_conv.onnx, built exactly as the reported case builds them."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((1000, 1024, 1, 1)).astype(np.float32), "w4d")
    b = numpy_helper.from_array(np.zeros(1000, np.float32), "b")
    shape = numpy_helper.from_array(np.array([1000, 1024], np.int64), "wshape")
    nodes = [helper.make_node("Reshape", ["w4d", "wshape"], ["w2d"]),
             helper.make_node("Gemm", ["x", "w2d", "b"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "fc_reshaped_weight",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1024])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1000])],
                          [w, b, shape])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    fc = out / "fc_reshaped_weight.onnx"
    onnx.save(m, str(fc))

    wq = numpy_helper.from_array(rng.integers(-127, 127, (16, 8, 3, 3)).astype(np.int8), "wq")
    sc = numpy_helper.from_array(np.array(0.02, np.float32), "ws")
    zp = numpy_helper.from_array(np.array(0, np.int8), "wz")
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wf"]),
             helper.make_node("Conv", ["x", "wf"], ["y"], pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "qdq_conv",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 32, 32])],
                          [wq, sc, zp])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    qdq = out / "qdq_conv.onnx"
    onnx.save(m, str(qdq))
    return fc, qdq


@pytest.mark.unit
def test_weight_through_reshape_is_a_parameter(tmp_path: Path) -> None:
    fc, _ = _case_models(tmp_path)
    stats = analyze_onnx(fc)
    assert stats.params == 1_025_000 == stats.learnable_params  # 1000*1024 + 1000
    assert stats.param_bytes_by_dtype == {"float32": 4_100_000}  # the int64 target shape is not one
    assert stats.macs == 1_024_000
    # Activations: x (4096 B) and y (4000 B) only; no 4 MB w2d.
    assert stats.naive_activation_bytes == stats.greedy_plan_bytes == 4096 + 4000
    assert [layer.op_type for layer in stats.layers] == ["Gemm"]
    assert stats.layers[0].params == 1_025_000
    assert stats.folded_nodes == 1 and any("Reshape" in n for n in stats.notes)
    # All stored constants, each once: w4d, b and the shape.
    assert stats.initializer_count == 3 and stats.initializer_bytes == 4_100_000 + 16


@pytest.mark.unit
def test_qdq_weight_counts_in_its_stored_dtype(tmp_path: Path) -> None:
    _, qdq = _case_models(tmp_path)
    stats = analyze_onnx(qdq)
    # 1,152 int8 weights, learnable; scale and zero point are stored but not learned.
    assert stats.learnable_params == 1_152
    assert stats.params == 1_152 + 2
    assert stats.param_bytes_by_dtype == {"int8": 1_152 + 1, "float32": 4}
    assert stats.macs == 1_179_648  # 16x32x32 outputs x 8x3x3
    assert stats.naive_activation_bytes == (8 + 16) * 32 * 32 * 4  # x and y; no float copy of w
    assert [layer.op_type for layer in stats.layers] == ["Conv"]


def _save(path: Path, nodes, inits, x_dims, opset: int = 13) -> Path:
    g = helper.make_graph(nodes, path.stem,
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(m, str(path))
    return path


@pytest.mark.unit
def test_chain_of_constant_ops_and_constant_nodes(tmp_path: Path) -> None:
    """Transpose -> Cast -> Identity -> Unsqueeze -> Squeeze -> Flatten of an fp16 Constant node,
    and a Concat of two initializers: each stored constant counted once, in its stored dtype."""
    rng = np.random.default_rng(1)
    w16 = helper.make_node("Constant", [], ["w16"], value=numpy_helper.from_array(
        rng.standard_normal((8, 4)).astype(np.float16)))
    a = numpy_helper.from_array(rng.standard_normal((3, 8)).astype(np.float32), "a")
    b = numpy_helper.from_array(rng.standard_normal((5, 8)).astype(np.float32), "b")
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    nodes = [
        w16,
        helper.make_node("Transpose", ["w16"], ["t"], perm=[1, 0]),
        helper.make_node("Cast", ["t"], ["c"], to=TensorProto.FLOAT),
        helper.make_node("Identity", ["c"], ["i"]),
        helper.make_node("Unsqueeze", ["i", "axes"], ["u"]),
        helper.make_node("Squeeze", ["u", "axes"], ["s"]),
        helper.make_node("Flatten", ["s"], ["f"], axis=1),   # 4x8
        helper.make_node("MatMul", ["x", "f"], ["h"]),       # x 2x4 -> 2x8
        helper.make_node("Concat", ["a", "b"], ["ab"], axis=0),  # 8x8
        helper.make_node("MatMul", ["h", "ab"], ["y"]),
    ]
    stats = analyze_onnx(_save(tmp_path / "chain.onnx", nodes, [a, b, axes], [2, 4]))
    assert stats.params == 32 + 24 + 40
    assert stats.param_bytes_by_dtype == {"float16": 64, "float32": 256}
    assert stats.macs == 2 * 8 * 4 + 2 * 8 * 8
    assert [layer.op_type for layer in stats.layers] == ["MatMul", "MatMul"]
    assert stats.naive_activation_bytes == (8 + 16 + 16) * 4  # x, h, y
    assert stats.folded_nodes == 7


@pytest.mark.unit
def test_shared_weight_behind_two_reshapes_counts_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    w = numpy_helper.from_array(rng.standard_normal((4, 4, 1, 1)).astype(np.float32), "w")
    s = numpy_helper.from_array(np.array([4, 4], np.int64), "s")
    nodes = [helper.make_node("Reshape", ["w", "s"], ["w1"]),
             helper.make_node("Reshape", ["w", "s"], ["w2"]),
             helper.make_node("Gemm", ["x", "w1"], ["h"]),
             helper.make_node("Gemm", ["h", "w2"], ["y"])]
    stats = analyze_onnx(_save(tmp_path / "shared.onnx", nodes, [w, s], [1, 4]))
    assert stats.params == 16
    assert [layer.params for layer in stats.layers] == [16, 16]  # each reader sees it
    assert stats.macs == 32


@pytest.mark.unit
def test_random_and_activation_reading_nodes_are_not_folded(tmp_path: Path) -> None:
    """A node with a non-constant input, or a random one, runs at inference time."""
    nodes = [helper.make_node("RandomNormal", [], ["r"], shape=[1, 4]),
             helper.make_node("Add", ["x", "r"], ["y"])]
    model = helper.make_model(helper.make_graph(
        nodes, "rnd", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]),
        opset_imports=[helper.make_opsetid("", 13)])
    graph = build_graph(model)
    assert [n.op_type for n in graph.nodes] == ["RandomNormal", "Add"] and not graph.folded


# ------------------------------------------------- classic architectures with published figures


def _materialize(name: str, out: Path, seed: int = 0) -> tuple[Path, int]:
    """The structure onnx ships as light_<name>.onnx, with seeded random weights: its weights
    are ConstantOfShape nodes of stored shapes, each replaced by an initializer of that shape.
    Returns the model's path and the number of weight elements added."""
    from tests.classic_cnn import replace_weights
    model = onnx.load(str(LIGHT / f"light_{name}.onnx"))
    rng = np.random.default_rng(seed)
    weights = replace_weights(
        model, lambda _, dims: rng.standard_normal(dims, dtype=np.float32) * np.float32(0.01))
    path = out / f"{name}.onnx"
    onnx.save(model, str(path))
    return path, sum(int(np.prod(t.dims)) for t in weights)


# name, learnable params, MACs at 1x3x224x224, relative tolerance of MACs, source.
# torchvision's model docs (https://pytorch.org/vision/stable/models.html, "Table of all
# available classification weights") list "Params" and "GFLOPS", the latter being
# multiply-accumulates (a MAC counted once), for the same architectures.
PUBLISHED = [
    pytest.param("squeezenet", 1_235_496, 0.35e9, 0.01,
                 id="squeezenet1.1-torchvision-1235496-0.35G"),  # the file is SqueezeNet 1.1
    pytest.param("resnet50", 25_557_032, 4.09e9, 0.01, id="resnet50-torchvision-25557032-4.09G"),
    pytest.param("densenet121", 7_978_856, 2.83e9, 0.01,
                 id="densenet121-torchvision-7978856-2.83G"),
    # Szegedy et al. 2014, "Going deeper with convolutions": sec. 5, "1.5 billion multiply-adds";
    # Table 1's params column sums to about 6.8 M. Its classifier weight goes through a Reshape.
    pytest.param("inception_v1", 6_800_000, 1.5e9, 0.05, id="googlenet-paper-6.8M-1.5G"),
    pytest.param("vgg19", 143_667_240, 19.63e9, 0.01, id="vgg19-torchvision-143667240-19.63G"),
    # Krizhevsky et al. 2012: "The neural network, which has 60 million parameters" (BVLC's
    # two-group Caffe AlexNet, as shipped here: 60,965,224).
    pytest.param("bvlc_alexnet", 60_000_000, None, 0.02, id="alexnet-paper-60M"),
]


@pytest.mark.slow
@pytest.mark.skipif(not LIGHT.is_dir(), reason="onnx package without backend test data")
@pytest.mark.parametrize("name,params,macs,tol", PUBLISHED)
def test_classic_architecture_matches_published(tmp_path: Path, name: str, params: int | None,
                                                macs: float | None, tol: float) -> None:
    path, added = _materialize(name, tmp_path)
    stats = analyze_onnx(path)
    if params is not None:
        assert abs(stats.learnable_params - params) <= tol * params, stats.learnable_params
    if macs is not None:
        assert abs(stats.macs - macs) <= tol * macs, stats.macs
    # The weights as shipped (ConstantOfShape of a stored shape) are constants, not activations:
    # same MACs and activation memory as with stored weights; the file stores only their shapes
    # (and a few small real tensors), so they are not stored parameters.
    shipped = analyze_onnx(LIGHT / f"light_{name}.onnx", stats.input_shapes)
    assert shipped.macs == stats.macs
    assert shipped.naive_activation_bytes == stats.naive_activation_bytes
    assert shipped.greedy_plan_bytes == stats.greedy_plan_bytes
    stored = onnx.load(str(LIGHT / f"light_{name}.onnx")).graph.initializer
    stored_floats = sum(int(np.prod(t.dims)) for t in stored if t.data_type == TensorProto.FLOAT)
    assert shipped.params <= stored_floats
    assert stats.params >= shipped.params + 0.9 * added


@pytest.mark.slow
@pytest.mark.skipif(not LIGHT.is_dir(), reason="onnx package without backend test data")
def test_resnet50_exact_counts(tmp_path: Path) -> None:
    """Stored figures of the Caffe2 ResNet-50: BN running mean/variance are stored, not learned."""
    stats = analyze_onnx(_materialize("resnet50", tmp_path)[0])
    assert stats.learnable_params == 25_557_032
    assert stats.params == 25_557_032 + 2 * 26_560  # 53 BNs, 26,560 channels in all
    assert stats.param_bytes == 4 * stats.params
    assert os.path.getsize(tmp_path / "resnet50.onnx") > stats.param_bytes


# ------------------------------------------------- reading the structure without the weights


@pytest.mark.unit
def test_structure_is_read_without_large_payloads(tmp_path: Path) -> None:
    fc, _ = _case_models(tmp_path)
    loaded = load_structure(fc)
    assert loaded.stripped == {"w4d"}  # 4 MB of weights; the bias (4 KB) and shape stay
    assert len(loaded.model.SerializeToString()) < 16 * 1024
    w = next(t for t in loaded.model.graph.initializer if t.name == "w4d")
    assert list(w.dims) == [1000, 1024, 1, 1] and w.data_type == TensorProto.FLOAT
    assert loaded.sha256 == hashlib.sha256(fc.read_bytes()).hexdigest()
    full = onnx.load(str(fc))
    kept = {t.name: t for t in loaded.model.graph.initializer}
    for t in full.graph.initializer:
        if t.name != "w4d":
            assert t.SerializeToString() == kept[t.name].SerializeToString()
    probe = with_values_as_inputs(loaded.model, loaded.stripped)
    onnx.checker.check_model(probe)
    assert "w4d" in {i.name for i in probe.graph.input}


@pytest.mark.unit
def test_external_data_model(tmp_path: Path) -> None:
    """Weights in an external file: large ones are never read, small ones (the Reshape target)
    are, so shape inference still sees the target shape."""
    fc, _ = _case_models(tmp_path)
    model = onnx.load(str(fc))
    ext = tmp_path / "ext"
    ext.mkdir()
    onnx.save(model, str(ext / "fc.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="fc.data", size_threshold=0)
    stats = analyze_onnx(ext / "fc.onnx")
    assert (stats.params, stats.macs, stats.shape_source) == (1_025_000, 1_024_000, "onnx")
    assert stats.naive_activation_bytes == 4096 + 4000


@pytest.mark.unit
def test_large_constant_node_weights_and_runtime_probe(tmp_path: Path) -> None:
    """A weight stored as a Constant node (paddle2onnx style) larger than the stripping
    threshold, in a model whose shapes need the onnxruntime probe (NonZero): the probe is fed
    zeros for the weight it was not given."""
    rng = np.random.default_rng(3)
    w = helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(
        rng.standard_normal((4, 20000)).astype(np.float32)))
    nodes = [w, helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("NonZero", ["h"], ["y"])]
    g = helper.make_graph(nodes, "nz",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    path = tmp_path / "nz.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    assert load_structure(path).stripped == {"w"}
    stats = analyze_onnx(path)
    assert stats.params == 80_000 and stats.macs == 80_000
    assert stats.shape_source == "onnx+onnxruntime"
    assert stats.layers[1].output_shapes == [(2, 0)]  # NonZero of zeros


@pytest.mark.unit
def test_truncated_file_is_one_clear_error(tmp_path: Path) -> None:
    fc, _ = _case_models(tmp_path)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(fc.read_bytes()[:100_000])
    with pytest.raises(AnalysisError, match="cannot be read as an ONNX model"):
        analyze_onnx(cut)


@pytest.mark.unit
def test_fake_quantized_float_weight(tmp_path: Path) -> None:
    """A float weight behind QuantizeLinear -> DequantizeLinear: the float weight is the
    learnable parameter; both scales and zero points are stored, not learned."""
    rng = np.random.default_rng(4)
    w = numpy_helper.from_array(rng.standard_normal((16, 8, 3, 3)).astype(np.float32), "w")
    sc = numpy_helper.from_array(np.array(0.02, np.float32), "s")
    zp = numpy_helper.from_array(np.array(0, np.int8), "z")
    nodes = [helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"]),
             helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wf"]),
             helper.make_node("Conv", ["x", "wf"], ["y"], pads=[1, 1, 1, 1])]
    stats = analyze_onnx(_save(tmp_path / "fq.onnx", nodes, [w, sc, zp], [1, 8, 32, 32]))
    assert stats.learnable_params == 1_152
    assert stats.params == 1_152 + 2  # s and z are shared by both nodes: counted once
    assert stats.macs == 1_179_648 and stats.folded_nodes == 2


@pytest.mark.slow
@pytest.mark.skipif(not LIGHT.is_dir(), reason="onnx package without backend test data")
def test_googlenet_classifier_weight_behind_reshape(tmp_path: Path) -> None:
    """BVLC GoogLeNet reshapes its 1000x1024 classifier weight before the Gemm: once counted
    as a 4 MB activation and missing from the parameters (5,974,552 instead of 6,998,552)."""
    path, _ = _materialize("inception_v1", tmp_path)
    stats = analyze_onnx(path)
    assert stats.learnable_params == stats.params == 6_998_552
    (gemm,) = [layer for layer in stats.layers if layer.op_type == "Gemm"]
    assert gemm.params == 1000 * 1024 + 1000
    assert stats.naive_activation_bytes == 41_344_576 - 1000 * 1024 * 4


@pytest.mark.unit
def test_runtime_probe_retries_with_the_complete_model(tmp_path: Path, monkeypatch) -> None:
    """If onnxruntime refuses the model with its weights as inputs, the complete model is
    loaded for one more try."""
    from harness.analysis import shape_infer

    rng = np.random.default_rng(5)
    w = numpy_helper.from_array(rng.standard_normal((4, 20000)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("NonZero", ["h"], ["y"])]
    g = helper.make_graph(nodes, "nz",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.INT64, None)], [w])
    path = tmp_path / "nz.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    real, seen = shape_infer._measure, []

    def refuse_weight_inputs(fixed, *args):
        seen.append(sorted(i.name for i in fixed.graph.input))
        if "w" in seen[-1]:
            raise shape_infer._RuntimeFailed("weight must be a constant")
        return real(fixed, *args)

    monkeypatch.setattr(shape_infer, "_measure", refuse_weight_inputs)
    stats = analyze_onnx(path)
    assert seen == [["w", "x"], ["x"]]
    assert stats.shape_source == "onnx+onnxruntime" and stats.params == 80_000


@pytest.mark.unit
def test_integer_tables_keep_their_values(tmp_path: Path) -> None:
    """A large int64 constant (indices) is never stripped: its values may decide shapes."""
    idx = numpy_helper.from_array(np.arange(10_000, dtype=np.int64) % 4, "idx")
    nodes = [helper.make_node("Gather", ["x", "idx"], ["y"], axis=1)]
    path = _save(tmp_path / "gather.onnx", nodes, [idx], [1, 4])
    assert load_structure(path).stripped == frozenset()
    assert analyze_onnx(path).layers[0].output_shapes == [(1, 10_000)]
