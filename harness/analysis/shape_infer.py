"""Concrete shape and element type of every activation tensor for given input shapes.

First ONNX shape inference on a copy whose inputs are fixed (cheap, no weights touched). It
gives up on some shape computations (Resize/Reshape fed by computed tensors, custom ops), so
any tensor left without a fully static shape is measured instead: onnxruntime runs the model
once on all-zero inputs with those tensors exposed as extra graph outputs. A zero input gives
the true shapes for everything except data-dependent ops (NonZero, TopK with computed k, ...),
whose sizes are then those of the zero input. If onnxruntime cannot run the model either
(custom ops), shapes the file itself declares (value_info, outputs) fill the gaps, with
inference run again from them; a tensor still unknown after that is an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import onnx
import onnx.helper  # noqa: F401
import onnx.shape_inference  # noqa: F401

from .errors import AnalysisError
from .graph import ModelGraph


class _RuntimeFailed(Exception):
    """onnxruntime could not run the probe model (message: its first error line)."""


@dataclass(frozen=True)
class TensorInfo:
    elem_type: int
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def fix_input_shapes(model: Any, shapes: Mapping[str, tuple[int, ...]], keep_declared: bool = False) -> Any:
    """A copy of `model` with the given input dims and (unless keep_declared) no
    intermediate/output shapes.

    Exporters often leave value_info/output shapes from the export resolution; inference would
    merge (or clash with) them, so by default they are dropped and recomputed.
    """
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    g = fixed.graph
    for value in g.input:
        if value.name not in shapes:
            continue
        tt = value.type.tensor_type
        tt.ClearField("shape")
        for d in shapes[value.name]:
            tt.shape.dim.add().dim_value = int(d)
    if not keep_declared:
        del g.value_info[:]
        for value in g.output:
            value.type.tensor_type.ClearField("shape")
    return fixed


def _static(value: Any) -> TensorInfo | None:
    if not value.type.HasField("tensor_type"):
        return None
    tt = value.type.tensor_type
    if tt.elem_type == 0 or not tt.HasField("shape"):
        return None
    if not all(d.HasField("dim_value") and d.dim_value >= 0 for d in tt.shape.dim):
        return None
    return TensorInfo(tt.elem_type, tuple(int(d.dim_value) for d in tt.shape.dim))


def _infer(fixed: Any) -> dict[str, TensorInfo]:
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # inference is best effort here; the runtime fallback covers the rest
        return {}
    g = inferred.graph
    found: dict[str, TensorInfo] = {}
    for value in (*g.input, *g.value_info, *g.output):
        info = _static(value)
        if info is not None:
            found[value.name] = info
    return found


def _zero_feeds(probe: Any, shapes: Mapping[str, tuple[int, ...]],
                input_types: Mapping[str, int]) -> dict[str, Any]:
    """All-zero values for the given inputs, and for every other declared input of static
    shape (constants whose values were left out of the loaded model, see model_file)."""
    import numpy as np

    feeds = {name: np.zeros(shape, dtype=onnx.helper.tensor_dtype_to_np_dtype(input_types[name]))
             for name, shape in shapes.items()}
    stored = {t.name for t in probe.graph.initializer}
    for value in probe.graph.input:
        if value.name in feeds or value.name in stored:
            continue
        info = _static(value)
        if info is not None:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(info.elem_type)
            feeds[value.name] = np.zeros(info.shape, dtype=dtype)
    return feeds


def _measure(fixed: Any, shapes: Mapping[str, tuple[int, ...]], input_types: Mapping[str, int],
             names: list[str], where: str) -> dict[str, TensorInfo]:
    import numpy as np
    import onnxruntime as ort

    from .dtypes import elem_type_from_numpy

    probe = onnx.ModelProto()
    probe.CopyFrom(fixed)
    present = {o.name for o in probe.graph.output}
    # A name-only ValueInfo is enough for onnxruntime to expose an intermediate tensor.
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in present)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    try:
        try:
            session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            # A writer newer than the runtime stamps a higher IR version than needed; the probe
            # is throwaway, so try once at an IR version every current runtime reads.
            if "IR version" not in str(exc) or probe.ir_version <= 10:
                raise
            probe.ir_version = 10
            session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        values = session.run(names, _zero_feeds(probe, shapes, input_types))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _RuntimeFailed(first) from exc
    out: dict[str, TensorInfo] = {}
    for name, value in zip(names, values):
        arr = np.asarray(value)
        elem = elem_type_from_numpy(arr.dtype.name)
        if elem is None:
            raise AnalysisError(where, f"tensor {name!r} has unsupported dtype {arr.dtype}", "a numeric dtype")
        out[name] = TensorInfo(elem, tuple(int(d) for d in arr.shape))
    return out


def resolve_tensors(
    model: Any, graph: ModelGraph, shapes: Mapping[str, tuple[int, ...]], where: str,
    complete: Callable[[], Any] | None = None,
) -> tuple[dict[str, TensorInfo], str]:
    """Shapes of graph inputs and node outputs (folded constants included, as layers reading
    them need their shapes); also says which source was needed.

    `model` may declare constants whose values were left out as extra graph inputs (see
    model_file.with_values_as_inputs); the onnxruntime probe feeds them zeros. Should
    onnxruntime refuse that (a kernel that needs a constant weight), `complete()` gives the
    model with all its values for one more try.
    """
    every = [*graph.folded_nodes, *graph.nodes]
    known = set(graph.inputs) | set(graph.constants) | {o for n in every for o in n.outputs}
    for node in every:
        for name in node.reads:
            if name not in known:
                raise AnalysisError(
                    f"{where} node {node.name!r}", f"reads {name!r}, which no node, input or constant provides",
                    "a complete ONNX graph",
                )
    fixed = fix_input_shapes(model, shapes)
    found = _infer(fixed)
    for name, shape in shapes.items():  # the inputs are known exactly whatever inference did
        found[name] = TensorInfo(graph.inputs[name][0], tuple(shape))
    wanted = [o for n in every for o in n.outputs if o and o not in graph.constants]
    missing = [n for n in wanted if n not in found]
    source = "onnx"
    if missing:
        input_types = {n: graph.inputs[n][0] for n in shapes}
        try:
            try:
                found.update(_measure(fixed, shapes, input_types, missing, where))
            except _RuntimeFailed:
                if complete is None:
                    raise
                found.update(_measure(fix_input_shapes(complete(), shapes), shapes, input_types,
                                      missing, where))
            source = "onnx+onnxruntime"
        except _RuntimeFailed as exc:
            declared = _infer(fix_input_shapes(model, shapes, keep_declared=True))
            found.update({n: declared[n] for n in missing if n in declared})
            still = [n for n in missing if n not in found]
            if still:
                raise AnalysisError(
                    where, f"shape inference left {len(still)} tensor(s) unknown (e.g. {still[0]!r}) and "
                    f"onnxruntime could not run the model to measure them: {exc}",
                    "a model onnxruntime can run with the given input shapes, or declared shapes",
                ) from exc
            source = "onnx+declared"
    return {n: found[n] for n in (*shapes, *wanted)}, source
