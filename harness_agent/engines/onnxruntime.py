"""onnxruntime as an engine: proves a third engine is one file, and serves as a CPU baseline."""

from __future__ import annotations

from typing import List

import numpy as np

from .base import Adapter as _Base
from .base import Unsupported, match_names

# onnxruntime's element type names that differ from numpy's
_ORT_TYPES = {"float": "float32", "double": "float64"}


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
        declared = {i.name: i.type for i in self.sess.get_inputs()}
        self.input_names = match_names(self.job.get("input_names"), list(declared), self.notes)
        # fed in the model's own dtypes (a suite may have made an input file in another one)
        self.in_dtypes = [numpy_dtype(declared[n]) for n in self.input_names]
        for name, want, got in zip(self.input_names, self.in_dtypes,
                                   self.job.get("input_dtypes") or []):
            if want and got and want != got:
                self.notes.append("onnxruntime: input %s given as %s, fed as %s (the model's)"
                                  % (name, got, want))
        self.output_names = list(self.job.get("output_names") or
                                 [o.name for o in self.sess.get_outputs()])
        self.details["engine_options"] = {"intra_op_num_threads": int(threads)}

    def run(self, inputs: List[np.ndarray]) -> List[np.ndarray]:
        feed = {n: (x if d is None else x.astype(d, copy=False))
                for n, d, x in zip(self.input_names, self.in_dtypes, inputs)}
        return self.sess.run(self.output_names, feed)


def numpy_dtype(ort_type: str):
    """'tensor(int64)' -> 'int64'; None for a type numpy has no name for (fed as it is)."""
    inner = ort_type[len("tensor("):-1] if ort_type.startswith("tensor(") else ""
    inner = _ORT_TYPES.get(inner, inner)
    try:
        return np.dtype(inner).name
    except TypeError:
        return None
