"""The topological walk over per-layer comparisons: first divergent layer and what inherits it.

Layer records come from the device (agent.layers): in execution order (ncnn: param file order,
which is topological; MNN: session execution order), each with its input tensor names, its
output tensors, and per output the statistics, the matched reference tensor and the errors.
A tensor diverges when it holds more NaN/Inf than its reference, or when its errors exceed
the tolerance of the suspect's effective precision (harness.verdict.tolerance_for).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..verdict import Tolerance, tolerance_for, within

STAT_KEYS = ("min", "max", "mean", "std", "nan", "inf")
ABS_FLOOR = 1e-6  # errors this small against an all-zero reference are not a divergence


@dataclass
class TensorCheck:
    layer_index: int
    layer: str
    layer_type: str
    tensor: str
    ref_tensor: str | None
    match: str  # name, value, best, order, size, none
    shape: list
    stats: dict
    ref_stats: dict
    max_abs_err: float | None
    rel_err: float | None
    cosine: float | None
    diverged: bool | None  # None: nothing to compare with
    reason: str


@dataclass
class LayerCheck:
    index: int
    name: str
    type: str
    inputs: list[str]
    outputs: list[TensorCheck]
    params: str = ""
    external: dict = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return any(t.diverged for t in self.outputs)

    @property
    def compared(self) -> bool:
        return any(t.diverged is not None for t in self.outputs)

    @property
    def worst(self) -> TensorCheck | None:
        bad = [t for t in self.outputs if t.diverged]
        return bad[0] if bad else (self.outputs[0] if self.outputs else None)


@dataclass
class Analysis:
    layers: list[LayerCheck]
    tolerance: Tolerance
    culprit: LayerCheck | None
    inheritors: list[LayerCheck]
    other_divergent: list[LayerCheck]
    graph_known: bool
    compared: int
    unmatched: int

    def layer(self, name: str) -> LayerCheck:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(name)

    def input_checks(self, lay: LayerCheck) -> list[tuple[str, dict, dict]]:
        """(input name, suspect stats, reference stats) for each input of ``lay``."""
        by_tensor = {t.tensor: t for x in self.layers for t in x.outputs}
        out = []
        for name in lay.inputs:
            if name in by_tensor:
                t = by_tensor[name]
                out.append((name, t.stats, t.ref_stats))
            elif name in lay.external:
                out.append((name, lay.external[name], {}))
            else:
                out.append((name, {}, {}))
        return out


def _f(x) -> float | None:
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def check_tensor(entry: dict, tol: Tolerance) -> tuple[bool | None, str]:
    if "error" in entry:
        return None, f"not read: {entry['error']}"
    if "mismatch" in entry:
        return None, f"not compared: {entry['mismatch']}"
    if not entry.get("ref_name"):
        return None, "no reference tensor"
    if entry.get("match") == "order":
        return None, "no reference tensor agrees in value (nearest same-size one shown)"
    ref = entry.get("ref") or {}
    bad = int(entry.get("nan") or 0) + int(entry.get("inf") or 0)
    ref_bad = int(ref.get("nan") or 0) + int(ref.get("inf") or 0)
    if bad > ref_bad:
        return True, (f"{entry.get('inf') or 0} inf, {entry.get('nan') or 0} NaN "
                      f"(reference: {ref.get('inf') or 0} inf, {ref.get('nan') or 0} NaN)")
    if ref_bad:
        return False, "the reference holds NaN/Inf too"
    rel, cos, mx = _f(entry.get("rel_err")), _f(entry.get("cosine")), _f(entry.get("max_abs_err"))
    ref_scale = max(abs(_f(ref.get("min")) or 0.0), abs(_f(ref.get("max")) or 0.0))
    if ref_scale == 0.0 and mx is not None and mx <= ABS_FLOOR:
        return False, "within tolerance (zero reference)"
    ok, why = within({"rel_err": rel, "cosine": cos, "max_abs_err": mx}, tol)
    return not ok, why


VALUE_MATCHED = ("name", "value", "best", "size")


def analyse(records: list[dict], precision: str | None, params: dict[str, str] | None = None,
            final_ok: bool | None = None) -> Analysis:
    """Walk the records in order; the first divergent layer is the culprit.

    Where tensors are matched to the reference by value (onnxruntime against pnnx's renamed
    blobs), a wrong tensor cannot be matched at all. So when the final outputs are wrong
    (``final_ok`` False), a layer with an unmatched output after which no downstream tensor
    matches again is divergent too ("lost"): that is where agreement ends for good.
    """
    tol = tolerance_for(precision)
    params = params or {}
    layers: list[LayerCheck] = []
    unmatched = compared = 0
    for rec in records:
        outs = []
        for key in rec.get("outputs", []):
            e = (rec.get("tensors") or {}).get(key, {"error": "missing"})
            div, why = check_tensor(e, tol)
            if div is None:
                unmatched += 1
            else:
                compared += 1
            outs.append(TensorCheck(
                int(rec["index"]), rec["name"], rec["type"], key, e.get("ref_name"),
                e.get("match", "none"), list(e.get("shape") or []),
                {k: e.get(k) for k in STAT_KEYS},
                {k: (e.get("ref") or {}).get(k) for k in STAT_KEYS},
                _f(e.get("max_abs_err")), _f(e.get("rel_err")), _f(e.get("cosine")), div, why))
        layers.append(LayerCheck(int(rec["index"]), rec["name"], rec["type"],
                                 list(rec.get("inputs") or []), outs,
                                 params.get(rec["name"], ""), dict(rec.get("external") or {})))
    producer = {t.tensor: lay.name for lay in layers for t in lay.outputs}
    graph_known = any(i in producer for lay in layers for i in lay.inputs)
    if final_ok is False:
        _mark_lost(layers, producer, graph_known)
    culprit = next((lay for lay in layers if lay.diverged), None)
    inheritors: list[LayerCheck] = []
    others: list[LayerCheck] = []
    if culprit is not None:
        later = [lay for lay in layers if lay.index > culprit.index]
        if graph_known:
            tainted = {culprit.name}
            down = set()
            for lay in later:
                if any(producer.get(i) in tainted for i in lay.inputs):
                    tainted.add(lay.name)
                    down.add(lay.name)
        else:
            down = {lay.name for lay in later}
        for lay in later:
            if lay.diverged:
                (inheritors if lay.name in down else others).append(lay)
    return Analysis(layers, tol, culprit, inheritors, others, graph_known, compared, unmatched)


def _mark_lost(layers: list[LayerCheck], producer: dict[str, str], graph_known: bool) -> None:
    """Mark the first layer whose unmatched output is never followed by a matched tensor."""
    consumers: dict[str, list[int]] = {}
    for i, lay in enumerate(layers):
        for t in lay.inputs:
            if t in producer:
                consumers.setdefault(producer[t], []).append(i)
    matched = [any(t.match in VALUE_MATCHED and t.diverged is not None for t in lay.outputs)
               for lay in layers]
    # recovers[i]: some layer strictly downstream of i has a value-matched tensor
    recovers = [False] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        if graph_known:
            nxt = consumers.get(layers[i].name, [])
        else:
            nxt = list(range(i + 1, len(layers)))
        recovers[i] = any(matched[j] or recovers[j] for j in nxt)
    for i, lay in enumerate(layers):
        if lay.diverged:
            return  # a compared divergence comes first
        unmatched = [t for t in lay.outputs if t.diverged is None and t.match in ("none", "order")]
        if unmatched and not recovers[i] and lay.type not in ("Input",):
            for t in unmatched:
                t.diverged = True
                t.reason = ("lost: no reference tensor agrees with this output, nor with "
                            "anything computed from it, and the final outputs are wrong")
            return
