"""Model inputs: their names in an ONNX graph, deterministic input data and onnxruntime
reference outputs, cached beside the converted models."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cache import cache_root, sha256_file, sha256_text
from ..config.suite import InputSpec
from ..errors import InputError
from ..store.atomic import atomic_write_bytes
from .shapes import format_shapes


@dataclass(frozen=True)
class InputSet:
    """The inputs of one model at fixed shapes, as .npy files, with their references."""
    key: str  # stable id of (model source, inputs)
    shape_text: str  # "x:1x3x640x640", see shapes.format_shapes
    names: tuple[str, ...]  # model input names, in the model's order
    shapes: tuple[tuple[int, ...], ...]
    inputs: tuple[Path, ...]
    references: tuple[Path, ...]  # empty when there is no ONNX source
    output_names: tuple[str, ...] = ()


def onnx_io_names(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(input names, output names) of an ONNX graph; weights listed as inputs are left out."""
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    ins = tuple(i.name for i in m.graph.input if i.name not in inits)
    return ins, tuple(o.name for o in m.graph.output)


def make_input(spec: InputSpec) -> np.ndarray:
    """Input data of one input: its .npy file, else seeded normal floats or small integers."""
    if spec.npy is not None:
        arr = np.load(spec.npy)
        if tuple(arr.shape) != tuple(spec.shape):
            raise InputError(str(spec.npy), f"input shape {arr.shape}", f"shape {spec.shape}")
        return arr.astype(spec.dtype, copy=False)
    rng = np.random.default_rng(spec.seed)
    if spec.dtype.startswith("float"):
        return rng.standard_normal(spec.shape).astype(spec.dtype)
    return rng.integers(0, 10, size=spec.shape).astype(spec.dtype)


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def prepare_inputs(model_name: str, onnx_path: Path | None, specs: tuple[InputSpec, ...],
                   source_sha: str) -> InputSet:
    """Write the inputs (and, with an ONNX source, fp32 1-thread onnxruntime references).

    Raises InputError when the number of inputs or their shapes do not fit the model."""
    key = sha256_text(source_sha, *(s.key() for s in specs),
                      *(sha256_file(s.npy) for s in specs if s.npy))[:24]
    d = cache_root() / "data" / key
    meta_path = d / "meta.json"
    names = [s.name or f"in{i}" for i, s in enumerate(specs)]
    if onnx_path is not None:
        onnx_ins, onnx_outs = onnx_io_names(onnx_path)
        if len(onnx_ins) != len(specs):
            raise InputError(model_name, f"{len(specs)} input(s) given, the model has "
                             f"{len(onnx_ins)}", ", ".join(onnx_ins))
        names = [s.name or n for s, n in zip(specs, onnx_ins)]
    if not meta_path.exists():
        arrays = [make_input(s) for s in specs]
        refs = []
        if onnx_path is not None:
            refs = _reference(model_name, onnx_path, names, arrays)
        for i, a in enumerate(arrays):
            atomic_write_bytes(d / f"in{i}.npy", _npy_bytes(a))
        for j, r in enumerate(refs):
            atomic_write_bytes(d / f"ref{j}.npy", _npy_bytes(r))
        meta = {"names": names, "shapes": [list(s.shape) for s in specs], "n_refs": len(refs),
                "reference": "onnxruntime fp32 1 thread" if refs else None}
        atomic_write_bytes(meta_path, json.dumps(meta).encode())
    meta = json.loads(meta_path.read_text())
    outs = ()
    if onnx_path is not None:
        outs = onnx_outs
    return InputSet(
        key=key, shape_text=format_shapes(zip(names, [s.shape for s in specs])),
        names=tuple(names),
        shapes=tuple(tuple(s.shape) for s in specs),
        inputs=tuple(d / f"in{i}.npy" for i in range(len(specs))),
        references=tuple(d / f"ref{j}.npy" for j in range(meta["n_refs"])),
        output_names=tuple(outs))


def _reference(model_name: str, onnx_path: Path, names, arrays) -> list[np.ndarray]:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    try:
        return [np.asarray(o) for o in sess.run(None, dict(zip(names, arrays)))]
    except Exception as e:  # onnxruntime reports shape mismatches as generic exceptions
        msg = str(e).strip().splitlines()[0][:300]
        raise InputError(model_name, f"the input does not fit the model: {msg}",
                         "input shapes the model accepts") from None
