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
        "sha256": hashlib.sha256(memoryview(a).cast("B")).hexdigest(),
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


def compare(out: np.ndarray, ref: np.ndarray) -> Dict[str, object]:
    """Errors of ``out`` against ``ref``; a size mismatch is reported, never broadcast."""
    if out.size != ref.size:
        return {"ref_error": "size %d vs reference %d" % (out.size, ref.size)}
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
