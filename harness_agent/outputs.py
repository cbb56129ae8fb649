"""Output fingerprints and error metrics against a reference, computed on the device.

Statistics are accumulated in float64 over fixed-size chunks so that checking a large output
adds a few MiB to the process, not several copies of the output (the agent's whole-process
peak RSS should be the engine's, not ours).
"""

from __future__ import annotations

import hashlib
import math
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

CHUNK = 1 << 18  # elements


def _chunks(*arrays: np.ndarray) -> Iterator[Tuple[np.ndarray, ...]]:
    flat = [a.reshape(-1) for a in arrays]
    n = flat[0].size
    for i in range(0, n, CHUNK):
        yield tuple(f[i:i + CHUNK].astype(np.float64) for f in flat)


def describe(arr: np.ndarray) -> Dict[str, object]:
    a = np.ascontiguousarray(arr)
    nan = inf = 0
    lo, hi, total, sq, count = math.inf, -math.inf, 0.0, 0.0, 0
    for (c,) in _chunks(a):
        fin = np.isfinite(c)
        nan += int(np.isnan(c).sum())
        inf += int(np.isinf(c).sum())
        c = c[fin] if not fin.all() else c
        if c.size:
            lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
            total += float(c.sum())
            sq += float(np.dot(c, c))
            count += c.size
    mean = total / count if count else None
    return {
        # an empty output (a zero in its shape) has no buffer memoryview can cast
        "sha256": hashlib.sha256(memoryview(a).cast("B") if a.size else b"").hexdigest(),
        "shape": list(a.shape),
        "dtype": str(a.dtype),
        "nan": nan,
        "inf": inf,
        "min": lo if count else None,
        "max": hi if count else None,
        "mean": mean,
        "std": math.sqrt(max(sq / count - mean * mean, 0.0)) if count else None,
    }


def _num(x: Optional[float]) -> Optional[float]:
    return None if (x is None or math.isnan(x)) else float(x)


def _shape_text(shape) -> str:
    return "x".join(str(int(d)) for d in shape) or "scalar"


def _dtype_class(dtype: np.dtype) -> str:
    return {"b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex"}.get(
        dtype.kind, dtype.kind)


def output_mismatch(out: np.ndarray, ref: np.ndarray) -> Optional[str]:
    """Why a final output cannot stand for its reference, or None: a different element count,
    shape or dtype class (bool / int / float).

    Shapes are compared without their size-1 axes: engines drop or add unit axes (ncnn has no
    batch axis; a global pooling may come back as C or Cx1x1), which move no element, while a
    difference in any other axis is a different tensor. An integer type narrowed to another
    integer type (int64 -> int32) is the same class: its values are compared; so is a bool held
    as integers 0 and 1.
    """
    if out.size != ref.size or ([d for d in out.shape if d != 1]
                                != [d for d in ref.shape if d != 1]):
        return "shape %s vs reference %s" % (_shape_text(out.shape), _shape_text(ref.shape))
    kinds = {_dtype_class(out.dtype), _dtype_class(ref.dtype)}
    if len(kinds) > 1 and not (kinds == {"bool", "int"} and _zero_one(out) and _zero_one(ref)):
        return "dtype %s vs reference %s" % (out.dtype, ref.dtype)
    return None


def _zero_one(a: np.ndarray) -> bool:
    """Whether every element is 0 or 1: an engine that holds a bool tensor as int (MNN) still
    holds a bool."""
    if a.dtype.kind == "b" or a.size == 0:
        return True
    return bool(((a == 0) | (a == 1)).all())


def compare(out: np.ndarray, ref: np.ndarray) -> Dict[str, object]:
    """Errors of ``out`` against ``ref`` (flattened, in float64); a size mismatch is reported
    as ``mismatch``, never broadcast."""
    if out.size != ref.size:
        return {"mismatch": "size %d vs reference %d" % (out.size, ref.size)}
    max_abs, ref_scale, dot, no2, nr2 = 0.0, 0.0, 0.0, 0.0, 0.0
    any_nan = False
    with np.errstate(all="ignore"):
        for o, r in _chunks(np.ascontiguousarray(out), np.ascontiguousarray(ref)):
            d = np.abs(o - r)
            if np.isnan(d).any():
                any_nan = True
            elif d.size:
                max_abs = max(max_abs, float(d.max()))
            if r.size:
                ref_scale = max(ref_scale, float(np.abs(r).max()))
            dot += float(np.dot(o, r))
            no2 += float(np.dot(o, o))
            nr2 += float(np.dot(r, r))
    # NaN in either side makes the error undefined: report it as infinite so that no tolerance
    # can pass it.
    if any_nan:
        max_abs = math.inf
    rel = max_abs / ref_scale if ref_scale > 0 else (0.0 if max_abs == 0 else math.inf)
    no, nr = math.sqrt(no2), math.sqrt(nr2)
    if no == 0 and nr == 0:
        cos = 1.0
    elif no == 0 or nr == 0 or not (math.isfinite(no) and math.isfinite(nr)):
        cos = float("nan")
    else:
        cos = dot / (no * nr)
    return {"max_abs_err": max_abs, "rel_err": rel, "cosine": _num(cos)}


def _class_axis(shape) -> Optional[int]:
    """The class axis of an output: its last axis of size > 1 (a [1, 1000, 1, 1] softmax has
    its classes on axis 1); None when there is none."""
    axes = [i for i, d in enumerate(shape) if d > 1]
    return axes[-1] if axes else None


def classifier_like(ref: np.ndarray) -> bool:
    """Whether an output reads as class scores: a float [N, C] (C >= 2), or a float output
    whose rows along its class axis (_class_axis) are probabilities (non-negative, summing to
    1 within 1e-3: a softmax)."""
    ax = _class_axis(ref.shape)
    if ref.dtype.kind != "f" or ax is None or ref.size == 0:
        return False
    if ref.ndim == 2 and ax == 1:
        return True
    rows = np.moveaxis(ref, ax, -1).reshape(-1, ref.shape[ax]).astype(np.float64)
    return bool((rows >= 0).all() and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))


def top1_agreement(out: np.ndarray, ref: np.ndarray) -> Optional[float]:
    """Fraction (0..1) of rows whose argmax along the class axis is the reference's, for a
    classifier-like reference (classifier_like); None for other outputs or other sizes."""
    if out.size != ref.size or not classifier_like(ref):
        return None
    ax = _class_axis(ref.shape)
    c = ref.shape[ax]
    r = np.moveaxis(np.asarray(ref, dtype=np.float64), ax, -1).reshape(-1, c)
    # the engine's output may have dropped or added unit axes: same element order
    o = np.moveaxis(np.asarray(out, dtype=np.float64).reshape(ref.shape), ax, -1).reshape(-1, c)
    return float(np.mean(o.argmax(axis=1) == r.argmax(axis=1)))


def check_output(arr: np.ndarray, ref: np.ndarray) -> Dict[str, object]:
    """compare() of a final output (with ``top1_agree`` for a classifier-like one), or
    ``{"mismatch": why}`` when it cannot stand for its reference (output_mismatch)."""
    why = output_mismatch(arr, ref)
    if why:
        return {"mismatch": why}
    res = compare(arr, ref)
    top1 = top1_agreement(arr, ref)
    if top1 is not None:
        res["top1_agree"] = top1
    return res


def summarize(outputs: List[Dict[str, object]], n_references: int = 0) -> Dict[str, object]:
    """Row-level aggregates: worst error over outputs, NaN/Inf totals, one combined checksum,
    whether a reference exists (``n_references`` tensors for these outputs) and, when it does
    not match (count of outputs, a shape or dtype class), why (``out_mismatch``)."""
    h = hashlib.sha256()
    for o in outputs:
        h.update(str(o["sha256"]).encode())
    errs = [o for o in outputs if "max_abs_err" in o]
    cos = [o["cosine"] for o in errs]
    why = []
    if n_references and n_references != len(outputs):
        why.append("%d output(s) vs %d in the reference" % (len(outputs), n_references))
    why += ["%s: %s" % (o.get("name"), o["mismatch"]) for o in outputs if o.get("mismatch")]
    return {
        "out_sha256": h.hexdigest(),
        "out_nan": sum(int(o["nan"]) for o in outputs),
        "out_inf": sum(int(o["inf"]) for o in outputs),
        "out_max_abs_err": max((float(o["max_abs_err"]) for o in errs), default=None),
        "out_rel_err": max((float(o["rel_err"]) for o in errs), default=None),
        # A NaN cosine (zero or non-finite vectors) is the worst case, not a missing value.
        "out_cosine": (min((c if c is not None else -1.0) for c in cos) if cos else None),
        # worst over the classifier-like outputs; None when there is none
        "out_top1_agree": min((float(o["top1_agree"]) for o in errs if "top1_agree" in o),
                              default=None),
        # a reference exists; whether it matches is out_mismatch (a mismatch is never no-ref)
        "has_reference": n_references > 0,
        "out_mismatch": "; ".join(why) or None,
    }
