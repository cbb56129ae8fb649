"""pnnx's own FLOPS / memory-OPS figures for an ONNX model, as an outside reference.

What pnnx counts (tools/pnnx/src/model_stat.cpp, pnnx 20261020; counted on its graph after
its own fusion passes, and printed with 3 decimals, so ~0.05 % rounding):
* Conv/ConvTranspose/Linear/matmul: 2 x MACs, plus 1 per output element when a bias
  exists. We fold the bias into 2 x MACs (2K per output = K mul + (K-1) add + 1 bias add),
  so pnnx is higher by one FLOP per output of every biased layer (det: +16.3 M).
* Activations are weighted per element: ReLU 1, HardSigmoid 3, HardSwish 4, Sigmoid 6,
  Softmax 5; BatchNorm 4 (2 + 2 affine), LayerNorm 9; elementwise arithmetic 1; nearest
  Upsample 0, bilinear 11. We count 1 per element for all of these and for Resize.
* "memory OPS" is elements (not bytes) read + written per op: inputs, outputs and weights.
On PP-OCRv4 det at 1x3x640x640 (measured): pnnx FLOPS = 4.764G; ours = 4.753G (-0.2 %).
Ours = 2 x MACs 4.604G + 0.149G elementwise/pool/resize at 1 per element; pnnx's conv part
is 4.604G + 0.016G bias = 4.620G, leaving ~0.144G for its weighted activations (HardSigmoid
x3, BN x4, ...) minus what it does not count (nearest Resize). The MAC part is 97 % of
either figure, so totals agree within 5 % whenever a model is conv/matmul dominated; on
elementwise-heavy models compare 2 x MACs (+ bias_flops) with pnnx instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..models.converters import ConvertError, pnnx_binary
from .errors import AnalysisError

_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_LINE = re.compile(r"^(FLOPS|memory OPS)\s*=\s*([0-9.]+)\s*([KMGTP]?)\s*$", re.MULTILINE)


def parse_pnnx_output(text: str) -> tuple[float, float]:
    """(FLOPS, memory OPS) from pnnx's log, with K/M/G/T/P expanded."""
    found = {key: float(num) * _UNITS[unit] for key, num, unit in _LINE.findall(text)}
    if "FLOPS" not in found or "memory OPS" not in found:
        tail = " | ".join(text.strip().splitlines()[-3:])
        raise AnalysisError("pnnx output", f"has no FLOPS/memory OPS lines (last lines: {tail})",
                            "'FLOPS = 4.764G' and 'memory OPS = 180.094M'")
    return found["FLOPS"], found["memory OPS"]


def pnnx_reference_flops(onnx_path: str | Path, shape: Sequence[int] | Sequence[Sequence[int]],
                         timeout_s: float = 300) -> tuple[float, float]:
    """Run pnnx on a copy of the model in a temp dir and return (FLOPS, memory OPS).

    `shape` is one shape, or one per input in model input order. pnnx also writes
    converted models; they go away with the temp dir.
    """
    src = Path(onnx_path)
    if not src.is_file():
        raise AnalysisError(str(src), "no such file", "an .onnx model")
    nested = bool(shape) and hasattr(shape[0], "__len__")
    shapes: list[Sequence[int]] = list(shape) if nested else [shape]  # type: ignore[list-item]
    arg = "inputshape=" + ",".join("[" + ",".join(str(int(d)) for d in s) + "]" for s in shapes)
    try:
        exe = pnnx_binary()
    except ConvertError as exc:
        raise AnalysisError("pnnx", str(exc), "pip package pnnx") from None
    with tempfile.TemporaryDirectory(prefix="pnnx-ref-") as tmp:
        model = Path(tmp) / "model.onnx"
        shutil.copyfile(src, model)
        try:
            proc = subprocess.run([str(exe), model.name, arg], cwd=tmp, capture_output=True, text=True,
                                  timeout=timeout_s, errors="replace")
        except subprocess.TimeoutExpired as exc:
            raise AnalysisError(f"pnnx on {src}", f"did not finish in {timeout_s:.0f} s", "a faster run") from exc
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            raise AnalysisError(f"pnnx on {src}", f"exited with {proc.returncode}: {tail}", "exit code 0")
        return parse_pnnx_output(proc.stdout + "\n" + proc.stderr)
