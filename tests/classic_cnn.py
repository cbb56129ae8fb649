"""A classic CNN from the onnx package's backend test data, materialized with seeded weights.

The ``light`` models there ship their weights as ``ConstantOfShape`` of the weight's shape (no
values); this replaces each with a seeded He-scaled tensor (biases small), so activations keep
their scale through the network and the classifier output is not a flat softmax.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def replace_weights(model: onnx.ModelProto, value) -> list:
    """Replace each ``ConstantOfShape`` weight of ``model`` (the ``light`` files store only
    the weight's shape) by an initializer ``value(output_name, dims)`` (a numpy array); the
    initializers added, in graph order. The model is changed in place (IR 8: initializers need
    not be listed as inputs)."""
    g = model.graph
    stored = {t.name: t for t in g.initializer}
    nodes, weights, dropped = [], [], set()
    for node in g.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in stored:
            dims = [int(d) for d in numpy_helper.to_array(stored[node.input[0]]).tolist()]
            w = np.asarray(value(node.output[0], dims), dtype=np.float32)
            weights.append(numpy_helper.from_array(w, node.output[0]))
            dropped.add(node.input[0])
        else:
            nodes.append(node)
    kept = [t for t in g.initializer if t.name not in dropped] + weights
    names = {t.name for t in kept}
    inputs = [i for i in g.input if i.name not in names and i.name not in dropped]
    del g.node[:], g.initializer[:], g.input[:]
    g.node.extend(nodes)
    g.initializer.extend(kept)
    g.input.extend(inputs)
    model.ir_version = 8
    return weights


def materialize(name: str, out: Path, seed: int = 0, conv_scale: float = 1.0,
                opset: int | None = None) -> Path:
    """``light_NAME.onnx`` with real weights, written to ``out/NAME.onnx``. ``conv_scale``
    multiplies the He scale of every weight (a deep BatchNorm'd net such as shufflenet needs
    about 0.5, or its softmax turns one-hot and a cosine of 1 says nothing); ``opset``:
    converted to that opset (the files are opset 9, whose Softmax over axis 1 of a
    [1, 1000, 1, 1] output MNN 3.6.1 turns into all ones: squeezenet's outputs were 1.0)."""
    model = onnx.load(str(LIGHT / f"light_{name}.onnx"))
    rng = np.random.default_rng(seed)
    # BatchNormalization's scale, bias, mean and variance: near the identity (a random
    # variance can be negative: NaN)
    bn = {}
    for node in model.graph.node:
        if node.op_type == "BatchNormalization":
            for role, tensor in zip(("scale", "bias", "mean", "var"), node.input[1:5]):
                bn[tensor] = role

    def value(output: str, dims: list[int]):
        role = bn.get(output)
        if role is not None:
            w = {"scale": 1.0, "var": 1.0}.get(role, 0.0) + rng.standard_normal(dims) * 0.05
            return np.abs(w) if role == "var" else w
        if len(dims) > 1:  # a weight: He scale over its fan-in
            return rng.standard_normal(dims) * np.sqrt(2.0 / int(np.prod(dims[1:]))) * conv_scale
        return rng.standard_normal(dims) * 0.01  # a bias

    replace_weights(model, value)
    if opset is not None:
        from onnx import version_converter
        model = version_converter.convert_version(model, opset)
    path = out / f"{name}.onnx"
    onnx.save(model, str(path))
    return path
