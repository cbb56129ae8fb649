"""Everything the coordinator does before measuring: sources, inputs, references, conversions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .builtin import builtin_onnx
from .cache import sha256_file, sha256_text
from .convert import Artifact, ConvertError, from_onnx
from .engines import adapter_class
from .reference import InputSet, prepare_inputs
from .config.suite import ModelSpec, Suite


@dataclass
class PreparedModel:
    spec: ModelSpec
    source_sha: str
    onnx: Path | None
    inputs: InputSet
    # engine format -> artifact, or the converter's error message
    artifacts: dict[str, Artifact | str] = field(default_factory=dict)
    # static analysis (harness.analysis models-table row) for ONNX sources; None otherwise
    stats: dict | None = None


def _native(spec: ModelSpec, fmt: str) -> Artifact | str:
    if fmt == "mnn" and spec.mnn:
        return Artifact("mnn", {"mnn": spec.mnn}, "", sha256=sha256_file(spec.mnn))
    if fmt == "ncnn" and spec.ncnn_param:
        return Artifact("ncnn", {"param": spec.ncnn_param, "bin": spec.ncnn_bin}, "",
                        sha256=sha256_text(sha256_file(spec.ncnn_param),
                                           sha256_file(spec.ncnn_bin)))
    return f"no {fmt} file for model {spec.name} and no ONNX source to convert"


def _static_stats(onnx: Path, inputs) -> dict | None:
    from .analysis import AnalysisError, analyze_onnx, models_table_row
    try:
        names = [t.split(":")[0] for t in inputs.shape_text.split(",")]
        return models_table_row(analyze_onnx(onnx, dict(zip(names, inputs.shapes))))
    except (AnalysisError, Exception) as e:  # theory is an aid; never fail a run over it
        return {"error": str(e)[:300]}


def prepare_model(spec: ModelSpec, engines: list[str]) -> PreparedModel:
    onnx = builtin_onnx(spec.builtin) if spec.builtin else spec.onnx
    if onnx is not None:
        source_sha = sha256_file(onnx)
    else:
        source_sha = sha256_text(*(sha256_file(p) for p in (spec.mnn, spec.ncnn_param,
                                                              spec.ncnn_bin) if p))
    inputs = prepare_inputs(spec.name, onnx, spec.inputs, source_sha)
    pm = PreparedModel(spec, source_sha, onnx, inputs)
    if onnx is not None:
        pm.stats = _static_stats(onnx, inputs)
    for fmt in sorted({adapter_class(e).MODEL_FORMAT for e in engines}):
        if onnx is None or (fmt == "mnn" and spec.mnn) or (fmt == "ncnn" and spec.ncnn_param):
            pm.artifacts[fmt] = _native(spec, fmt)
            continue
        try:
            pm.artifacts[fmt] = from_onnx(onnx, fmt, list(inputs.shapes))
        except ConvertError as e:
            pm.artifacts[fmt] = str(e)
    return pm


def prepare_suite(suite: Suite) -> dict[str, PreparedModel]:
    out = {}
    for spec in suite.models:
        engines = list(spec.engines or suite.engines)
        out[spec.name] = prepare_model(spec, engines)
    return out
