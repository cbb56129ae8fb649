"""Everything the coordinator does before measuring: sources, inputs, references, conversions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..cache import sha256_file, sha256_text
from ..engines import adapter_class
from ..config.suite import ModelSpec, Suite
from .converters import (Artifact, ArtifactOrFailure, ConversionFailed, ConvertError,
                         artifact_for, native_files, native_inputs)
from .inputs import InputSet, prepare_inputs
from .quantize import (QUANTIZED, NcnnTools, QuantizerUnavailable, artifact_key, ncnn_tools,
                       prepare_calibration, quantized_artifact)
from .registry import builtin_onnx


@dataclass
class PreparedModel:
    """A model ready to measure: its source, inputs/references and one artifact per format."""
    spec: ModelSpec
    source_sha: str
    onnx: Path | None
    inputs: InputSet
    # artifact key (quantize.artifact_key: the format, or format@precision for a quantized
    # precision) -> artifact, or why there is none
    artifacts: dict[str, ArtifactOrFailure] = field(default_factory=dict)
    # static analysis (harness.analysis models-table row) for ONNX sources; None otherwise
    stats: dict | None = None

    def artifact_or_failure(self, engine: str, precision: str = "fp32"):
        """The artifact an engine loads at ``precision`` (the float one where that precision
        needs no quantized model), ConversionFailed, or None when it was not prepared."""
        fmt = adapter_class(engine).MODEL_FORMAT
        art = self.artifacts.get(artifact_key(fmt, precision))
        return art if art is not None else self.artifacts.get(fmt)

    def artifact(self, fmt: str, precision: str = "fp32") -> Artifact:
        """The artifact in ``fmt`` at ``precision``; ConvertError with the reason when there
        is none."""
        art = self.artifacts.get(artifact_key(fmt, precision)) or self.artifacts.get(fmt)
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


def once(make: Callable[[], object]) -> Callable[[], object]:
    """``make()`` called on the first call only; its value, or its ConvertError, kept for
    every later call (a tool build that failed is not tried again for each model)."""
    memo: dict = {}

    def get():
        if "v" not in memo:
            try:
                memo["v"] = make()
            except ConvertError as e:
                memo["v"] = e
        if isinstance(memo["v"], ConvertError):
            raise memo["v"]
        return memo["v"]
    return get


def prepare_model(spec: ModelSpec, engines: list[str],
                  precisions: tuple[str, ...] = ("fp32",),
                  ncnn_tools_fn: Callable[[], NcnnTools] | None = None,
                  ncnn_method: str = "kl") -> PreparedModel:
    """Inputs, references and an artifact for the model format of each engine, and for each
    quantized precision asked for, the quantized artifact of each format that has a quantizer
    (harness.models.quantize). ``ncnn_tools_fn()``: ncnn's int8 tools (called only when an
    ncnn model is quantized; None: there are none, ncnn int8 is unsupported).

    Raises InputError when the inputs do not fit the model; a failed conversion or
    quantization is recorded as a ConversionFailed value in ``artifacts`` instead."""
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
    # made once per model, on the first quantizer that reads it; a failure is every
    # calibrated artifact's ConversionFailed
    calibration = once(lambda: prepare_calibration(spec, onnx, inputs))

    for fmt in sorted({adapter_class(e).MODEL_FORMAT for e in engines}):
        pm.artifacts[fmt] = artifact_for(spec, onnx, fmt, list(inputs.shapes),
                                         list(inputs.dtypes))
        for precision in precisions:
            if precision not in QUANTIZED:
                continue
            try:
                art = quantized_artifact(fmt, precision, onnx, pm.artifacts[fmt], calibration,
                                         list(inputs.shapes), ncnn_tools_fn, ncnn_method)
            except QuantizerUnavailable as e:
                art = ConversionFailed(fmt, str(e), status="unsupported")
            except ConvertError as e:
                art = ConversionFailed(fmt, str(e))
            except Exception as e:  # noqa: BLE001 - a quantizer's own failure is one row
                art = ConversionFailed(fmt, f"quantizing {fmt} for {precision} failed: "
                                            f"{type(e).__name__}: {str(e)[:300]}")
            pm.artifacts[artifact_key(fmt, precision)] = art
    return pm


def prepare_suite(suite: Suite) -> dict[str, PreparedModel]:
    """Every model of ``suite`` prepared; ncnn's int8 tools are built (or found in the build
    cache) once, from ``suite.ncnn_tools``, when the first ncnn model is quantized."""
    tools = once(lambda: ncnn_tools(suite.ncnn_tools))
    out = {}
    for spec in suite.models:
        engines = list(spec.engines or suite.engines)
        out[spec.name] = prepare_model(spec, engines, tuple(spec.precisions or suite.precisions),
                                       tools, suite.ncnn_method)
    return out
