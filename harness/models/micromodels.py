"""Generated micro-models that reproduce known engine problems; fixed seeds, stable bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cache import cache_root
from ..store.atomic import atomic_write_bytes

# Bump when a generator changes so cached files are regenerated.
GENERATOR_VERSION = "1"


def save_model(model, name: str, version: str = GENERATOR_VERSION) -> Path:
    """Write a generated model once into the cache (checked, atomically); its path."""
    import onnx
    path = cache_root() / "micro" / f"{name}-v{version}.onnx"
    if not path.exists():
        onnx.checker.check_model(model)
        atomic_write_bytes(path, model.SerializeToString())
    return path


def convtranspose_upsampler() -> Path:
    """ConvTranspose 64→64, kernel 4, stride 2, on 1×64×128×128 (MNN's k·k·featuremap buffer)."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(20240611)
    w = (rng.standard_normal((64, 64, 4, 4)) * 0.05).astype(np.float32)
    b = (rng.standard_normal(64) * 0.01).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[4, 4],
                            strides=[2, 2], pads=[1, 1, 1, 1], name="upsample")
    g = helper.make_graph(
        [node], "convtranspose_upsampler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 128, 128])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 256, 256])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)],
                          producer_name="harness.micromodels")
    m.ir_version = 7
    return save_model(m, "convtranspose_upsampler")


def reduction_sum_block() -> Path:
    """Conv + ReLU then a ReduceSum over 32×128×128 positive values: the sum (about 2e5 with
    the seeded input) is far above fp16's 65504, so an engine that keeps that reduction in fp16
    storage yields inf."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(20240612)
    w = np.abs(rng.standard_normal((32, 8, 3, 3)) * 0.1).astype(np.float32)
    b = np.full(32, 0.1, np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("ReduceSum", ["r"], ["y"], axes=[1, 2, 3], keepdims=1,
                         name="reduce_sum"),
    ]
    g = helper.make_graph(
        nodes, "reduction_sum_block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 128, 128])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, 1])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)],
                          producer_name="harness.micromodels")
    m.ir_version = 7
    return save_model(m, "reduction_sum_block")
