"""ONNX element types: a readable name and the storage width in bits."""

from __future__ import annotations

import math

# TensorProto.DataType numbers are part of the ONNX spec, so a table needs no onnx import and
# also covers sub-byte types whose numpy stand-ins report a misleading 1-byte itemsize.
_TYPES: dict[int, tuple[str, int]] = {
    1: ("float32", 32), 2: ("uint8", 8), 3: ("int8", 8), 4: ("uint16", 16), 5: ("int16", 16),
    6: ("int32", 32), 7: ("int64", 64), 8: ("string", 0), 9: ("bool", 8), 10: ("float16", 16),
    11: ("float64", 64), 12: ("uint32", 32), 13: ("uint64", 64), 14: ("complex64", 64),
    15: ("complex128", 128), 16: ("bfloat16", 16), 17: ("float8e4m3fn", 8),
    18: ("float8e4m3fnuz", 8), 19: ("float8e5m2", 8), 20: ("float8e5m2fnuz", 8),
    21: ("uint4", 4), 22: ("int4", 4), 23: ("float4e2m1", 4),
}

FLOAT_TYPES = frozenset({1, 10, 11, 16, 17, 18, 19, 20, 23})

_BY_NUMPY_NAME = {name: code for code, (name, _) in _TYPES.items()}


def dtype_name(elem_type: int) -> str:
    return _TYPES.get(elem_type, (f"type{elem_type}", 0))[0]


def nbytes(elem_type: int, numel: int) -> int:
    """Bytes to store `numel` elements; 0 for types without a fixed width (string)."""
    bits = _TYPES.get(elem_type, ("", 0))[1]
    return math.ceil(numel * bits / 8)


def elem_type_from_numpy(name: str) -> int | None:
    return _BY_NUMPY_NAME.get(name)


def is_float(elem_type: int) -> bool:
    return elem_type in FLOAT_TYPES
