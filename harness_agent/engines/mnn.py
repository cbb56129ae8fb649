"""MNN through its Interpreter/Session API (the one with per-op callbacks)."""

from __future__ import annotations

import re
from typing import List

import numpy as np

from ..fdcapture import capture_native_output
from .base import Adapter as _Base
from .base import Unsupported

_BACKENDS = {"cpu": "CPU", "vulkan": "VULKAN", "opencl": "OPENCL", "cuda": "CUDA", "metal": "METAL"}
# fp32 asks for 'high' so that no backend may quietly drop to fp16; fp16 asks for 'low'.
_PRECISIONS = {"fp32": "high", "fp16": "low"}
_FALLBACK = re.compile(r"Can't Find type=(\d+) backend, use (\d+) instead")


class Adapter(_Base):
    name = "mnn"
    BACKENDS = tuple(_BACKENDS)
    PRECISIONS = tuple(_PRECISIONS)
    MODEL_FORMAT = "mnn"
    PIP_PACKAGE = "MNN"

    def __init__(self, job):
        super().__init__(job)
        with capture_native_output() as cap:
            import MNN  # noqa: F401  (the import prints the CPU feature line)
        self.MNN = MNN
        # "The device supports: i8sdot:0, fp16:0, ..." tells whether the CPU can do fp16 at all.
        m = re.search(r"fp16:(\d)", cap.text)
        self.cpu_fp16 = bool(int(m.group(1))) if m else None

    def version(self) -> str:
        return self.MNN.version()

    def load(self, files, backend, precision, threads, options, input_shapes):
        MNN = self.MNN
        if backend not in _BACKENDS:
            raise Unsupported("MNN has no backend %r" % backend)
        if precision not in _PRECISIONS:
            raise Unsupported("no MNN path for precision %r in this harness" % precision)
        cfg = {"backend": _BACKENDS[backend], "numThread": int(threads),
               "precision": _PRECISIONS[precision]}
        if "memory" in options:
            cfg["memory"] = str(options["memory"])
        self.details["engine_options"] = dict(cfg)
        self.interp = MNN.Interpreter(files["mnn"])
        with capture_native_output() as cap:
            self.session = self.interp.createSession(cfg)
        fell_back = _FALLBACK.search(cap.text)
        self.effective_backend = "cpu" if (fell_back or backend == "cpu") else backend
        if fell_back:
            self.notes.append("MNN: %s" % fell_back.group(0))
        if self.effective_backend == "cpu" and precision == "fp16" and self.cpu_fp16 is False:
            # MNN accepts 'low' but this CPU has no fp16 arithmetic, so it computes in fp32.
            self.effective_precision = "fp32"
            self.notes.append("MNN: CPU reports fp16:0, precision low runs as fp32")
        else:
            self.effective_precision = precision
        self.input_names = list(self.job.get("input_names") or [])
        inputs = self.interp.getSessionInputAll(self.session)
        if not self.input_names:
            self.input_names = list(inputs.keys())
        for name, shape in zip(self.input_names, input_shapes):
            self.interp.resizeTensor(inputs[name], tuple(shape))
        self.interp.resizeSession(self.session)
        self.inputs = [inputs[n] for n in self.input_names]
        outs = self.interp.getSessionOutputAll(self.session)
        self.output_names = list(self.job.get("output_names") or outs.keys())
        self.outputs = [outs[n] for n in self.output_names]
        # Host tensors are created once: allocating them per run would be measured as latency.
        self.host_out = []
        for t in self.outputs:
            shape = tuple(t.getShape())
            self.host_out.append(MNN.Tensor(shape, MNN.Halide_Type_Float,
                                            np.zeros(shape, np.float32),
                                            MNN.Tensor_DimensionType_Caffe))
        self.details["threads_effective"] = threads

    def run(self, inputs: List[np.ndarray]) -> List[np.ndarray]:
        MNN = self.MNN
        for t, x in zip(self.inputs, inputs):
            t.copyFrom(MNN.Tensor(x.shape, MNN.Halide_Type_Float, x, MNN.Tensor_DimensionType_Caffe))
        self.interp.runSession(self.session)
        res = []
        for t, host in zip(self.outputs, self.host_out):
            t.copyToHostTensor(host)
            res.append(np.array(host.getNumpyData(), copy=True))
        return res
