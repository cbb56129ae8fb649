"""The public reading API: `from harness.results import load, long_form` (see harness.store.read)."""

from .store.read import (ALL_COLUMNS, DIMENSIONS, FULL_SCHEMA, DatasetError, dataset,
                         filter_expression, latency_arrays, load, long_form, measured)

__all__ = ["ALL_COLUMNS", "DIMENSIONS", "FULL_SCHEMA", "DatasetError", "dataset",
           "filter_expression", "latency_arrays", "load", "long_form", "measured"]
