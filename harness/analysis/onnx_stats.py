"""Static statistics of an ONNX model at fixed input shapes: the `analyze_onnx` entry point.

Per node: parameters read, MACs/FLOPs (conventions in op_costs), output shapes and bytes,
im2col/col2im workspace, and live activation bytes right after it runs. Per model: totals,
each constant counted once, plus three activation-memory figures for the file's
topological order (see memory): naive sum, liveness lower bound and a greedy sharing plan.

Nodes that only compute constants (see graph) are folded: they are not layers, cost nothing
at run time and their outputs are not activations; the layer reading a folded weight counts
its MACs and the stored constants behind it as its parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .dtypes import dtype_name, nbytes
from .errors import AnalysisError
from .graph import ModelGraph, NodeView, build_graph
from .memory import Step, plan_memory
from .model_file import ModelStructure, load_complete, load_structure, with_values_as_inputs
from .op_costs import INPLACE_ANY, INPLACE_UNARY, OpCost, op_cost
from .params import ConstTotals, linear_biases, weight_inputs
from .shape_infer import TensorInfo, resolve_tensors
from ..models.shapes import ShapeArg, bind_shapes, format_shapes

FLOPS_CONVENTION = (
    "FLOPs convention: 1 MAC = 2 FLOPs (Conv/ConvTranspose/Gemm/MatMul FLOPs = 2 x MACs, bias "
    "included); elementwise ops count 1 FLOP per output element; pooling 1 per window element; "
    "global pooling and Reduce* 1 per input element; data movement 0; unknown ops 0 (listed)"
)

ENGINE_NATIVE = {
    ".mnn": "an MNN model (.mnn)",
    ".param": "an ncnn model (.param)",
    ".bin": "an ncnn weight file (.bin)",
}


@dataclass
class LayerStats:
    name: str
    op_type: str
    outputs: list[str]
    output_shapes: list[tuple[int, ...]]
    output_dtypes: list[str]
    output_bytes: int
    params: int  # weight elements this node reads (a shared weight counts at every reader)
    learnable_params: int
    param_bytes: int
    macs: int
    flops: int
    textbook_flops: int  # multiplies + adds inside dot products only
    bias_flops: int  # one add per output where a bias exists
    workspace_elems: int
    workspace_bytes: int
    workspace_note: str
    live_bytes_after: int
    inplace_of: str | None  # input whose buffer the output overwrote in the plan
    known: bool


@dataclass
class ModelStats:
    model_path: str
    model_sha256: str
    input_shapes: dict[str, tuple[int, ...]]
    shape_source: str  # "onnx", "onnx+onnxruntime" (some measured by a run), "onnx+declared" (from the file)
    layers: list[LayerStats]
    params: int
    learnable_params: int
    param_bytes: int
    param_bytes_by_dtype: dict[str, int]
    initializer_count: int  # all constants: initializers and Constant-node values
    initializer_elems: int
    initializer_bytes: int
    initializer_bytes_by_dtype: dict[str, int]
    macs: int
    flops: int
    textbook_flops: int
    bias_flops: int
    naive_activation_bytes: int
    liveness_lower_bound_bytes: int
    greedy_plan_bytes: int
    plan_buffers: int
    max_workspace_bytes: int
    unknown_ops: list[str]
    flops_convention: str = FLOPS_CONVENTION
    notes: list[str] = field(default_factory=list)
    folded_nodes: int = 0  # nodes computing constants only: folded, not layers

    @property
    def input_shape_key(self) -> str:
        return format_shapes(self.input_shapes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (tuples become lists)."""
        d = asdict(self)
        d["input_shape"] = self.input_shape_key
        return d


def check_onnx_path(path: str | Path) -> Path:
    p = Path(path)
    native = ENGINE_NATIVE.get(p.suffix.lower())
    if native:
        raise AnalysisError(
            str(p), f"is {native}; static analysis needs the ONNX source it was converted from",
            "an .onnx file",
        )
    if not p.is_file():
        raise AnalysisError(str(p), "no such file", "a path to an .onnx model")
    return p


def _load(path: Path) -> ModelStructure:
    """The model without its large tensor values (memory near the structure's size, not the
    file's; see model_file)."""
    try:
        loaded = load_structure(path)
    except Exception as exc:
        raise AnalysisError(str(path), f"cannot be read as an ONNX model ({type(exc).__name__})",
                            "a valid .onnx file") from exc
    if not loaded.model.graph.node:
        raise AnalysisError(str(path), "has no graph nodes (not an ONNX model?)", "a valid .onnx file")
    return loaded


def _steps(graph: ModelGraph, sizes: Mapping[str, int]) -> list[Step]:
    steps = []
    for node in graph.nodes:
        acts = tuple(r for r in node.reads if r in sizes)
        if node.op_type in INPLACE_UNARY and not node.domain:
            cands: tuple[str, ...] = tuple(node.inputs[:1])
        elif node.op_type in INPLACE_ANY and not node.domain:
            cands = tuple(i for i in node.inputs if i)
        else:
            cands = ()
        steps.append(Step(node.name, acts, tuple(o for o in node.outputs if o), cands))
    return steps


def _cost(node: NodeView, graph: ModelGraph, tensors: Mapping[str, TensorInfo], where: str) -> OpCost:
    def shape_of(name: str) -> tuple[int, ...]:
        if name in tensors:
            return tensors[name].shape
        return graph.constants[name].shape

    try:
        return op_cost(node, shape_of)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise AnalysisError(
            f"{where} node {node.name!r} ({node.op_type})", f"has inputs/attributes this analysis cannot read ({exc})",
            "shapes that follow the ONNX operator spec",
        ) from exc


def analyze_onnx(path: str | Path, shapes: ShapeArg | str | None = None) -> ModelStats:
    """Analyse `path` at `shapes` ({"x": (1, 3, 640, 640)}, a bare shape for a single-input
    model, shape text like "x:1x3x640x640", or None for a model whose inputs are static)."""
    p = check_onnx_path(path)
    loaded = _load(p)
    digest = loaded.sha256
    graph = build_graph(loaded.model)
    bound = bind_shapes(shapes, {n: dims for n, (_, dims) in graph.inputs.items()}, str(p))
    probe = with_values_as_inputs(loaded.model, loaded.stripped)
    complete = (lambda: load_complete(p)) if loaded.stripped else None
    tensors, source = resolve_tensors(probe, graph, bound, str(p), complete)
    # Folded constants are weights the engine computes once at load, never activations.
    sizes = {n: nbytes(t.elem_type, t.numel) for n, t in tensors.items() if n not in graph.folded}
    plan = plan_memory(_steps(graph, sizes), sizes, list(bound), graph.outputs)

    def type_shape_of(name: str) -> tuple[int, tuple[int, ...]] | None:
        if name in graph.constants:
            return graph.constants[name].elem_type, graph.constants[name].shape
        t = tensors.get(name)
        return (t.elem_type, t.shape) if t is not None else None

    weights, learnable = ConstTotals(), ConstTotals()
    layers: list[LayerStats] = []
    unknown: set[str] = set()
    biases = linear_biases(graph, type_shape_of)
    for i, node in enumerate(graph.nodes):
        cost = _cost(node, graph, tensors, str(p))
        if not cost.known:
            unknown.add(f"{node.domain}:{node.op_type}" if node.domain else node.op_type)
        w = weight_inputs(node, graph, type_shape_of) + biases.get(i, [])
        for weight in w:
            weights.add(weight.const)
            if weight.learnable:
                learnable.add(weight.const)
        outs = [o for o in node.outputs if o]
        x_type = tensors[node.inputs[0]].elem_type if node.inputs and node.inputs[0] in tensors else 1
        layers.append(LayerStats(
            name=node.name,
            op_type=f"{node.domain}:{node.op_type}" if node.domain else node.op_type,
            outputs=outs,
            output_shapes=[tensors[o].shape for o in outs],
            output_dtypes=[dtype_name(tensors[o].elem_type) for o in outs],
            output_bytes=sum(sizes[o] for o in outs),
            params=sum(x.const.numel for x in w),
            learnable_params=sum(x.const.numel for x in w if x.learnable),
            param_bytes=sum(nbytes(x.const.elem_type, x.const.numel) for x in w),
            macs=cost.macs,
            flops=cost.flops,
            textbook_flops=cost.textbook_flops,
            bias_flops=cost.bias_flops,
            workspace_elems=cost.workspace_elems,
            workspace_bytes=nbytes(x_type, cost.workspace_elems),
            workspace_note=cost.workspace_note,
            live_bytes_after=plan.live_after[i],
            inplace_of=next((plan.inplace[o] for o in outs if o in plan.inplace), None),
            known=cost.known,
        ))
    consts = ConstTotals().add_all(graph.constants.values())
    notes = []
    if source == "onnx+onnxruntime":
        notes.append("some shapes were measured by running onnxruntime on all-zero inputs")
    elif source == "onnx+declared":
        notes.append("some shapes come from the shapes declared in the file (onnxruntime could not run it)")
    if graph.folded_nodes:
        ops = sorted({n.op_type for n in graph.folded_nodes})
        notes.append(f"{len(graph.folded_nodes)} node(s) compute constants only "
                     f"({', '.join(ops)}): "
                     "folded into the weights, not counted as layers or activations")
    return ModelStats(
        model_path=str(p),
        model_sha256=digest,
        input_shapes=dict(bound),
        shape_source=source,
        layers=layers,
        params=weights.elems,
        learnable_params=learnable.elems,
        param_bytes=weights.bytes,
        param_bytes_by_dtype=weights.bytes_by_dtype,
        initializer_count=consts.count,
        initializer_elems=consts.elems,
        initializer_bytes=consts.bytes,
        initializer_bytes_by_dtype=consts.bytes_by_dtype,
        macs=sum(l.macs for l in layers),
        flops=sum(l.flops for l in layers),
        textbook_flops=sum(l.textbook_flops for l in layers),
        bias_flops=sum(l.bias_flops for l in layers),
        naive_activation_bytes=plan.naive_bytes,
        liveness_lower_bound_bytes=plan.lower_bound_bytes,
        greedy_plan_bytes=plan.plan_bytes,
        plan_buffers=len(plan.buffers),
        max_workspace_bytes=max((l.workspace_bytes for l in layers), default=0),
        unknown_ops=sorted(unknown),
        notes=notes,
        folded_nodes=len(graph.folded_nodes),
    )
