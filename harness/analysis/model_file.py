"""Reading an ONNX file's structure without its large tensor payloads.

Static analysis needs every tensor's dtype and dims, but the values of only a few small ones
(Reshape targets, Resize scales, ...). `onnx.load` holds the file's bytes and the parsed
model at once (twice the file), and every copy made for shape inference adds a file's worth,
so a 550 MB model once cost 3.3 GB. Here the protobuf wire format is walked straight from the
file instead: the model's graph, its nodes, their attributes and the initializers are
descended into, every other field is copied, and a tensor payload field (raw_data,
float_data, ...) of at least STRIP_BYTES is skipped with a seek when the tensor holds
weights (float, or 8/4-bit integers as quantized weights are). Wider integers and booleans
are always kept: they are indices, masks and shapes, whose values can decide shapes, and a
zero stand-in could divide by zero. A message smaller than STRIP_BYTES cannot hold a payload
worth stripping, so it is copied whole without being walked.

The result is a valid ModelProto whose large tensors keep their name, dtype and dims but
carry no values ("stripped"); `with_values_as_inputs` turns those into graph inputs for the
steps that run the model (shape inference, the onnxruntime shape probe), which then see them
as inputs of known shape. Tensors in external data files are stripped the same way when
large; small ones are read from their file. Bodies of If/Loop/Scan are copied as they are.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import onnx
import onnx.external_data_helper  # noqa: F401
import onnx.helper  # noqa: F401

from .dtypes import FLOAT_TYPES, nbytes

STRIP_BYTES = 64 * 1024  # shape-like constants are far smaller; weights far larger

# Wire field numbers (onnx.proto3), per message kind: which length-delimited fields to walk.
_WALK = {
    "model": {7: "graph"},  # ModelProto.graph
    "graph": {1: "node", 5: "tensor"},  # GraphProto.node, .initializer
    "node": {5: "attribute"},  # NodeProto.attribute
    "attribute": {5: "tensor"},  # AttributeProto.t
    "tensor": {},
}
# TensorProto fields holding values: float_data, int32_data, string_data, int64_data,
# raw_data, double_data, uint64_data.
_PAYLOAD = frozenset({4, 5, 6, 7, 9, 10, 11})
_TENSOR_NAME, _NODE_OUTPUT, _TENSOR_DATA_TYPE = 8, 2, 2
# Element types whose values may be left out: floats, and int8/uint8/int4/uint4 weights.
_WEIGHT_TYPES = FLOAT_TYPES | {2, 3, 21, 22}


class Malformed(ValueError):
    """The bytes are not a protobuf message of the expected shape."""


@dataclass
class ModelStructure:
    model: Any  # onnx.ModelProto; stripped tensors have dims and dtype but no values
    sha256: str
    stripped: frozenset[str]  # names of constants (initializers, Constant outputs) without values


def _read_varint(f: BinaryIO) -> int:
    shift = value = 0
    while True:
        b = f.read(1)
        if not b:
            raise Malformed("truncated varint")
        value |= (b[0] & 0x7F) << shift
        if b[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise Malformed("varint longer than 10 bytes")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _walk(f: BinaryIO, end: int, kind: str) -> tuple[bytes, bool, list[str]]:
    """Copy the message from f's position to `end`: (bytes, whether a payload was stripped,
    names: a tensor's name, a node's outputs (a Constant's carry its tensor), or for a graph
    and the model the names of the stripped constants)."""
    out = bytearray()
    stripped = False
    names: list[str] = []
    walk = _WALK[kind]
    data_type = 0  # a tensor's element type; serializers write it before the payload
    while f.tell() < end:
        key = _read_varint(f)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise Malformed("field number 0")
        if wire == 2:
            size = _read_varint(f)
            start = f.tell()
            if start + size > end:
                raise Malformed("field runs past its message")
            if (kind == "tensor" and field in _PAYLOAD and size >= STRIP_BYTES
                    and data_type in _WEIGHT_TYPES):
                f.seek(size, io.SEEK_CUR)
                stripped = True
                continue
            child = walk.get(field)
            if child is not None and size >= STRIP_BYTES:
                data, child_stripped, child_names = _walk(f, start + size, child)
                if child_stripped:
                    stripped = True
                    if kind in ("model", "graph"):
                        names.extend(child_names)
            else:
                data = f.read(size)
                if len(data) != size:
                    raise Malformed("truncated field")
                if (kind, field) in (("tensor", _TENSOR_NAME), ("node", _NODE_OUTPUT)):
                    names.append(data.decode("utf-8", "replace"))
            out += _varint(key) + _varint(len(data)) + data
        elif wire == 0:
            value = _read_varint(f)
            if kind == "tensor" and field == _TENSOR_DATA_TYPE:
                data_type = value
            out += _varint(key) + _varint(value)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            data = f.read(width)
            if len(data) != width:
                raise Malformed("truncated fixed-width field")
            out += _varint(key) + data
        else:
            raise Malformed(f"unsupported wire type {wire}")
    if f.tell() != end:
        raise Malformed("message ends inside a field")
    return bytes(out), stripped, names


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks (the file is never held in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def load_structure(path: str | Path) -> ModelStructure:
    """The model at `path` with tensor payloads of at least STRIP_BYTES left out.

    Raises Malformed (a ValueError) when the file is not a protobuf ModelProto, and
    onnx/protobuf errors when the kept bytes do not parse; memory stays near the kept size.
    """
    p = Path(path)
    with open(p, "rb", buffering=1 << 16) as f:
        size = f.seek(0, io.SEEK_END)
        f.seek(0)
        data, _, names = _walk(f, size, "model")
    model = onnx.ModelProto()
    model.ParseFromString(data)
    g = model.graph
    # Only constants are promoted later; a stripped tensor attribute of another op stays as is.
    constants = {t.name for t in g.initializer}
    constants |= {n.output[0] for n in g.node if n.op_type == "Constant" and n.output}
    stripped = set(names) & constants
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        if (tensor.data_type in _WEIGHT_TYPES
                and nbytes(tensor.data_type, _numel(tensor.dims)) >= STRIP_BYTES):
            stripped.add(tensor.name)
        else:
            onnx.external_data_helper.load_external_data_for_tensor(tensor, str(p.parent))
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]
    return ModelStructure(model, file_sha256(p), frozenset(stripped))


def load_complete(path: str | Path) -> Any:
    """The whole model with every value, external data included (as much memory as the file
    and more); for the rare step that cannot do without the weights."""
    return onnx.load(str(path))


def _numel(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _keep_only(field: Any, kept: list, proto: type) -> None:
    """Reduce the repeated protobuf ``field`` to ``kept`` (a subset of its items, in order).
    The items are copied first: clearing the field would otherwise invalidate them."""
    if len(kept) == len(field):
        return
    copies = [proto() for _ in kept]
    for dst, src in zip(copies, kept):
        dst.CopyFrom(src)
    del field[:]
    field.extend(copies)


def with_values_as_inputs(model: Any, names: frozenset[str] | set[str]) -> Any:
    """A copy of `model` in which the named constants (initializers or Constant-node outputs
    whose values were stripped) are graph inputs of their dtype and dims instead."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    if not names:
        return probe
    g = probe.graph
    declared = {v.name for v in g.input}
    promoted: list[tuple[str, int, list[int]]] = []
    kept = []
    for tensor in g.initializer:
        if tensor.name in names:
            promoted.append((tensor.name, tensor.data_type, list(tensor.dims)))
        else:
            kept.append(tensor)
    _keep_only(g.initializer, kept, onnx.TensorProto)
    nodes = []
    for node in g.node:
        if node.op_type == "Constant" and node.output and node.output[0] in names:
            t = next((a.t for a in node.attribute if a.name == "value"), None)
            if t is not None:
                promoted.append((node.output[0], t.data_type, list(t.dims)))
                continue
        nodes.append(node)
    _keep_only(g.node, nodes, onnx.NodeProto)
    g.input.extend(onnx.helper.make_tensor_value_info(name, elem, dims)
                   for name, elem, dims in promoted if name not in declared)
    return probe
