"""Static model analysis: parameters, MACs/FLOPs, workspace and activation memory of ONNX models.

Pure functions; `harness models stats` (harness/cli/models.py), the run summary and the tests
call these.
"""

from .errors import AnalysisError
from .models_table import write_models_table
from .onnx_stats import FLOPS_CONVENTION, LayerStats, ModelStats, analyze_onnx
from .pnnx_ref import pnnx_reference_flops
from .report import models_table_row, render_table
from ..models.shapes import format_shapes, parse_shape

__all__ = [
    "AnalysisError", "FLOPS_CONVENTION", "LayerStats", "ModelStats", "analyze_onnx", "format_shapes",
    "models_table_row", "parse_shape", "pnnx_reference_flops", "render_table", "write_models_table",
]
