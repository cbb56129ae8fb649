"""The interface every engine adapter implements, and the capabilities it declares.

Class attributes are read by the coordinator without importing the engine (so a coordinator
without, say, MNN installed can still plan and convert for it); methods run on the device.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

# A sink takes (tensor name, array) and returns that tensor's statistics/comparison record.
Sink = Callable[[str, np.ndarray], Dict[str, object]]


# Precisions that run a quantized model: "int8" = weights and activations in int8 (calibrated,
# the engine's own full-quantization tool), "int8-weight" = int8 weights only (dequantized to
# float when the model loads). The coordinator quantizes for them (harness.models.quantize).
QUANTIZED = ("int8", "int8-weight")


class Unsupported(Exception):
    """The engine cannot run this configuration here (recorded as status 'unsupported')."""


def match_names(wanted: Optional[Sequence[str]], engine: Sequence[str],
                notes: Optional[List[str]] = None) -> List[str]:
    """The engine's input names in the order of the job's input files: the job's names
    (``wanted``, matched by name) when it gives them, else the engine's own order (a native
    model with no names to match). When none of the job's names is the engine's (a native file
    whose converter renamed every input, beside its ONNX source) and the counts agree, the
    engine's order, said in ``notes``. Raises ValueError naming an input the engine lacks."""
    if not wanted:
        return list(engine)
    missing = [n for n in wanted if n not in engine]
    if missing and len(missing) == len(wanted) == len(engine):
        if notes is not None:
            notes.append("inputs fed in the model file's order: its names (%s) are not the "
                         "source's (%s)" % (", ".join(engine), ", ".join(wanted)))
        return list(engine)
    if missing:
        raise ValueError("the model has no input named %s (it has %s)"
                         % (", ".join(missing), ", ".join(engine)))
    return list(wanted)


class Adapter:
    name = "?"
    # What a suite may ask of this engine.
    BACKENDS: tuple = ()
    PRECISIONS: tuple = ()
    # The model format it loads ("onnx", "mnn", "ncnn"): the coordinator's converter registry
    # turns an ONNX source into it.
    MODEL_FORMAT = "onnx"
    # The Python module that is the engine, and the PyPI distribution that provides it (used to
    # provision a requested version on a host).
    MODULE = ""
    PIP_PACKAGE = ""
    # Per-layer capabilities used by `harness diagnose` and `harness profile`:
    # LAYER_OUTPUTS: walk() gives every intermediate tensor of one run.
    # LAYER_TIMES: how layer_times() times layers (a label stored with the profile), or None;
    #   LAYER_TIMES_NOTE says what those times mean.
    # ONNX_NAME_MATCH: how this engine's tensor names relate to the ONNX source's, for a
    #   diagnosis against onnxruntime: "fused-ops" (op names, element-wise successors fused in)
    #   or "by-value" (renamed: matched by value and graph order).
    # FIX_STRATEGY: what diagnose tries once it found the culprit layer: "featmask" (a
    #   per-layer feature mask patched into the model file), "precision_high" (the whole model
    #   at high precision), or None.
    LAYER_OUTPUTS = False
    LAYER_TIMES: Optional[str] = None
    LAYER_TIMES_NOTE = ""
    ONNX_NAME_MATCH = "by-value"
    FIX_STRATEGY: Optional[str] = None
    # Regular expressions (re.search) of lines the engine prints that say nothing about a
    # failure (device banners): left out of a dead agent's error text.
    LOG_NOISE: Tuple[str, ...] = ()

    def __init__(self, job: Dict[str, object]) -> None:
        self.job = job
        # What really ran, filled in by load(); never copied from the request.
        self.effective_backend: Optional[str] = None
        self.effective_precision: Optional[str] = None
        self.notes: List[str] = []
        self.details: Dict[str, object] = {}
        # The engine's own core selection applied for the job's ``cores`` (e.g. "ncnn
        # powersave=2"), set by load(); None: the engine has none (the agent's affinity only).
        self.core_hint: Optional[str] = None
        self.input_names: List[str] = []
        self.output_names: List[str] = []

    @classmethod
    def probe(cls) -> Dict[str, object]:
        """What this host has of the engine, without loading a model: {"version": str,
        "devices": [accelerator names]} or {"error": why it does not import}."""
        try:
            return cls.probe_engine()
        except Exception as e:  # not installed or broken: say which
            return {"error": "%s: %s" % (type(e).__name__, str(e)[:200])}

    @classmethod
    def probe_engine(cls) -> Dict[str, object]:
        """probe() without the error handling: import the engine, return version and devices."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def load(self, files: Dict[str, str], backend: str, precision: str, threads: int,
             options: Dict[str, object], input_shapes: List[List[int]]) -> None:
        """Load the model and prepare everything needed to run it (sessions, pipelines)."""
        raise NotImplementedError

    def inspect(self) -> None:
        """After the timed loop: read what really ran where reading it would disturb the
        measurement (an extra run with per-op callbacks); may update effective_precision,
        details and notes. Nothing by default."""

    def run(self, inputs: List[np.ndarray]) -> List[np.ndarray]:
        """One inference: feed inputs, run, and copy every output back to host memory.

        This whole call is what a latency sample measures.
        """
        raise NotImplementedError

    def walk(self, inputs: Sequence[np.ndarray], sink: Sink,
             on_layer: Optional[Callable[[str, str], None]] = None
             ) -> Tuple[List[Dict[str, object]], List[np.ndarray]]:
        """One run with every intermediate tensor handed to ``sink`` in execution order;
        ``on_layer(name, type)`` is called as each layer starts (so a crash names its layer).

        Returns (per-layer records {index, name, type, inputs, outputs, tensors}, the final
        outputs in output_names order). Only where LAYER_OUTPUTS is True."""
        raise Unsupported("%s gives no per-layer outputs" % self.name)

    def layer_times(self, inputs: Sequence[np.ndarray], iterations: int
                    ) -> List[Dict[str, object]]:
        """Per-layer times over ``iterations`` runs: records {index, name, type, ms, mflops}
        (ms: median per layer). Only where LAYER_TIMES is set."""
        raise Unsupported("%s gives no per-layer times" % self.name)
