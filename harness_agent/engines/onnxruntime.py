"""onnxruntime as an engine: proves a third engine is one file, and serves as a CPU baseline."""

from __future__ import annotations

from typing import List

import numpy as np

from .base import Adapter as _Base
from .base import Unsupported


class Adapter(_Base):
    name = "onnxruntime"
    BACKENDS = ("cpu",)
    PRECISIONS = ("fp32",)
    MODEL_FORMAT = "onnx"
    MODULE = "onnxruntime"
    PIP_PACKAGE = "onnxruntime"

    def __init__(self, job):
        super().__init__(job)
        import onnxruntime
        self.ort = onnxruntime

    @classmethod
    def probe_engine(cls):
        import onnxruntime
        # the adapter runs the CPU execution provider only
        return {"version": onnxruntime.__version__, "devices": []}

    def version(self) -> str:
        return self.ort.__version__

    def load(self, files, backend, precision, threads, options, input_shapes):
        if backend != "cpu":
            raise Unsupported("onnxruntime runs here with the CPU provider only")
        if precision != "fp32":
            raise Unsupported("onnxruntime engine runs fp32 only in this harness")
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        self.sess = self.ort.InferenceSession(files["onnx"], so, providers=["CPUExecutionProvider"])
        self.effective_backend, self.effective_precision = "cpu", "fp32"
        self.input_names = [i.name for i in self.sess.get_inputs()]
        self.output_names = list(self.job.get("output_names") or
                                 [o.name for o in self.sess.get_outputs()])
        self.details["engine_options"] = {"intra_op_num_threads": int(threads)}

    def run(self, inputs: List[np.ndarray]) -> List[np.ndarray]:
        return self.sess.run(self.output_names, dict(zip(self.input_names, inputs)))
