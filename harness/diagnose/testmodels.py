"""Generated models for diagnosis tests and demos; fixed seeds, stable bytes.

- ``midgraph_overflow``: Conv+ReLU (values ~10) -> ReduceSum over 96x96 positions (~9e4 per
  channel: above fp16's 65504) -> Mul 1e-4 -> Softmax -> Flatten -> Gemm. The overflow happens
  in the middle; every later layer inherits inf/NaN, so the last layer is not the culprit.
- ``conv_chain``: three convolutions with ReLUs, for an MNN model whose middle convolution's
  weights are altered after conversion (``alter_mnn_conv``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models.micromodels import save_model

GENERATOR_VERSION = "1"
MIDGRAPH_SHAPE = (1, 8, 96, 96)
CONV_CHAIN_SHAPE = (1, 3, 32, 32)


def _save(model, name: str) -> Path:
    return save_model(model, f"diag-{name}", GENERATOR_VERSION)


def _model(nodes, name, inputs, outputs, inits):
    from onnx import helper
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)],
                          producer_name="harness.diagnose.testmodels")
    m.ir_version = 7
    return m


def midgraph_overflow() -> Path:
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(20240613)
    w = np.abs(rng.standard_normal((16, 8, 3, 3)) * 0.05).astype(np.float32)
    b = np.full(16, 10.0, np.float32)
    fc = (rng.standard_normal((4, 16)) * 0.5).astype(np.float32)
    fcb = np.zeros(4, np.float32)
    scale = np.array(1e-4, np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("ReduceSum", ["r"], ["s"], axes=[2, 3], keepdims=1, name="sum_hw"),
        helper.make_node("Mul", ["s", "scale"], ["m"], name="scale"),
        helper.make_node("Softmax", ["m"], ["p"], axis=1, name="softmax"),
        helper.make_node("Flatten", ["p"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1, name="fc"),
    ]
    m = _model(nodes, "midgraph_overflow",
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(MIDGRAPH_SHAPE))],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
               [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
                numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(fc, "fc"),
                numpy_helper.from_array(fcb, "fcb")])
    return _save(m, "midgraph_overflow")


def conv_chain() -> Path:
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(20240614)
    shapes = [(8, 3, 3, 3), (8, 8, 3, 3), (4, 8, 3, 3)]
    inits, nodes, cur = [], [], "x"
    for i, s in enumerate(shapes, start=1):
        inits.append(numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32),
                                             f"w{i}"))
        inits.append(numpy_helper.from_array((rng.standard_normal(s[0]) * 0.1)
                                             .astype(np.float32), f"b{i}"))
        nodes.append(helper.make_node("Conv", [cur, f"w{i}", f"b{i}"], [f"c{i}"],
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1], name=f"conv{i}"))
        cur = f"c{i}"
        if i < len(shapes):
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"], name=f"relu{i}"))
            cur = f"r{i}"
    m = _model(nodes, "conv_chain",
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(CONV_CHAIN_SHAPE))],
               [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, 4, 32, 32])], inits)
    return _save(m, "conv_chain")


def alter_mnn_conv(src: Path, dst: Path, weight_shape: tuple[int, ...], scale: float = 3.0,
                   output_names: tuple[str, ...] | None = None) -> None:
    """Write a copy of an MNN model whose convolution with weights of ``weight_shape`` has its
    first output channel's weights multiplied by ``scale``.

    MNN 3.x's expr API keeps convolution weights inside the op, where load_as_dict cannot reach
    them; nn.load_module(..., for_training=True) turns them into parameters. One parameter is
    rewritten in place (Var.write), the module re-run symbolically and the graph saved with
    expr.save. The altered convolution keeps its op name (the ONNX output name); the fused
    ReLUs become separate ops. ``output_names``: the model's outputs (default: what
    expr.get_inputs_and_outputs reports, less the converter's internal ``__`` tensors).
    """
    import MNN
    F, nn = MNN.expr, MNN.nn
    d = F.load_as_dict(str(src))
    inputs = [v for v in d.values() if v.op_type == "Input"]
    names = list(output_names or [n for n in F.get_inputs_and_outputs(d)[1] if "__" not in n
                                  and d[n].op_type != "Input"])
    module = nn.load_module(inputs, [d[n] for n in names], True)
    hits = [p for p in module.parameters if tuple(p.shape) == tuple(weight_shape)]
    if len(hits) != 1:
        raise ValueError(f"{len(hits)} parameters of shape {weight_shape} in {src}")
    w = np.array(hits[0].read(), copy=True)
    w[0] *= scale
    hits[0].write(w)
    ys = module.forward(inputs)
    ys = ys if isinstance(ys, (list, tuple)) else [ys]
    for y, name in zip(ys, names):
        y.name = name
    dst.parent.mkdir(parents=True, exist_ok=True)
    F.save(list(ys), str(dst))
