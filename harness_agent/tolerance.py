"""The one tolerance check: are an output's errors against its reference within the tolerance
of the precision that ran? Used by row verdicts, compare, diagnose (layer checks and the fix
search) and the agent's own name matching, so every place answers the same way.

Standard library only, Python 3.9+ (it runs on the device too).
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple


class Tolerance(object):
    """rel_err: max |out - ref| / max |ref| allowed (None: not checked); cosine: minimum cosine
    similarity between output and reference."""

    __slots__ = ("rel_err", "cosine")

    def __init__(self, rel_err: Optional[float], cosine: float) -> None:
        self.rel_err, self.cosine = rel_err, cosine

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Tolerance) and self.rel_err == other.rel_err
                and self.cosine == other.cosine)

    def __hash__(self) -> int:
        return hash((self.rel_err, self.cosine))

    def __repr__(self) -> str:
        return "Tolerance(rel_err=%r, cosine=%r)" % (self.rel_err, self.cosine)


# By effective precision. fp32 and fp16 follow the usual engine-test practice (ncnn's and MNN's
# unit tests compare fp16 paths at about 1e-2 relative); int8 is judged by cosine only because
# quantization error is not bounded element-wise.
TOLERANCES = {
    "fp32": Tolerance(1e-3, 0.9999),
    "fp16": Tolerance(1e-2, 0.999),
    "fp16-storage": Tolerance(1e-2, 0.999),
    "bf16": Tolerance(1e-2, 0.999),
    "int8": Tolerance(None, 0.99),
    "int8-weight": Tolerance(None, 0.99),
}


def tolerance_for(precision: Optional[str]) -> Tolerance:
    """The tolerance of an effective precision; fp32's for None or an unknown one."""
    return TOLERANCES.get(precision or "fp32", TOLERANCES["fp32"])


def _num(x: object) -> Optional[float]:
    if x is None:
        return None
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def within(metrics: Dict[str, object], tol: Tolerance) -> Tuple[bool, str]:
    """(ok, reason) for error metrics ``{"rel_err": float, "cosine": float}`` (missing or NaN
    values fail) against ``tol``. The reason names the first failed bound, or says
    "within tolerance"."""
    cos = _num(metrics.get("cosine"))
    rel = _num(metrics.get("rel_err"))
    if cos is None or cos < tol.cosine:
        return False, "cosine %s < %g" % ("-" if cos is None else "%.6g" % cos, tol.cosine)
    if tol.rel_err is not None and (rel is None or not math.isfinite(rel) or rel > tol.rel_err):
        return False, "rel err %s > %g" % ("-" if rel is None else "%.3g" % rel, tol.rel_err)
    return True, "within tolerance"
