"""Small ONNX models with non-float inputs and outputs (issue 12, section 1), built with a fixed
seed so every run makes the same files."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _save(graph, path: Path, opset: int = 13) -> Path:
    import onnx
    from onnx import helper
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(path))
    return path


def mixed(path: Path) -> Path:
    """int64 ids, a bool mask, an int32 scale and a float input; an int64 ArgMax and a float
    output: y = Where(mask, emb[ids] * float(scale) + x, 0), label = ArgMax(y, axis 2).
    The embedding table has 7 rows, below the default integer range (0..9): ids must stay
    inside the table the model indexes."""
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh
    rng = np.random.default_rng(12)
    inits = [nh.from_array(rng.standard_normal((7, 8)).astype(np.float32), "emb"),
             nh.from_array(np.zeros((1,), np.float32), "zero"),
             nh.from_array(np.array([2], np.int64), "axis2")]
    ins = [h.make_tensor_value_info("ids", T.INT64, [1, 6]),
           h.make_tensor_value_info("mask", T.BOOL, [1, 6]),
           h.make_tensor_value_info("scale", T.INT32, [1, 6]),
           h.make_tensor_value_info("x", T.FLOAT, [1, 6, 8])]
    outs = [h.make_tensor_value_info("label", T.INT64, [1, 6]),
            h.make_tensor_value_info("y", T.FLOAT, [1, 6, 8])]
    nodes = [h.make_node("Gather", ["emb", "ids"], ["e"], axis=0),
             h.make_node("Cast", ["scale"], ["sf"], to=T.FLOAT),
             h.make_node("Unsqueeze", ["sf", "axis2"], ["sf3"]),
             h.make_node("Mul", ["e", "sf3"], ["es"]),
             h.make_node("Add", ["es", "x"], ["s"]),
             h.make_node("Unsqueeze", ["mask", "axis2"], ["m3"]),
             h.make_node("Where", ["m3", "s", "zero"], ["y"]),
             h.make_node("ArgMax", ["y"], ["label"], axis=2, keepdims=0)]
    return _save(h.make_graph(nodes, "mixed", ins, outs, inits), path)


def argmax_labels(path: Path) -> Path:
    """The int-output case (cases/int-output): logits 1x5x4x4 -> Softmax(axis 1) -> probs
    (float) and ArgMax(axis 1) -> labels (int64, 1x4x4)."""
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5, 4, 4])
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 5, 4, 4])
    labels = helper.make_tensor_value_info("labels", TensorProto.INT64, [1, 4, 4])
    nodes = [helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
             helper.make_node("ArgMax", ["probs"], ["labels"], axis=1, keepdims=0)]
    return _save(helper.make_graph(nodes, "argmax_labels", [x], [probs, labels]), path)


def scalar_rate(path: Path) -> Path:
    """A float signal and a 0-d int64 sample rate: y = x * float(sr) / 16000."""
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh
    ins = [h.make_tensor_value_info("x", T.FLOAT, [1, 4, 8]),
           h.make_tensor_value_info("sr", T.INT64, [])]
    outs = [h.make_tensor_value_info("y", T.FLOAT, [1, 4, 8])]
    nodes = [h.make_node("Cast", ["sr"], ["srf"], to=T.FLOAT),
             h.make_node("Mul", ["srf", "k"], ["s"]),
             h.make_node("Mul", ["x", "s"], ["y"])]
    k = nh.from_array(np.array(1 / 16000, np.float32), "k")
    return _save(h.make_graph(nodes, "scalar_rate", ins, outs, [k]), path)


def two_inputs(path: Path) -> Path:
    """Two float inputs of different shapes whose roles differ: y = a - b (b broadcast), so
    feeding them swapped fails or gives wrong values."""
    from onnx import TensorProto as T
    from onnx import helper as h
    ins = [h.make_tensor_value_info("a", T.FLOAT, [1, 3, 4, 4]),
           h.make_tensor_value_info("b", T.FLOAT, [1, 3, 1, 1])]
    outs = [h.make_tensor_value_info("y", T.FLOAT, [1, 3, 4, 4])]
    nodes = [h.make_node("Sub", ["a", "b"], ["y"])]
    return _save(h.make_graph(nodes, "two_inputs", ins, outs), path)
