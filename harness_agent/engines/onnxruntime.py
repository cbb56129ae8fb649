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
    # int8: the model the coordinator quantized with onnxruntime.quantization (static QDQ),
    # or a QDQ model as given
    PRECISIONS = ("fp32", "int8")
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
        if precision not in self.PRECISIONS:
            raise Unsupported("onnxruntime runs fp32 and int8 (static QDQ) in this harness, "
                              "not %s" % precision)
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        self.sess = self.ort.InferenceSession(files["onnx"], so, providers=["CPUExecutionProvider"])
        self.effective_backend = "cpu"
        self.effective_precision = self._precision_of(precision)
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

    def _precision_of(self, precision: str) -> str:
        """What the model runs in, from the coordinator's count of its quantized ops (the job's
        "quant": onnxruntime says nothing of which kernels ran): int8 when the graph has
        QuantizeLinear/DequantizeLinear-wrapped ops, else fp32."""
        quant = self.job.get("quant") or {}
        n, total = quant.get("int8_ops"), quant.get("ops_total")
        if n is None:
            return "fp32"
        self.details.update(int8_ops=int(n), ops_total=int(total or 0))
        if n > 0:
            if precision == "fp32":
                self.notes.append("onnxruntime: the model arrived quantized (%d of %d ops "
                                  "between Q/DQ nodes): it runs as given, in int8" % (n, total))
            return "int8"
        if precision == "int8":
            self.notes.append("onnxruntime: the model has no quantized op: it runs in fp32")
        return "fp32"

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
