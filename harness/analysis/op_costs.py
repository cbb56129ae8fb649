"""Arithmetic cost and im2col/col2im workspace of one node, from its tensor shapes.

Conventions (printed with every report):
* 1 MAC (multiply-accumulate) = 2 FLOPs. For MAC-based ops (Conv, ConvTranspose, Gemm,
  MatMul) `flops` = 2 x MACs; a bias add is *not* added on top (the count of 2K per output
  already equals K multiplies + (K-1) adds + 1 bias add).
  `textbook_flops` counts only what is inside the dot products: K multiplies and K-1 adds per
  output (a 3x3 single-channel conv: 17 per output), and `bias_flops` is 1 per output where a
  bias exists, so textbook_flops + bias_flops == flops for a biased layer.
* Elementwise, activation, normalization, Softmax and Resize ops: 1 FLOP per output element
  (variadic Sum/Max/Min/Mean: inputs - 1 per output element). Pooling: 1 per element of each
  pooling window (output elements x window size); Global pooling and Reduce*/ArgMax/ArgMin:
  1 per input element.
* Data movement and shape ops (Reshape, Concat, Slice, Transpose, Cast, Pad, ...): 0.
* Anything else is unknown: 0 FLOPs and reported by op type in `unknown_ops`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .graph import NodeView

ELEMENTWISE = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "PRelu", "Relu", "LeakyRelu", "Elu", "Selu", "Celu",
    "ThresholdedRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Clip", "Exp", "Log", "Sqrt",
    "Reciprocal", "Neg", "Abs", "Erf", "Gelu", "Mish", "Softplus", "Softsign", "Sin", "Cos", "Tan",
    "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Floor", "Ceil", "Round",
    "Sign", "Not", "And", "Or", "Xor", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual",
    "Where", "IsNaN", "IsInf", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot",
    "QuantizeLinear", "DequantizeLinear",
})
VARIADIC = frozenset({"Sum", "Mean", "Max", "Min"})
PER_OUTPUT = frozenset({
    "BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization",
    "LpNormalization", "LRN", "MeanVarianceNormalization", "Softmax", "LogSoftmax", "Hardmax",
    "Resize", "Upsample",
})
WINDOW_POOL = frozenset({"MaxPool", "AveragePool", "LpPool"})
PER_INPUT = frozenset({
    "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceSum", "ReduceMax",
    "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
    "ReduceSumSquare", "ArgMax", "ArgMin", "TopK", "CumSum",
})
ZERO_COST = frozenset({
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice", "Gather",
    "GatherElements", "GatherND", "Shape", "Size", "ConstantOfShape", "Identity", "Dropout", "Pad",
    "Expand", "Tile", "Cast", "CastLike", "Range", "DepthToSpace", "SpaceToDepth", "ScatterND",
    "ScatterElements", "NonZero", "OneHot", "EyeLike", "Trilu", "ReverseSequence", "Compress",
})
# Unary elementwise and view-like ops whose output may overwrite a same-size dying input 0.
INPLACE_UNARY = frozenset({
    "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "ThresholdedRelu", "Sigmoid", "HardSigmoid",
    "HardSwish", "Tanh", "Clip", "Exp", "Log", "Sqrt", "Reciprocal", "Neg", "Abs", "Erf", "Gelu",
    "Mish", "Softplus", "Softsign", "Floor", "Ceil", "Round", "Sign", "Not",
    "Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
})
# Binary/variadic elementwise ops: the output may overwrite any same-size input that dies here.
INPLACE_ANY = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "PRelu", "Sum", "Mean", "Max", "Min", "And", "Or", "Xor"})

ShapeOf = Callable[[str], tuple[int, ...]]


@dataclass(frozen=True)
class OpCost:
    macs: int = 0
    flops: int = 0
    textbook_flops: int = 0
    bias_flops: int = 0
    workspace_elems: int = 0  # per image and group: what one straightforward im2col/col2im holds at once
    workspace_note: str = ""
    known: bool = True


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


def _has(node: NodeView, pos: int) -> bool:
    return len(node.inputs) > pos and bool(node.inputs[pos])


def _plain_1x1(node: NodeView, kernel: tuple[int, ...]) -> bool:
    """1x1 kernel, stride 1, no padding: the input already *is* the column matrix."""
    strides = node.attrs.get("strides") or [1] * len(kernel)
    pads = node.attrs.get("pads") or [0] * (2 * len(kernel))
    return all(k == 1 for k in kernel) and all(s == 1 for s in strides) and not any(pads)


def _conv(node: NodeView, shape_of: ShapeOf) -> OpCost:
    """Conv. MACs = outputs x (Cin/groups) x Kh x Kw. Workspace: the im2col matrix of one group
    of one image, Kh*Kw*(Cin/groups) x Hout*Wout; none for 1x1 stride-1 unpadded kernels (the
    input is already that matrix) or depthwise convs (computed directly, one channel at a time).
    """
    x, w, y = shape_of(node.inputs[0]), shape_of(node.inputs[1]), shape_of(node.outputs[0])
    kernel = tuple(w[2:])
    k = w[1] * _numel(kernel)
    out = _numel(y)
    macs = out * k
    group = int(node.attrs.get("group", 1))
    bias = out if _has(node, 2) else 0
    if group > 1 and group == x[1] and w[1] == 1:
        ws, note = 0, "none: depthwise"
    elif _plain_1x1(node, kernel):
        ws, note = 0, "none: 1x1 stride 1"
    else:
        ws, note = k * _numel(tuple(y[2:])), "im2col"
    return OpCost(macs, 2 * macs, 2 * macs - out, bias, ws, note)


def _conv_transpose(node: NodeView, shape_of: ShapeOf) -> OpCost:
    """ConvTranspose. MACs = inputs x (Cout/groups) x Kh x Kw (every input pixel is scattered
    through the whole kernel). Workspace: the column buffer a GEMM + col2im implementation
    fills before scattering, Kh*Kw*(Cout/groups) x Hin*Win per group of one image; none for
    depthwise or 1x1 stride-1 unpadded kernels. textbook_flops assumes every output receives
    at least one product (true when stride <= kernel), i.e. 2 x MACs - outputs.
    """
    x, w, y = shape_of(node.inputs[0]), shape_of(node.inputs[1]), shape_of(node.outputs[0])
    kernel = tuple(w[2:])
    cout_g = w[1]
    macs = _numel(x) * cout_g * _numel(kernel)
    out = _numel(y)
    group = int(node.attrs.get("group", 1))
    bias = out if _has(node, 2) else 0
    if group > 1 and group == x[1] and cout_g == 1:
        ws, note = 0, "none: depthwise"
    elif _plain_1x1(node, kernel):
        ws, note = 0, "none: 1x1 stride 1"
    else:
        ws, note = cout_g * _numel(kernel) * _numel(tuple(x[2:])), "col2im"
    return OpCost(macs, 2 * macs, 2 * macs - out, bias, ws, note)


def _gemm(node: NodeView, shape_of: ShapeOf) -> OpCost:
    a = shape_of(node.inputs[0])
    k = a[0] if int(node.attrs.get("transA", 0)) else a[1]
    out = _numel(shape_of(node.outputs[0]))
    macs = out * k
    bias = out if _has(node, 2) and float(node.attrs.get("beta", 1.0)) != 0.0 else 0
    return OpCost(macs, 2 * macs, 2 * macs - out, bias)


def _matmul(node: NodeView, shape_of: ShapeOf) -> OpCost:
    a = shape_of(node.inputs[0])
    k = a[-1] if a else 1
    out = _numel(shape_of(node.outputs[0]))
    macs = out * k
    return OpCost(macs, 2 * macs, 2 * macs - out, 0)


def op_cost(node: NodeView, shape_of: ShapeOf) -> OpCost:
    op = node.op_type
    if node.domain:
        return OpCost(known=False)
    if op == "Conv":
        return _conv(node, shape_of)
    if op == "ConvTranspose":
        return _conv_transpose(node, shape_of)
    if op == "Gemm":
        return _gemm(node, shape_of)
    if op in ("MatMul", "MatMulInteger"):
        return _matmul(node, shape_of)
    if op in ZERO_COST:
        return OpCost()
    out = _numel(shape_of(node.outputs[0])) if node.outputs and node.outputs[0] else 0
    if op in ELEMENTWISE or op in PER_OUTPUT:
        return OpCost(flops=out, textbook_flops=out)
    if op in VARIADIC:
        n = max(1, sum(1 for i in node.inputs if i) - 1)
        return OpCost(flops=n * out, textbook_flops=n * out)
    if op in WINDOW_POOL:
        window = _numel(tuple(node.attrs.get("kernel_shape", ())))
        return OpCost(flops=out * window, textbook_flops=out * window)
    if op in PER_INPUT:
        n = _numel(shape_of(node.inputs[0]))
        return OpCost(flops=n, textbook_flops=n)
    return OpCost(known=False)
