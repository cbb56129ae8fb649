"""Per-layer profiles kept: FLOPs of each engine layer from the static ONNX analysis, the
per-layer-type summary, the stored `_profiles` rows, and the comparison of two profiles.

FLOPs come from harness.analysis (analyze_onnx: FLOPs per ONNX node, 1 MAC = 2 FLOPs) and are
attributed to engine layers the way the adapter declares ONNX_NAME_MATCH:
- "fused-ops" (MNN): an op is named after the output tensor (or the name) of the first ONNX
  node it came from;
- "by-value" (ncnn: pnnx renames every blob): each blob is paired with the ONNX tensor it
  agrees with in value, from a CPU fp32 compare run against onnxruntime (as diagnose does).
Either way a converter fuses element-wise successors (a BatchNormalization, a Relu) into the
op before them, so an ONNX node whose output no layer matched is attributed along its fusion
chain (diagnose.onnx_ref.fusion_candidates): to the layer that owns the chain's head (MNN: the
Conv op absorbs its Relu) or, failing that, the first owned tensor after it (ncnn: the
Convolution blob matched the Relu's output, so the Conv node is its too). Nodes attributed to
no layer are counted in the total row's `model_flops` but in no layer.

Achieved GFLOP/s = FLOPs / time: FLOPs / (ms x 1e6).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

from ..errors import InputError

_REPEAT = re.compile(r"#\d+$")
_RASTER = re.compile(r"(_raster_\d+)+$")  # as harness_agent.layers names MNN's made-up ops
LEVELS = ("layer", "type", "total")


# -- FLOPs attribution ----------------------------------------------------------------------------
def attribute(nodes: list[tuple[list[str], int]], chains: dict[str, list[str]],
              direct: dict[str, int]) -> tuple[dict[int, list[int]], int]:
    """Engine layer -> ONNX node indices, and how many FLOPs no layer took.

    `nodes`: per ONNX node in graph order, (its output tensors, its FLOPs); `chains`: tensor ->
    [tensor, outputs of the fusable single-consumer ops after it]; `direct`: ONNX tensor ->
    engine layer index for the tensors the engine's layers matched."""
    owner = dict(direct)
    for t, layer in direct.items():  # fused successors go to the op that absorbed them
        for s in chains.get(t, [t])[1:]:
            if s in direct:
                break
            owner.setdefault(s, layer)
    for t, chain in chains.items():  # a producer fused into a later, matched tensor
        if t in owner:
            continue
        for s in chain[1:]:
            if s in owner:
                owner[t] = owner[s]
                break
    out: dict[int, list[int]] = {}
    lost = 0
    for i, (outs, flops) in enumerate(nodes):
        layer = next((owner[o] for o in outs if o in owner), None)
        if layer is None:
            lost += flops
        else:
            out.setdefault(layer, []).append(i)
    return out, lost


def direct_by_name(layers: list[dict], tensors: dict[str, int],
                   node_names: dict[str, str]) -> dict[str, int]:
    """fused-ops: ONNX tensor -> layer index for layers named after an ONNX output tensor or
    node (`tensors`: ONNX tensor names -> node index; `node_names`: node name -> its first
    output), else a compute op named BASE_raster_N after tensor BASE. A repeated op name
    (name#2) is another op of the converter's: not matched."""
    direct: dict[str, int] = {}
    for i, lay in enumerate(layers):
        name = str(lay.get("name"))
        if _REPEAT.search(name):
            continue
        t = name if name in tensors else node_names.get(name)
        if t is not None:
            direct.setdefault(t, i)
    # MNN splits some ONNX ops into layout copies and a compute op, all named BASE_raster_N:
    # the first one that is not a layout copy (type Raster) computes BASE
    for i, lay in enumerate(layers):
        base = _RASTER.sub("", str(lay.get("name")))
        if base != lay.get("name") and lay.get("type") != "Raster" and base in tensors:
            direct.setdefault(base, i)
    return direct


def direct_by_value(layers: list[dict], walked: list[dict]) -> dict[str, int]:
    """by-value: ONNX tensor -> layer index from a compare walk against onnxruntime (`walked`:
    the agent's layer records, each blob with the `ref_name` it agreed with in value or by
    name; a blob matched only by order agreed with nothing and is left out)."""
    index = {str(lay.get("name")): i for i, lay in enumerate(layers)}
    direct: dict[str, int] = {}
    for rec in walked:
        i = index.get(str(rec.get("name")))
        if i is None:
            continue
        for t in (rec.get("tensors") or {}).values():
            if isinstance(t, dict) and t.get("ref_name") and t.get("match") in ("value", "name"):
                direct.setdefault(str(t["ref_name"]), i)
    return direct


def add_flops(layers: list[dict], stats_layers, chains: dict[str, list[str]],
              direct: dict[str, int]) -> int:
    """Set each layer's `flops` (None when no ONNX node is its) and `onnx_nodes` (node names)
    from the analysis layers (harness.analysis LayerStats); returns the unattributed FLOPs."""
    nodes = [(list(s.outputs), int(s.flops)) for s in stats_layers]
    owned, lost = attribute(nodes, chains, direct)
    for i, lay in enumerate(layers):
        idx = owned.get(i, [])
        lay["flops"] = sum(nodes[n][1] for n in idx) if idx else None
        lay["onnx_nodes"] = [stats_layers[n].name or stats_layers[n].outputs[0] for n in idx]
    return lost


# -- summaries ------------------------------------------------------------------------------------
def gflops(flops, ms) -> float | None:
    """Achieved GFLOP/s of `flops` in `ms` milliseconds (None when either is missing or 0)."""
    if flops is None or not ms:
        return None
    return float(flops) / (float(ms) * 1e6)


def by_type(layers: list[dict]) -> list[dict]:
    """Per layer type (first-seen order, then by time): count, ms, time share, FLOPs,
    GFLOP/s. FLOPs are the sum over the type's layers that have any (None when none has)."""
    total = sum(lay.get("ms") or 0.0 for lay in layers)
    groups: OrderedDict[str, dict] = OrderedDict()
    for lay in layers:
        g = groups.setdefault(str(lay.get("type")), {"type": str(lay.get("type")), "count": 0,
                                                     "ms": 0.0, "flops": None})
        g["count"] += 1
        g["ms"] += lay.get("ms") or 0.0
        if lay.get("flops") is not None:
            g["flops"] = (g["flops"] or 0) + int(lay["flops"])
    out = list(groups.values())
    for g in out:
        g["time_share"] = g["ms"] / total if total else None
        g["gflops_per_s"] = gflops(g["flops"], g["ms"])
    return sorted(out, key=lambda g: -g["ms"])


def profile_rows(p) -> list[dict]:
    """The `_profiles` rows of a Profile: one per layer, one per layer type, one total."""
    meta = {
        "profile_id": p.profile_id, "created_at": p.created_at, "host": p.host,
        "model": p.model, "model_sha256": p.model_sha256, "artifact_sha256": p.artifact_sha256,
        "input_shape": p.input_shape, "engine": p.engine, "engine_version": p.engine_version,
        "backend_requested": p.config.backend, "backend": p.ran_as[0],
        "precision_requested": p.config.precision, "precision": p.ran_as[1],
        "threads": p.config.threads, "iterations": p.iterations, "timing": p.timing,
        "note": p.note or None, "flops_source": p.flops_source}
    total = p.total_ms
    rows = []
    for lay in p.layers:
        ms = lay.get("ms")
        rows.append({**meta, "level": "layer", "layer_index": lay.get("index"),
                     "layer_name": str(lay.get("name")), "layer_type": str(lay.get("type")),
                     "onnx_nodes": ",".join(lay.get("onnx_nodes") or []) or None, "count": 1,
                     "ms": ms, "time_share": (ms / total) if ms is not None and total else None,
                     "flops": lay.get("flops"), "gflops_per_s": gflops(lay.get("flops"), ms)})
    for g in by_type(p.layers):
        rows.append({**meta, "level": "type", "layer_type": g["type"], "count": g["count"],
                     "ms": g["ms"], "time_share": g["time_share"], "flops": g["flops"],
                     "gflops_per_s": g["gflops_per_s"]})
    flops = [lay["flops"] for lay in p.layers if lay.get("flops") is not None]
    flops_sum = sum(flops) if flops else None
    rows.append({**meta, "level": "total", "count": len(p.layers), "ms": total,
                 "time_share": 1.0 if total else None, "flops": flops_sum,
                 "model_flops": p.model_flops, "gflops_per_s": gflops(flops_sum, total)})
    return rows


def profile_json(p, path: Path | None = None) -> dict:
    """A Profile as JSON-able data: its configuration, layers, types and total."""
    rows = profile_rows(p)
    keep = ("layer_index", "layer_name", "layer_type", "onnx_nodes", "ms", "time_share",
            "flops", "gflops_per_s")
    meta = {k: v for k, v in rows[-1].items() if k not in keep + ("level", "count", "ms",
                                                                   "time_share", "flops",
                                                                   "model_flops",
                                                                   "gflops_per_s")}
    total = rows[-1]
    return {**meta, "file": str(path) if path else None,
            "total": {k: total.get(k) for k in ("count", "ms", "flops", "model_flops",
                                                "gflops_per_s")},
            "types": [{k: r.get(k) for k in ("layer_type", "count", "ms", "time_share",
                                             "flops", "gflops_per_s")}
                      for r in rows if r["level"] == "type"],
            "layers": [{k: r.get(k) for k in keep} for r in rows if r["level"] == "layer"]}


# -- stored profiles ------------------------------------------------------------------------------
def find_profile(data: str | Path, ref: str) -> Path:
    """The stored file of profile `ref`: a path to a profile file, or a profile id under
    DATA/_profiles. Raises InputError when there is none, or several."""
    from ..store.tables import PROFILES_DIR
    p = Path(ref)
    if p.suffix == ".parquet" and p.is_file():
        return p
    hits = sorted((Path(data) / PROFILES_DIR).glob(f"**/part-{ref}.parquet"))
    if len(hits) != 1:
        raise InputError(f"--compare {ref!r}", f"no stored profile in {data}" if not hits
                         else f"names {len(hits)} stored profiles",
                         "a profile id printed by harness profile, or a profile file")
    return hits[0]


def compare_profiles(a: list[dict], b: list[dict]) -> dict:
    """Per layer type, profile `a` (base) against `b` (head): rows as read_profile_rows gives
    them. Returns {"a": config, "b": config, "types": [...], "total": {...}, "notes": [...]};
    each type has count, ms, time share and GFLOP/s of both sides and `ratio` = ms_b / ms_a
    (None where a side lacks the type)."""
    def side(rows):
        total = next(r for r in rows if r["level"] == "total")
        types = {r["layer_type"]: r for r in rows if r["level"] == "type"}
        cfg = {k: total.get(k) for k in ("profile_id", "host", "model", "model_sha256",
                                         "input_shape", "engine", "engine_version", "backend",
                                         "precision", "threads", "timing")}
        return cfg, types, total
    (ca, ta, tot_a), (cb, tb, tot_b) = side(a), side(b)
    out = []
    for name in list(ta) + [t for t in tb if t not in ta]:
        ra, rb = ta.get(name, {}), tb.get(name, {})
        ma, mb = ra.get("ms"), rb.get("ms")
        out.append({"layer_type": name, "count_a": ra.get("count"), "count_b": rb.get("count"),
                    "ms_a": ma, "ms_b": mb, "ratio": (mb / ma) if ma and mb is not None
                    else None, "share_a": ra.get("time_share"),
                    "share_b": rb.get("time_share"), "gflops_per_s_a": ra.get("gflops_per_s"),
                    "gflops_per_s_b": rb.get("gflops_per_s")})
    out.sort(key=lambda r: -max(r["ms_a"] or 0.0, r["ms_b"] or 0.0))
    notes = []
    if ca["model_sha256"] != cb["model_sha256"] or ca["input_shape"] != cb["input_shape"]:
        notes.append("the two profiles are of different models or input shapes")
    if ca["timing"] != cb["timing"]:
        notes.append(f"the layers were timed differently ({ca['timing']} / {cb['timing']})")
    ms_a, ms_b = tot_a.get("ms"), tot_b.get("ms")
    return {"a": ca, "b": cb, "types": out, "notes": notes,
            "total": {"ms_a": ms_a, "ms_b": ms_b,
                      "ratio": (ms_b / ms_a) if ms_a and ms_b is not None else None,
                      "count_a": tot_a.get("count"), "count_b": tot_b.get("count")}}


__all__ = ["LEVELS", "add_flops", "attribute", "by_type", "compare_profiles", "direct_by_name",
           "direct_by_value", "find_profile", "gflops", "profile_json", "profile_rows"]
