"""Everything the coordinator does before measuring: sources, inputs, references, conversions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..cache import sha256_file, sha256_text
from ..engines import adapter_class
from ..config.suite import ModelSpec, Suite
from .converters import (Artifact, ArtifactOrFailure, ConversionFailed, ConvertError,
                         artifact_for, native_files, native_inputs)
from .inputs import InputSet, prepare_inputs
from .registry import builtin_onnx


@dataclass
class PreparedModel:
    """A model ready to measure: its source, inputs/references and one artifact per format."""
    spec: ModelSpec
    source_sha: str
    onnx: Path | None
    inputs: InputSet
    # model format -> artifact, or why there is none
    artifacts: dict[str, ArtifactOrFailure] = field(default_factory=dict)
    # static analysis (harness.analysis models-table row) for ONNX sources; None otherwise
    stats: dict | None = None

    def artifact(self, fmt: str) -> Artifact:
        """The artifact in ``fmt``; ConvertError with the reason when there is none."""
        art = self.artifacts.get(fmt)
        if isinstance(art, Artifact):
            return art
        reason = art.reason if isinstance(art, ConversionFailed) else f"{fmt} was not prepared"
        raise ConvertError(f"model {self.spec.name}: no {fmt} model: {reason}")


def _static_stats(onnx: Path, inputs: InputSet) -> dict:
    """The models-table row, or {'error': ...}: theory is an aid, a run never fails over it."""
    from ..analysis import analyze_onnx, models_table_row
    try:
        return models_table_row(analyze_onnx(onnx, dict(zip(inputs.names, inputs.shapes))))
    except Exception as e:  # noqa: BLE001 (any analysis failure, typed or a bug, is recorded)
        return {"error": str(e)[:300]}


def prepare_model(spec: ModelSpec, engines: list[str]) -> PreparedModel:
    """Inputs, references and an artifact for the model format of each engine.

    Raises InputError when the inputs do not fit the model; a failed conversion is recorded as
    a ConversionFailed value in ``artifacts`` instead."""
    onnx = builtin_onnx(spec.builtin) if spec.builtin else spec.onnx
    if onnx is not None:
        source_sha = sha256_file(onnx)
    else:
        source_sha = sha256_text(*(sha256_file(p) for p in native_files(spec)))
    declared = native_inputs(spec) if onnx is None else None
    inputs = prepare_inputs(spec.name, onnx, spec.inputs, source_sha, declared)
    pm = PreparedModel(spec, source_sha, onnx, inputs)
    if onnx is not None:
        pm.stats = _static_stats(onnx, inputs)
    for fmt in sorted({adapter_class(e).MODEL_FORMAT for e in engines}):
        pm.artifacts[fmt] = artifact_for(spec, onnx, fmt, list(inputs.shapes),
                                         list(inputs.dtypes))
    return pm


def prepare_suite(suite: Suite) -> dict[str, PreparedModel]:
    out = {}
    for spec in suite.models:
        engines = list(spec.engines or suite.engines)
        out[spec.name] = prepare_model(spec, engines)
    return out
