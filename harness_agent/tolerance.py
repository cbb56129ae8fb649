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
    similarity between output and reference; abs_err: an absolute floor, max |out - ref| at or
    below which an output matches whatever its relative figures say (None: no floor).

    The floor is for outputs whose values are all tiny: a sigmoid map that is ~0 everywhere
    (PP-OCR det on an input with no text: max 6e-5) differs from its reference by float
    rounding (1.3e-7), which is 0.2 % of its own maximum and moves the cosine to 0.99985, yet
    is no error at all on the 0..1 scale the output lives on. The relative figures alone
    called such an engine wrong."""

    __slots__ = ("rel_err", "cosine", "abs_err")

    def __init__(self, rel_err: Optional[float], cosine: float,
                 abs_err: Optional[float] = None) -> None:
        self.rel_err, self.cosine, self.abs_err = rel_err, cosine, abs_err

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Tolerance) and self.rel_err == other.rel_err
                and self.cosine == other.cosine and self.abs_err == other.abs_err)

    def __hash__(self) -> int:
        return hash((self.rel_err, self.cosine, self.abs_err))

    def __repr__(self) -> str:
        return "Tolerance(rel_err=%r, cosine=%r, abs_err=%r)" % (self.rel_err, self.cosine,
                                                                 self.abs_err)


# By effective precision. fp32 and fp16 follow the usual engine-test practice (ncnn's and MNN's
# unit tests compare fp16 paths at about 1e-2 relative); int8 is judged by cosine only because
# quantization error is not bounded element-wise. The float floor is torch.testing.
# assert_close's default absolute tolerance for float32, float16 and bfloat16 (atol 1e-5); ncnn's
# pnnx compares floats alike, an absolute difference within epsilon before the relative test
# (tools/pnnx/src/pass_level2/F_hardsigmoid.cpp, NearlyEqual).
FLOAT_ABS_FLOOR = 1e-5
TOLERANCES = {
    "fp32": Tolerance(1e-3, 0.9999, FLOAT_ABS_FLOOR),
    "fp16": Tolerance(1e-2, 0.999, FLOAT_ABS_FLOOR),
    "fp16-storage": Tolerance(1e-2, 0.999, FLOAT_ABS_FLOOR),
    "bf16": Tolerance(1e-2, 0.999, FLOAT_ABS_FLOOR),
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
    """(ok, reason) for error metrics ``{"rel_err": float, "cosine": float, "max_abs_err":
    float}`` (missing or NaN values fail) against ``tol``: a finite max_abs_err at or below
    the tolerance's absolute floor passes; otherwise cosine and rel_err must both hold. The
    reason names the first failed bound, or says "within tolerance"."""
    mx = _num(metrics.get("max_abs_err"))
    if tol.abs_err is not None and mx is not None and math.isfinite(mx) and mx <= tol.abs_err:
        return True, "within tolerance (max abs err %.3g <= %g)" % (mx, tol.abs_err)
    cos = _num(metrics.get("cosine"))
    rel = _num(metrics.get("rel_err"))
    if cos is None or cos < tol.cosine:
        return False, "cosine %s < %g" % ("-" if cos is None else "%.6g" % cos, tol.cosine)
    if tol.rel_err is not None and (rel is None or not math.isfinite(rel) or rel > tol.rel_err):
        return False, "rel err %s > %g" % ("-" if rel is None else "%.3g" % rel, tol.rel_err)
    return True, "within tolerance"
