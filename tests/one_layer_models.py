"""One-layer ONNX models of common ops, in-place ones first after the input (where ncnn's light
mode works on the input blob itself). Fixed seeds; each model is a few hundred bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHAPE = [1, 3, 8, 8]


def _model(name: str, nodes, inits=(), out_shape=SHAPE, out_name="y"):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    g = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(a, n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def build(directory: Path) -> dict[str, Path]:
    """Write every model under ``directory``; returns {op name: path}."""
    from onnx import helper
    import onnx
    rng = np.random.default_rng(20261130)
    f32 = np.float32
    w = rng.standard_normal((4, 3, 3, 3)).astype(f32) * 0.3
    node = helper.make_node
    specs = {
        "Relu": ([node("Relu", ["x"], ["y"])], [], SHAPE),
        "Sigmoid": ([node("Sigmoid", ["x"], ["y"])], [], SHAPE),
        "Tanh": ([node("Tanh", ["x"], ["y"])], [], SHAPE),
        "Elu": ([node("Elu", ["x"], ["y"], alpha=1.0)], [], SHAPE),
        "LeakyRelu": ([node("LeakyRelu", ["x"], ["y"], alpha=0.1)], [], SHAPE),
        "HardSigmoid": ([node("HardSigmoid", ["x"], ["y"], alpha=0.2, beta=0.5)], [], SHAPE),
        "Softmax": ([node("Softmax", ["x"], ["y"], axis=1)], [], SHAPE),
        "Clip": ([node("Clip", ["x", "lo", "hi"], ["y"])],
                 [("lo", np.array(-0.5, f32)), ("hi", np.array(0.5, f32))], SHAPE),
        "AddScalar": ([node("Add", ["x", "c"], ["y"])], [("c", np.array([1.5], f32))], SHAPE),
        "MulScalar": ([node("Mul", ["x", "c"], ["y"])], [("c", np.array([0.25], f32))], SHAPE),
        "Conv": ([node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], [("w", w)],
                 [1, 4, 8, 8]),
        "MaxPool": ([node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])], [],
                    [1, 3, 4, 4]),
        "GlobalAveragePool": ([node("GlobalAveragePool", ["x"], ["y"])], [], [1, 3, 1, 1]),
        "SplitAdd": ([node("Split", ["x"], ["a", "b"], axis=2),
                      node("Add", ["a", "b"], ["y"])], [], [1, 3, 4, 8]),
        "Transpose": ([node("Transpose", ["x"], ["y"], perm=[0, 1, 3, 2])], [], SHAPE),
        "Concat": ([node("Concat", ["x", "x"], ["y"], axis=1)], [], [1, 6, 8, 8]),
    }
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (nodes, inits, oshape) in specs.items():
        p = directory / f"op_{name.lower()}.onnx"
        onnx.save(_model(name, nodes, inits, oshape), p)
        out[name] = p
    return out
