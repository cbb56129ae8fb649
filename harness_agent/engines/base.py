"""The interface every engine adapter implements."""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np


class Unsupported(Exception):
    """The engine cannot run this configuration here (recorded as status 'unsupported')."""


class Adapter:
    name = "?"
    # Read by the coordinator without importing the engine: what a suite may ask of this engine,
    # which model file format it loads (its converter), and which PyPI package provides it.
    BACKENDS: tuple = ()
    PRECISIONS: tuple = ()
    MODEL_FORMAT = "onnx"
    PIP_PACKAGE = ""

    def __init__(self, job: Dict[str, object]) -> None:
        self.job = job
        # What really ran, filled in by load(); never copied from the request.
        self.effective_backend: Optional[str] = None
        self.effective_precision: Optional[str] = None
        self.notes: List[str] = []
        self.details: Dict[str, object] = {}

    def version(self) -> str:
        raise NotImplementedError

    def load(self, files: Dict[str, str], backend: str, precision: str, threads: int,
             options: Dict[str, object], input_shapes: List[List[int]]) -> None:
        """Load the model and prepare everything needed to run it (sessions, pipelines)."""
        raise NotImplementedError

    def run(self, inputs: List[np.ndarray]) -> List[np.ndarray]:
        """One inference: feed inputs, run, and copy every output back to host memory.

        This whole call is what a latency sample measures.
        """
        raise NotImplementedError

    def close(self) -> None:
        pass
