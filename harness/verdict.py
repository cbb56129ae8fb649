"""Correctness verdicts from output metrics, with tolerances by effective precision."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    rel_err: float | None  # max abs error / max |reference|
    cosine: float


TOLERANCES = {
    "fp32": Tolerance(1e-3, 0.9999),
    "fp16": Tolerance(1e-2, 0.999),
    "fp16-storage": Tolerance(1e-2, 0.999),
    "bf16": Tolerance(1e-2, 0.999),
    "int8": Tolerance(None, 0.99),
}
MEASURED = ("ok", "fallback")


def tolerance_for(precision: str | None) -> Tolerance:
    return TOLERANCES.get(precision or "fp32", TOLERANCES["fp32"])


def output_verdict(row: dict) -> str:
    """'ok', 'wrong', 'nan/inf', 'no-ref', or the row's status when nothing was measured."""
    if row.get("status") not in MEASURED:
        return str(row.get("status"))
    if (row.get("out_nan") or 0) + (row.get("out_inf") or 0) > 0:
        return "nan/inf"
    if not row.get("has_reference"):
        return "no-ref"
    tol = tolerance_for(row.get("precision"))
    cos = row.get("out_cosine")
    rel = row.get("out_rel_err")
    if cos is None or cos < tol.cosine:
        return "wrong"
    if tol.rel_err is not None and (rel is None or rel > tol.rel_err):
        return "wrong"
    return "ok"
