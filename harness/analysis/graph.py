"""A flat, read-only view of an ONNX graph: real inputs, constants, and compute nodes in order.

Constants are initializers *and* outputs of `Constant` nodes: exporters such as paddle2onnx
(the PP-OCR models) store every weight as a Constant node and have no initializers at all, so
treating the two alike is what makes parameter counts and activation memory meaningful.

Constness is tracked through the graph: a standard, deterministic node whose every input is a
constant (an initializer, a Constant node's value, or the output of another such node) makes
constants too. Exporters route weights through such nodes (a classifier weight through a
Reshape, an int8 weight through DequantizeLinear in QDQ models); engines fold them when they
load the model, so they are not run-time layers and their outputs are not activations. Each
folded tensor remembers the stored constants whose values it carries (its "sources"), so the
weight a layer reads is counted once, as stored, in the file's own dtype and bytes.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

import onnx
import onnx.helper  # noqa: F401
import onnx.shape_inference  # noqa: F401

from .errors import AnalysisError


@dataclass(frozen=True)
class ConstInfo:
    name: str
    elem_type: int
    shape: tuple[int, ...]
    source: str  # "initializer" or "Constant"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class NodeView:
    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]  # positional; "" marks an omitted optional input
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(hash=False, compare=False)
    implicit_inputs: tuple[str, ...] = ()  # outer-scope names read by If/Loop/Scan bodies

    @property
    def reads(self) -> tuple[str, ...]:
        """Every tensor name the node needs, without blanks or repeats, in first-use order."""
        return tuple(dict.fromkeys(n for n in (*self.inputs, *self.implicit_inputs) if n))


# Inputs whose values a folded output carries; the others are shapes, axes or indices. Ops not
# listed carry every input (Transpose, Cast, Identity, Concat, Mul of two constants, ...).
FOLD_VALUE_SLOTS: dict[str, tuple[int, ...]] = {
    "Reshape": (0,), "Expand": (0,), "Tile": (0,), "Squeeze": (0,), "Unsqueeze": (0,),
    "Slice": (0,), "Pad": (0, 2), "Gather": (0,), "GatherElements": (0,), "GatherND": (0,),
    "Split": (0,), "Resize": (0,), "Upsample": (0,), "CastLike": (0,), "ConstantOfShape": (),
    "Shape": (), "Size": (), "Range": (), "EyeLike": (), "OneHot": (2,),
}
# Carried inputs that are stored with a weight but not learned: quantization scales and zero points.
FOLD_AUX_SLOTS: dict[str, tuple[int, ...]] = {"DequantizeLinear": (1, 2), "QuantizeLinear": (1, 2)}
# Never constant even with constant inputs: their output differs between runs.
NONDETERMINISTIC = frozenset({
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
    "Bernoulli",
})


@dataclass(frozen=True)
class Source:
    """A stored constant whose values reach a folded tensor; `learnable` is False for
    quantization scales and zero points."""

    name: str
    learnable: bool = True


@dataclass
class ModelGraph:
    inputs: dict[str, tuple[int, tuple[int | None, ...] | None]]  # name -> (elem_type, dims or None)
    outputs: tuple[str, ...]
    constants: dict[str, ConstInfo]  # stored constants: initializers and Constant-node values
    nodes: list[NodeView]  # run-time compute nodes (no Constant or folded nodes), in order
    folded_nodes: list[NodeView] = field(default_factory=list)  # nodes computing constants only
    folded: dict[str, tuple[Source, ...]] = field(default_factory=dict)  # output -> its sources

    def is_constant(self, name: str) -> bool:
        return name in self.constants or name in self.folded

    def sources(self, name: str) -> tuple[Source, ...]:
        """Stored constants whose values `name` carries (itself when stored; () if not constant)."""
        if name in self.constants:
            return (Source(name),)
        return self.folded.get(name, ())


def _const_from_attr(node: Any) -> ConstInfo:
    name = node.output[0]
    for attr in node.attribute:
        kind = attr.name
        if kind == "value":
            return ConstInfo(name, attr.t.data_type, tuple(attr.t.dims), "Constant")
        if kind == "sparse_value":
            return ConstInfo(name, attr.sparse_tensor.values.data_type, tuple(attr.sparse_tensor.dims), "Constant")
        if kind == "value_float":
            return ConstInfo(name, 1, (), "Constant")
        if kind == "value_floats":
            return ConstInfo(name, 1, (len(attr.floats),), "Constant")
        if kind == "value_int":
            return ConstInfo(name, 7, (), "Constant")
        if kind == "value_ints":
            return ConstInfo(name, 7, (len(attr.ints),), "Constant")
        if kind == "value_string":
            return ConstInfo(name, 8, (), "Constant")
        if kind == "value_strings":
            return ConstInfo(name, 8, (len(attr.strings),), "Constant")
    raise AnalysisError(f"Constant node {node.name or name!r}", "has no value attribute", "value or value_*")


def _attrs(node: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in node.attribute:
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS,
                         onnx.AttributeProto.TENSOR, onnx.AttributeProto.SPARSE_TENSOR):
            continue  # bodies are handled as implicit inputs; tensors are not needed for costs
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, list):
            value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
        out[attr.name] = value
    return out


def _outer_refs(graph: Any) -> set[str]:
    """Names a subgraph reads from enclosing scopes (needed so those tensors stay alive)."""
    local = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    refs: set[str] = set()
    for node in graph.node:
        refs.update(n for n in node.input if n and n not in local)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                refs.update(r for r in _outer_refs(sub) if r not in local)
        local.update(node.output)
    return refs


def _implicit_inputs(node: Any) -> tuple[str, ...]:
    refs: set[str] = set()
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            refs |= _outer_refs(attr.g)
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for g in attr.graphs:
                refs |= _outer_refs(g)
    return tuple(sorted(refs))


def _topological(nodes: list[NodeView], ready: set[str]) -> list[NodeView]:
    """Keep the file's order when it is already valid (ONNX requires it); else a stable Kahn sort."""
    produced_at = {out: i for i, n in enumerate(nodes) for out in n.outputs if out}
    deps = [{produced_at[r] for r in n.reads if r in produced_at and r not in ready} for n in nodes]
    if all(all(d < i for d in ds) for i, ds in enumerate(deps)):
        return nodes
    users: dict[int, list[int]] = {}
    for i, ds in enumerate(deps):
        for d in ds:
            users.setdefault(d, []).append(i)
    pending = [len(ds) for ds in deps]
    heap = [i for i, p in enumerate(pending) if p == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        i = heapq.heappop(heap)
        order.append(i)
        for u in users.get(i, []):
            pending[u] -= 1
            if pending[u] == 0:
                heapq.heappush(heap, u)
    if len(order) != len(nodes):
        stuck = [nodes[i].name for i, p in enumerate(pending) if p > 0][:3]
        raise AnalysisError("graph", f"has a cycle through nodes {', '.join(stuck)}", "an acyclic ONNX graph")
    return [nodes[i] for i in order]


def _fold(nodes: list[NodeView], constants: dict[str, ConstInfo]
          ) -> tuple[list[NodeView], list[NodeView], dict[str, tuple[Source, ...]]]:
    """Split topologically ordered nodes into run-time nodes and constant-folded ones."""
    folded: dict[str, tuple[Source, ...]] = {}
    run, fold = [], []

    def carried(name: str) -> tuple[Source, ...]:
        return (Source(name),) if name in constants else folded[name]

    for node in nodes:
        reads = node.reads
        if (node.domain or node.op_type in NONDETERMINISTIC or not reads or node.implicit_inputs
                or not all(r in constants or r in folded for r in reads)):
            run.append(node)
            continue
        fold.append(node)
        value_slots = FOLD_VALUE_SLOTS.get(node.op_type, range(len(node.inputs)))
        aux = FOLD_AUX_SLOTS.get(node.op_type, ())
        found: dict[str, Source] = {}
        for pos in value_slots:
            if pos >= len(node.inputs) or not node.inputs[pos]:
                continue
            for src in carried(node.inputs[pos]):
                learnable = src.learnable and pos not in aux
                # A source reached both as data and as a scale stays learnable.
                if src.name not in found or learnable:
                    found[src.name] = Source(src.name, learnable)
        for out in node.outputs:
            if out:
                folded[out] = tuple(found.values())
    return run, fold, folded


def build_graph(model: Any) -> ModelGraph:
    """The flat view of `model`: stored constants (dims and dtype only; tensor data is never
    read), real inputs, and compute nodes in topological order split into run-time and
    constant-folded ones. Raises AnalysisError on a Constant node without a value or a cycle."""
    g = model.graph
    constants: dict[str, ConstInfo] = {
        t.name: ConstInfo(t.name, t.data_type, tuple(t.dims), "initializer") for t in g.initializer
    }
    nodes: list[NodeView] = []
    for index, node in enumerate(g.node):
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            info = _const_from_attr(node)
            constants[info.name] = info
            continue
        nodes.append(NodeView(
            name=node.name or f"{node.op_type}_{index}",
            op_type=node.op_type,
            domain=node.domain if node.domain not in ("", "ai.onnx") else "",
            inputs=tuple(node.input),
            outputs=tuple(node.output),
            attrs=_attrs(node),
            implicit_inputs=_implicit_inputs(node),
        ))
    # Old IR versions list initializers among graph inputs; those are weights, not inputs.
    inputs: dict[str, tuple[int, tuple[int | None, ...] | None]] = {}
    for value in g.input:
        if value.name in constants:
            continue
        tt = value.type.tensor_type
        dims = (
            tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim)
            if tt.HasField("shape") else None  # rank unknown: any shape is accepted
        )
        inputs[value.name] = (tt.elem_type, dims)
    nodes = _topological(nodes, set(inputs) | set(constants))
    run, fold, folded = _fold(nodes, constants)
    return ModelGraph(inputs=inputs, outputs=tuple(o.name for o in g.output), constants=constants,
                      nodes=run, folded_nodes=fold, folded=folded)
