"""The exception type of the analysis package."""

from __future__ import annotations

from ..models.errors import ModelError

# One type for "this model cannot be used as given": a shape text the grammar refuses
# (harness.models.shapes) and a graph the analysis cannot cost are the same fault to a caller.
AnalysisError = ModelError
