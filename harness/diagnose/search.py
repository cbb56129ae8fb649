"""The verified feature-mask search for ncnn: a mask is suggested only after it worked.

For the culprit layer, masks are tried in order of cost (what they take away from the layer):
1 (no fp16 arithmetic), 2 (no fp16 storage), 3 (both), 16 (no Vulkan for that layer), 18 (no
Vulkan, no fp16 storage). Each try patches a copy of the param file (``31=MASK`` on that
layer's line, OR-ed into an existing 31=) and re-runs the WHOLE model in a fresh process on the
device; the first mask whose final outputs match the reference within the precision's
tolerance, with no NaN/Inf the reference lacks, is kept. A try that crashes the process (some
masks make ncnn's Vulkan shader compilation fail and the process segfaults) or gives wrong
outputs is recorded as such.

When no mask on the culprit alone works (a later layer re-overflows the value the culprit now
computes correctly, for instance), the same masks are tried on the culprit and every layer that
inherits its error together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..executors.base import crash_signal
from ..status import MEASURED
from ..verdict import Tolerance, within
from .ncnn_param import describe_mask

MASKS = (1, 2, 3, 16, 18)


@dataclass
class Attempt:
    mask: int
    layers: list[str]
    status: str  # ok, wrong, nan/inf, crash, error, timeout, unsupported
    detail: str = ""
    rel_err: float | None = None
    cosine: float | None = None
    max_abs_err: float | None = None
    latency_ms: float | None = None
    patched_lines: dict[str, str] = field(default_factory=dict)
    param_path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def line(self) -> str:
        where = ",".join(self.layers)
        m = f"31={self.mask} ({describe_mask(self.mask)}) on {where}"
        if self.status == "ok":
            return f"{m}: verified (rel err {self.rel_err:.3g}, cosine {self.cosine:.6f})"
        return f"{m}: {self.status}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class FixResult:
    verified: bool
    attempts: list[Attempt]
    chosen: Attempt | None = None
    note: str = ""

    @property
    def mask(self) -> int | None:
        return self.chosen.mask if self.chosen else None


def classify(res: dict, tol: Tolerance) -> tuple[str, str, dict]:
    """(status, detail, worst metrics) of an 'outputs' run against the reference outputs."""
    st = res.get("status")
    if st not in MEASURED:
        err = str(res.get("error") or "")
        if st == "error" and ("without a result" in err or "exited -" in err):
            return "crash", _short(err), {}
        return str(st), _short(err), {}
    outs = res.get("outputs") or []
    bad = sum(int(o.get("nan") or 0) + int(o.get("inf") or 0) for o in outs)
    worst = {"rel_err": res.get("out_rel_err"), "cosine": res.get("out_cosine"),
             "max_abs_err": res.get("out_max_abs_err")}
    if bad:
        return "nan/inf", f"{bad} NaN/Inf in the outputs", worst
    if not outs or not all("rel_err" in o for o in outs):
        return "error", "no reference for the outputs", worst
    for o in outs:
        cos, rel = o.get("cosine"), o.get("rel_err")
        if not within(o, tol)[0]:
            rel_t = "-" if rel is None else f"{rel:.3g}"
            cos_t = "-" if cos is None else f"{cos:.6g}"
            return "wrong", f"output {o.get('name')}: rel err {rel_t}, cosine {cos_t}", worst
    return "ok", "", worst


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    # the useful part of a crash is how the process ended (the executor names the signal), not
    # the shader compiler's stderr
    crash = crash_signal(text)
    if crash:
        return f"process died with {crash[0]}"
    m = re.search(r"exited (-?\d+) without a result", text)
    if m:
        return f"process ended without a result (exit status {m.group(1)})"
    return text[:n]


def search(try_masks: Callable[[dict[str, int]], Attempt], culprit: str,
           inheritors: list[str] = (), masks: tuple[int, ...] = MASKS) -> FixResult:
    attempts: list[Attempt] = []
    stages = [[culprit]]
    if inheritors:
        stages.append([culprit] + [n for n in inheritors if n != culprit])
    for layers in stages:
        for mask in masks:
            a = try_masks({name: mask for name in layers})
            attempts.append(a)
            if a.ok:
                note = "" if len(layers) == 1 else (
                    "no mask on the culprit alone gave correct outputs; the mask is needed on "
                    "the culprit and the layers that inherit its error")
                return FixResult(True, attempts, a, note)
    return FixResult(False, attempts, None,
                     "no feature mask gave outputs that match the reference; none is suggested")
