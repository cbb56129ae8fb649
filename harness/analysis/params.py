"""Which constants count as parameters ("weights"), and how to total them.

A weight is a float constant (initializer or Constant-node output) read through a
weight/bias slot of a layer that owns parameters. Other constants (Reshape targets, Clip
bounds, Resize scales, SE-block scalars) are reported separately as "all initializers".
BatchNormalization stores 4N numbers but only scale/bias (2N) are learnable: `params`
counts what the file stores, `learnable_params` the textbook figure.

Exporters write a Linear layer as MatMul(x, W) + Add(b); that bias is a parameter too, so an
Add of a float constant of W's output width right after a MatMul with a constant W counts it.
Decomposed normalizations (ReduceMean/Sub/Pow/... then Mul gamma, Add beta) are not
recognised: their gamma/beta only show under all initializers.

A weight slot may read a folded constant (see graph: a weight behind Reshape, Transpose,
Cast, DequantizeLinear, ...). Then the stored constants it carries are the parameters, in
their stored dtype: an int8 weight behind DequantizeLinear counts as int8 bytes, and its
scale and zero point count as parameters that are not learnable. The slot qualifies when the
value the layer reads is float (an int8 weight dequantized to float qualifies; a Reshape
target shape never reaches a value slot, so it never counts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .dtypes import dtype_name, is_float, nbytes
from .graph import ConstInfo, ModelGraph, NodeView

# name -> (elem_type, shape) of any tensor the graph reads, folded constants included.
TypeShapeOf = Callable[[str], "tuple[int, tuple[int, ...]] | None"]

# op_type -> input positions that hold parameters; None = any constant float input.
WEIGHT_SLOTS: dict[str, tuple[int, ...] | None] = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": None, "Einsum": None,
    "BatchNormalization": (1, 2, 3, 4), "InstanceNormalization": (1, 2), "LayerNormalization": (1, 2),
    "GroupNormalization": (1, 2), "PRelu": (1,), "LSTM": (1, 2, 3, 7), "GRU": (1, 2, 3), "RNN": (1, 2, 3),
    "Gather": (0,),  # a constant float table indexed by ids is an embedding
}
# Slots that are stored but not learned (BatchNormalization running mean / variance).
NON_LEARNABLE_SLOTS: dict[str, tuple[int, ...]] = {"BatchNormalization": (3, 4)}


@dataclass(frozen=True)
class Weight:
    """A stored constant a layer reads as a parameter through input `slot`."""

    slot: int
    const: ConstInfo
    learnable: bool


def _weights_at(node: NodeView, pos: int, graph: ModelGraph,
                type_shape_of: TypeShapeOf) -> list[Weight]:
    name = node.inputs[pos]
    stored = graph.constants.get(name)
    if stored is not None:
        return [Weight(pos, stored, is_learnable(node, pos))] if is_float(stored.elem_type) else []
    if name not in graph.folded:
        return []
    read = type_shape_of(name)
    if read is None or not is_float(read[0]):
        return []
    return [Weight(pos, graph.constants[s.name], s.learnable and is_learnable(node, pos))
            for s in graph.folded[name]]


def weight_inputs(node: NodeView, graph: ModelGraph, type_shape_of: TypeShapeOf) -> list[Weight]:
    """The stored constants behind the node's parameter inputs (directly or through folding)."""
    if node.domain or node.op_type not in WEIGHT_SLOTS:
        return []
    slots = WEIGHT_SLOTS[node.op_type]
    positions = range(len(node.inputs)) if slots is None else [s for s in slots if s < len(node.inputs)]
    return [w for pos in positions if node.inputs[pos]
            for w in _weights_at(node, pos, graph, type_shape_of)]


def linear_biases(graph: ModelGraph, type_shape_of: TypeShapeOf) -> dict[int, list[Weight]]:
    """Node index -> bias weights of Adds that complete an exported MatMul + Add Linear."""
    producer = {o: n for n in graph.nodes for o in n.outputs if o}
    found: dict[int, list[Weight]] = {}
    for index, node in enumerate(graph.nodes):
        if node.op_type != "Add" or node.domain or len(node.inputs) != 2:
            continue
        for slot in (0, 1):
            bias, other = node.inputs[slot], producer.get(node.inputs[1 - slot])
            if not graph.is_constant(bias) or other is None or other.op_type != "MatMul" \
                    or len(other.inputs) < 2 or not graph.is_constant(other.inputs[1]):
                continue
            b, w = type_shape_of(bias), type_shape_of(other.inputs[1])
            if b is None or w is None or not is_float(b[0]) or not w[1]:
                continue
            b_shape = b[1]
            if math.prod(b_shape) == w[1][-1] and all(d == 1 for d in b_shape[:-1]):
                weights = _weights_at(node, slot, graph, type_shape_of)
                if weights:
                    found[index] = weights
                    break
    return found


def is_learnable(node: NodeView, slot: int) -> bool:
    return slot not in NON_LEARNABLE_SLOTS.get(node.op_type, ())


@dataclass
class ConstTotals:
    """Element/byte totals over a set of constants, each constant counted once."""

    count: int = 0
    elems: int = 0
    bytes: int = 0
    bytes_by_dtype: dict[str, int] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set, repr=False)

    def add(self, const: ConstInfo) -> None:
        if const.name in self._seen:
            return
        self._seen.add(const.name)
        size = nbytes(const.elem_type, const.numel)
        self.count += 1
        self.elems += const.numel
        self.bytes += size
        key = dtype_name(const.elem_type)
        self.bytes_by_dtype[key] = self.bytes_by_dtype.get(key, 0) + size

    def add_all(self, consts: Iterable[ConstInfo]) -> ConstTotals:
        for c in consts:
            self.add(c)
        return self
