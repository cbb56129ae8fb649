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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .dtypes import dtype_name, is_float, nbytes
from .graph import ConstInfo, ModelGraph, NodeView

# op_type -> input positions that hold parameters; None = any constant float input.
WEIGHT_SLOTS: dict[str, tuple[int, ...] | None] = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": None, "Einsum": None,
    "BatchNormalization": (1, 2, 3, 4), "InstanceNormalization": (1, 2), "LayerNormalization": (1, 2),
    "GroupNormalization": (1, 2), "PRelu": (1,), "LSTM": (1, 2, 3, 7), "GRU": (1, 2, 3), "RNN": (1, 2, 3),
    "Gather": (0,),  # a constant float table indexed by ids is an embedding
}
# Slots that are stored but not learned (BatchNormalization running mean / variance).
NON_LEARNABLE_SLOTS: dict[str, tuple[int, ...]] = {"BatchNormalization": (3, 4)}


def weight_inputs(node: NodeView, constants: dict[str, ConstInfo]) -> list[tuple[int, ConstInfo]]:
    """(slot, constant) pairs of the node's parameter inputs."""
    if node.domain or node.op_type not in WEIGHT_SLOTS:
        return []
    slots = WEIGHT_SLOTS[node.op_type]
    positions = range(len(node.inputs)) if slots is None else [s for s in slots if s < len(node.inputs)]
    found = []
    for pos in positions:
        const = constants.get(node.inputs[pos])
        if const is not None and is_float(const.elem_type):
            found.append((pos, const))
    return found


def linear_biases(graph: ModelGraph) -> dict[int, list[tuple[int, ConstInfo]]]:
    """Node index -> (slot, bias) for Adds that complete an exported MatMul + Add Linear."""
    producer = {o: n for n in graph.nodes for o in n.outputs if o}
    found: dict[int, list[tuple[int, ConstInfo]]] = {}
    for index, node in enumerate(graph.nodes):
        if node.op_type != "Add" or node.domain or len(node.inputs) != 2:
            continue
        for slot in (0, 1):
            bias, other = graph.constants.get(node.inputs[slot]), producer.get(node.inputs[1 - slot])
            if bias is None or not is_float(bias.elem_type) or other is None or other.op_type != "MatMul":
                continue
            weights = [graph.constants[i] for i in other.inputs[1:2] if i in graph.constants]
            if weights and weights[0].shape and bias.numel == weights[0].shape[-1] \
                    and all(d == 1 for d in bias.shape[:-1]):
                found[index] = [(slot, bias)]
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
