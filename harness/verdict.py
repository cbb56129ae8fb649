"""Correctness verdict of one row from its output metrics, with tolerances by effective
precision (``harness_agent.tolerance``, the one tolerance check)."""

from __future__ import annotations

import json

from harness_agent.tolerance import TOLERANCES, Tolerance, tolerance_for, within

from .status import MEASURED, Verdict

__all__ = ["Tolerance", "TOLERANCES", "tolerance_for", "within", "output_verdict"]


def output_verdict(row: dict) -> str:
    """'ok', 'wrong', 'nan/inf', 'no-ref', or the row's status when nothing was measured.

    'no-ref' means only that no reference exists (a native model without an ONNX source); a
    reference whose count, shape or dtype class the outputs do not match is 'wrong'."""
    if row.get("status") not in MEASURED:
        return str(row.get("status"))
    if (row.get("out_nan") or 0) + (row.get("out_inf") or 0) > 0:
        return Verdict.NAN_INF.value
    if not row.get("has_reference"):
        return Verdict.NO_REF.value
    if row.get("out_mismatch"):  # a reference exists but the outputs cannot stand for it
        return Verdict.WRONG.value
    tol = tolerance_for(row.get("precision"))
    per_output = _checked_outputs(row.get("outputs_json") or row.get("outputs"))
    if per_output:  # each output on its own: one may pass by the floor, another relatively
        ok = all(within(o, tol)[0] for o in per_output)
    else:
        ok, _ = within({"rel_err": row.get("out_rel_err"), "cosine": row.get("out_cosine"),
                        "max_abs_err": row.get("out_max_abs_err")}, tol)
    return Verdict.OK.value if ok else Verdict.WRONG.value


def _checked_outputs(outputs) -> list:
    """The outputs (a list of dicts, or its JSON) that were compared with a reference."""
    if isinstance(outputs, str):
        try:
            outputs = json.loads(outputs)
        except ValueError:
            return []
    return [o for o in outputs or [] if isinstance(o, dict) and "max_abs_err" in o]
