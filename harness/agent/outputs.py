"""Output fingerprints and error metrics against a reference, computed on the device."""

from __future__ import annotations

import hashlib
import math
from typing import Dict, List, Optional

import numpy as np


def describe(arr: np.ndarray) -> Dict[str, object]:
    a = np.ascontiguousarray(arr)
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    f64 = finite.astype(np.float64, copy=False)
    return {
        "sha256": hashlib.sha256(a.tobytes()).hexdigest(),
        "shape": list(a.shape),
        "dtype": str(a.dtype),
        "nan": int(np.isnan(a).sum()) if a.dtype.kind == "f" else 0,
        "inf": int(np.isinf(a).sum()) if a.dtype.kind == "f" else 0,
        "min": float(f64.min()) if f64.size else None,
        "max": float(f64.max()) if f64.size else None,
        "mean": float(f64.mean()) if f64.size else None,
        "std": float(f64.std()) if f64.size else None,
    }


def _num(x: float) -> Optional[float]:
    return None if (x is None or math.isnan(x)) else float(x)


def compare(out: np.ndarray, ref: np.ndarray) -> Dict[str, object]:
    """Errors of ``out`` against ``ref``; a size mismatch is reported, never broadcast."""
    if out.size != ref.size:
        return {"ref_error": "size %d vs reference %d" % (out.size, ref.size)}
    o = out.reshape(-1).astype(np.float64)
    r = ref.reshape(-1).astype(np.float64)
    diff = np.abs(o - r)
    # NaN in either side makes the max error undefined; report it as infinite so that no
    # tolerance can pass it.
    max_abs = float(np.max(diff)) if diff.size else 0.0
    if math.isnan(max_abs) or (diff.size and np.isnan(diff).any()):
        max_abs = math.inf
    ref_scale = float(np.max(np.abs(r))) if r.size else 0.0
    rel = max_abs / ref_scale if ref_scale > 0 else (0.0 if max_abs == 0 else math.inf)
    with np.errstate(all="ignore"):
        no, nr = float(np.linalg.norm(o)), float(np.linalg.norm(r))
        if no == 0 and nr == 0:
            cos = 1.0
        elif no == 0 or nr == 0 or not (math.isfinite(no) and math.isfinite(nr)):
            cos = float("nan")
        else:
            cos = float(np.dot(o, r) / (no * nr))
    return {"max_abs_err": max_abs, "rel_err": rel, "cosine": _num(cos)}


def summarize(outputs: List[Dict[str, object]]) -> Dict[str, object]:
    """Row-level aggregates: worst error over outputs, NaN/Inf totals, one combined checksum."""
    h = hashlib.sha256()
    for o in outputs:
        h.update(str(o["sha256"]).encode())
    errs = [o for o in outputs if "max_abs_err" in o]
    cos = [o["cosine"] for o in errs]
    return {
        "out_sha256": h.hexdigest(),
        "out_nan": sum(int(o["nan"]) for o in outputs),
        "out_inf": sum(int(o["inf"]) for o in outputs),
        "out_max_abs_err": max((float(o["max_abs_err"]) for o in errs), default=None),
        "out_rel_err": max((float(o["rel_err"]) for o in errs), default=None),
        # A NaN cosine (zero or non-finite vectors) is the worst case, not a missing value.
        "out_cosine": (min((c if c is not None else -1.0) for c in cos) if cos else None),
        "has_reference": bool(errs) and len(errs) == len(outputs),
    }
