"""What the outputs prove about what ran: a reduced-precision row whose outputs are
bit-identical to the fp32 row of the same configuration ran in fp32, whatever the engine said.

Engines report what they were asked and, at best, what they enabled; a kernel that has no fp16
path quietly runs fp32. Identical output bytes are evidence that no reduced-precision rounding
happened anywhere in the model (fp16 storage or arithmetic changes the last bits of almost any
non-trivial output), so the row's effective precision becomes fp32 and its status fallback.
"""

from __future__ import annotations

from .status import MEASURED, Status
from .verdict import output_verdict

# What must match for two rows to be the same configuration but for precision.
_SAME = ("host", "model", "model_sha256", "input_key", "engine", "engine_version", "backend",
         "threads")


def fp32_by_output(rows: list[dict]) -> list[dict]:
    """Corrected copies of the rows of ``rows`` that claim a reduced precision although their
    outputs are bit-identical (out_sha256) to an fp32 row of the same configuration."""
    fp32 = {}
    for r in rows:
        if r.get("status") in MEASURED and r.get("precision") == "fp32" and r.get("out_sha256"):
            fp32.setdefault(tuple(r.get(k) for k in _SAME), set()).add(r["out_sha256"])
    out = []
    for r in rows:
        if (r.get("status") not in MEASURED or r.get("precision") in (None, "fp32")
                or r.get("out_sha256") not in fp32.get(tuple(r.get(k) for k in _SAME), ())):
            continue
        fixed = dict(r)
        note = (f"outputs bit-identical to the fp32 row: ran in fp32, not {r['precision']}")
        fixed["notes"] = "; ".join(filter(None, [r.get("notes"), note]))
        fixed["precision"] = "fp32"
        if r.get("precision_requested") != "fp32":
            fixed["status"] = Status.FALLBACK.value
        fixed["verdict"] = output_verdict(fixed)
        out.append(fixed)
    return out
