"""onnxruntime as a per-layer reference: every intermediate tensor of an ONNX model, by name.

Every node output (except Constant nodes) is added to the graph outputs and the model runs
with graph optimizations off, on the CPU provider with one thread, so each tensor is what the
ONNX graph defines.

Matching engine tensors to ONNX names:

- MNN keeps ONNX names: an MNN op is named after the output of the first ONNX node it came
  from, but the converter folds BatchNormalization and fuses activations into convolutions, so
  op ``c`` may hold the values of ONNX tensor ``r = Relu(c)``. ``fusion_candidates`` gives, for
  each tensor, itself and the tensors of the single-input element-wise ops that follow it; the
  device picks the one that agrees in value with a trusted fp32 run (or with the tensor itself).
  Ops MNN makes up (``Raster`` layout copies named ``X_raster_N``, ``BinaryOpNN``) match only
  when their values agree with a same-size tensor of that base name, else they are left out.
- pnnx renames every ncnn blob (in0, 1, 2, ..., out0) and keeps no table of the ONNX names it
  came from: its intermediate files (``*.pnnx.param``) are numbered too. Blobs are matched by
  value: each ncnn blob of a CPU fp32 run of the same param is paired with the same-size ONNX
  tensor, near the last match in graph order, that it agrees with within fp32 tolerance.
  Limits: a blob with no same-size counterpart (ncnn-specific reshapes or packing, fused
  patterns that produce no ONNX tensor) is left unmatched; where several same-size tensors agree
  (identity-like ops), the earliest wins -- the values compared are the same anyway; where the
  engine's own fp32 run disagrees with onnxruntime, the blob falls back to the first same-size
  tensor in order (match ``order``), which may be the wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Single-data-input ops a converter may fold into the op before them.
FUSABLE = {"BatchNormalization", "Relu", "LeakyRelu", "Clip", "HardSigmoid", "HardSwish",
           "Sigmoid", "Tanh", "PRelu", "Add", "Sub", "Mul", "Div", "Identity", "Dropout",
           "Elu", "Selu", "Softplus", "Gelu", "Mish"}


@dataclass
class OrtDump:
    path: Path
    order: list[str]  # tensor names in graph order (inputs first)
    op_of: dict[str, tuple[str, str]] = field(default_factory=dict)  # tensor -> (node, op_type)
    outputs: list[str] = field(default_factory=list)


def _load(onnx_path):
    import onnx
    return onnx.load(str(onnx_path))


def _consts(model) -> set[str]:
    consts = {i.name for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            consts.update(o for o in n.output if o)
    return consts


def fusion_candidates(onnx_path, depth: int = 4) -> dict[str, list[str]]:
    """tensor -> [tensor, then the outputs of the fusable single-consumer ops after it]."""
    model = _load(onnx_path)
    consts = _consts(model)
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            if i and i not in consts:
                consumers.setdefault(i, []).append(n)
    out: dict[str, list[str]] = {}
    for n in model.graph.node:
        if n.op_type == "Constant":
            continue
        for t in n.output:
            if not t:
                continue
            chain, cur = [t], t
            for _ in range(depth):
                cs = consumers.get(cur, [])
                if len(cs) != 1:
                    break
                c = cs[0]
                data_in = [i for i in c.input if i and i not in consts]
                if c.op_type not in FUSABLE or data_in != [cur] or len(c.output) != 1:
                    break
                cur = c.output[0]
                chain.append(cur)
            out[t] = chain
    return out


def dump_all(onnx_path, names: list[str], arrays: list[np.ndarray], out_npz: Path,
             threads: int = 1) -> OrtDump:
    """Run onnxruntime exposing every intermediate; write them (graph order) to ``out_npz``."""
    import onnx
    import onnxruntime as ort

    from harness_agent.layers import NpzWriter

    model = _load(onnx_path)
    consts = _consts(model)
    graph_outputs = [o.name for o in model.graph.output]
    have = set(graph_outputs)
    op_of: dict[str, tuple[str, str]] = {}
    order = [n for n in names]
    extra = []
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        for t in node.output:
            if not t or t in consts:
                continue
            op_of[t] = (node.name, node.op_type)
            order.append(t)
            if t not in have:
                extra.append(t)
                have.add(t)
    for t in extra:
        model.graph.output.append(onnx.ValueInfoProto(name=t))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    values = dict(zip(out_names, sess.run(out_names, dict(zip(names, arrays)))))
    values.update(zip(names, arrays))
    w = NpzWriter(str(out_npz))
    try:
        for t in order:
            if t in values:
                w.add(t, np.asarray(values[t]))
        w.close()
    except BaseException:
        w.abort()
        raise
    return OrtDump(Path(out_npz), [t for t in order if t in values], op_of, graph_outputs)
