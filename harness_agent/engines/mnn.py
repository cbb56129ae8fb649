"""MNN through its Interpreter/Session API (the one with per-op callbacks).

Per-layer outputs (diagnose): Interpreter.runSessionWithCallBackInfo; the after-callback copies
each op's outputs to a host tensor. The dataflow between ops is recovered from host pointers:
an op's input is the output of the last op that wrote that buffer (MNN reuses buffers, never
while they are live).
"""

from __future__ import annotations

import ctypes
import re
import statistics
import time
from typing import Dict, List, Sequence

import numpy as np

from ..fdcapture import capture_native_output
from .base import Adapter as _Base
from .base import QUANTIZED, Unsupported, match_names
from ..layers import tensor_stats

_BACKENDS = {"cpu": "CPU", "vulkan": "VULKAN", "opencl": "OPENCL", "cuda": "CUDA", "metal": "METAL"}
# fp32 asks for 'high' so that no backend may quietly drop to fp16; fp16 asks for 'low'.
# The int8 precisions load a quantized model (harness.models.quantize) and ask for 'high' too:
# the float ops between the int8 ones stay fp32.
_PRECISIONS = {"fp32": "high", "fp16": "low", "int8": "high", "int8-weight": "high"}
# MNN's per-op callback names an op that runs on int8 tensors "Convolution [ DT_INT8 ] "
_INT8_OP = "DT_INT8"


def _version_tuple(v) -> tuple:
    """"3.1.0" -> (3, 1, 0); what cannot be read counts as new."""
    try:
        return tuple(int(x) for x in str(v).split(".")[:3])
    except ValueError:
        return (99,)
# MNNForwardType (include/MNN/MNNForwardType.h) -> backend names
# (13, CPU_EXTENSION: the CPU with its extension instruction sets)
_FORWARD_TYPES = {0: "cpu", 1: "metal", 2: "cuda", 3: "opencl", 7: "vulkan", 13: "cpu"}
_FALLBACK = re.compile(r"Can't Find type=(\d+) backend, use (\d+) instead")
# MNN's Halide types the Python binding exposes, and the numpy dtype of each
_HALIDE = (("Halide_Type_Float", "float32"), ("Halide_Type_Int", "int32"),
           ("Halide_Type_Int64", "int64"), ("Halide_Type_Uint8", "uint8"),
           ("Halide_Type_Double", "float64"))


class Adapter(_Base):
    name = "mnn"
    BACKENDS = tuple(_BACKENDS)
    PRECISIONS = tuple(_PRECISIONS)
    MODEL_FORMAT = "mnn"
    MODULE = "MNN"
    PIP_PACKAGE = "MNN"
    LAYER_OUTPUTS = True
    LAYER_TIMES = "mnn-callback"
    LAYER_TIMES_NOTE = ("time between MNN's before and after callbacks of each op (the callbacks "
                        "add a little per op)")
    # MNN keeps ONNX node names for its ops and fuses element-wise successors into them
    ONNX_NAME_MATCH = "fused-ops"
    # no per-layer switch: diagnose checks whether precision=high fixes the outputs
    FIX_STRATEGY = "precision_high"

    def __init__(self, job):
        super().__init__(job)
        with capture_native_output() as cap:
            import MNN  # noqa: F401  (the import prints the CPU feature line)
        self.MNN = MNN
        # "The device supports: i8sdot:0, fp16:0, ..." tells whether the CPU can do fp16 at all.
        m = re.search(r"fp16:(\d)", cap.text)
        self.cpu_fp16 = bool(int(m.group(1))) if m else None

    @classmethod
    def probe_engine(cls):
        with capture_native_output(echo_fd=-1):
            import MNN
        # the PyPI wheels are CPU-only; a GPU backend shows up only when a session falls back
        return {"version": MNN.version(), "devices": []}

    def version(self) -> str:
        return self.MNN.version()

    # MNN's BackendConfig power mode, the session config key "power" of its Python binding:
    # on ARM its CPU runtime binds worker threads to the big cores for "high" and the little
    # ones for "low" (it ranks cores by their maximum frequency); elsewhere it changes nothing
    POWER = {"big": "high", "little": "low"}

    def _power(self, cfg, options) -> None:
        """MNN's own core hint for the job's cores: the suite's engine option ``power`` wins;
        else big/little map to power high/low; otherwise none (the affinity mask only)."""
        cores = str(self.job.get("cores") or "all")
        power = options.get("power", self.POWER.get(cores))
        if power is None:
            self.core_hint = "none: MNN power not set (affinity mask only)"
            return
        cfg["power"] = str(power)
        self.core_hint = "MNN power=%s" % power + (" (engine_options)" if "power" in options
                                                   else "")

    def _session_backend(self):
        """The session's first backend as MNN reports it (SessionInfoCode BACKENDS = 2, an
        MNNForwardType), in this harness's names; None where MNN cannot say."""
        try:
            code = int(self.interp.getSessionInfo(self.session, 2))
        except Exception:  # noqa: BLE001 - older bindings: the log line is the evidence
            return None
        return _FORWARD_TYPES.get(code)

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
        self._power(cfg, options)
        self.details["engine_options"] = dict(cfg)
        self.interp = MNN.Interpreter(files["mnn"])
        with capture_native_output() as cap:
            self.session = self.interp.createSession(cfg)
        fell_back = _FALLBACK.search(cap.text)
        self.effective_backend = "cpu" if (fell_back or backend == "cpu") else backend
        if fell_back:
            self.notes.append("MNN: %s" % fell_back.group(0))
        ran_on = self._session_backend()
        if ran_on is not None and ran_on != self.effective_backend:
            # MNN's own answer (Interpreter::getSessionInfo BACKENDS) wins over its log
            self.notes.append("MNN: the session's backend is %s (asked for %s)"
                              % (ran_on, backend))
            self.effective_backend = ran_on
        if self.effective_backend == "cpu" and precision == "fp16" and self.cpu_fp16 is False:
            # MNN accepts 'low' but this CPU has no fp16 arithmetic, so it computes in fp32.
            self.effective_precision = "fp32"
            self.notes.append("MNN: CPU reports fp16:0, precision low runs as fp32")
        else:
            self.effective_precision = precision
        inputs = self.interp.getSessionInputAll(self.session)
        self.input_names = match_names(self.job.get("input_names"), list(inputs.keys()),
                                       self.notes)
        for name, shape in zip(self.input_names, input_shapes):
            self.interp.resizeTensor(inputs[name], tuple(shape))
        self.interp.resizeSession(self.session)
        try:  # MNN's own count of the session's memory (SessionInfoCode MEMORY = 0), in MB:
            # on a GPU backend it includes the device buffers RSS does not see
            self.details["engine_memory_mb"] = float(self.interp.getSessionInfo(self.session, 0))
        except Exception:  # noqa: BLE001
            pass
        self.inputs = [inputs[n] for n in self.input_names]
        # Each input is fed in the dtype of MNN's own tensor (MNN keeps int64 ONNX inputs as
        # int32 tensors and refuses an int64 host tensor), each output read into a host tensor
        # of its own type (a float host tensor leaves an int32 output's buffer unread).
        self.in_types = [self._type_of(t) for t in self.inputs]
        self._note_narrowed("input", self.input_names, self.job.get("input_dtypes"),
                            [d for _, d in self.in_types])
        outs = self.interp.getSessionOutputAll(self.session)
        self.output_names = list(self.job.get("output_names") or outs.keys())
        self.outputs = [outs[n] for n in self.output_names]
        # Host tensors are created once: allocating them per run would be measured as latency.
        self.host_out = []
        out_types = []
        for t in self.outputs:
            shape = tuple(t.getShape())
            halide, dtype = self._type_of(t)
            out_types.append(dtype)
            self.host_out.append(MNN.Tensor(shape, halide, np.zeros(shape, dtype),
                                            MNN.Tensor_DimensionType_Caffe))
        self._note_narrowed("output", self.output_names, self.job.get("output_dtypes"),
                            out_types)
        self.details["io_dtypes"] = {"inputs": dict(zip(self.input_names,
                                                        [d for _, d in self.in_types])),
                                     "outputs": dict(zip(self.output_names, out_types))}
        self.details["threads_effective"] = threads

    def inspect(self) -> None:
        """For an int8 request or a model file run as given (it may arrive quantized), the
        ops MNN really ran in int8: one run with per-op callbacks (after the timed loop),
        counting the ops whose type MNN marks ``[ DT_INT8 ]``. No such op for an int8
        request: the session ran the model in float (no int8 kernel for it here)."""
        precision = str(self.job.get("precision"))
        as_given = bool((self.job.get("quant") or {}).get("as_given"))
        if precision not in QUANTIZED and not as_given:
            return
        types: List[str] = []

        def before(tensors, info):
            return True

        def after(tensors, info):
            try:
                types.append(str(info.getType()))
            except Exception:  # noqa: BLE001 - an exception must not cross into C++
                pass
            return True

        try:
            with capture_native_output(echo_fd=-1):
                self.interp.runSessionWithCallBackInfo(self.session, before, after)
        except Exception as e:  # noqa: BLE001 - the measurement stands; say what is unknown
            self.notes.append("MNN: op types not readable (%s): precision as requested" % e)
            return
        if _version_tuple(self.version()) < (3, 3):
            # MNN marks a quantized op's type "[ DT_INT8 ]" from 3.3.0 on (Pipeline.cpp,
            # quantAttr); before, op types carry no data type: nothing to count
            self.details.update(ops_total=len(types))
            self.notes.append("MNN %s does not mark its ops' data types: int8 not verified, "
                              "precision as requested" % self.version())
            return
        n = sum(1 for t in types if _INT8_OP in t)
        self.details.update(int8_ops=n, ops_total=len(types))
        if n > 0:
            if precision not in QUANTIZED:
                self.notes.append("MNN: the model arrived quantized (%d of %d ops ran in "
                                  "int8): it runs as given" % (n, len(types)))
            self.effective_precision = "int8"
        elif precision == "int8":
            self.effective_precision = "fp32"
            self.notes.append("MNN: no op ran in int8 (of %d): the model ran in float"
                              % len(types))
        # int8-weight: weights stored in int8, dequantized at load; every op computes in float

    def _type_of(self, t):
        """(Halide type, numpy dtype name) of an MNN tensor; ValueError for a type the Python
        binding cannot hand over."""
        MNN = self.MNN
        halide = t.getDataType()
        for name, dtype in _HALIDE:
            if _same_capsule(halide, getattr(MNN, name, None)):
                return getattr(MNN, name), dtype
        raise Unsupported("MNN tensor of a data type the harness cannot feed or read")

    def _note_narrowed(self, kind, names, model_dtypes, engine_dtypes) -> None:
        """A note for each tensor whose dtype in MNN differs from the model's (int64 -> int32):
        the outputs are still compared by value."""
        for name, want, got in zip(names, model_dtypes or [], engine_dtypes):
            if want and want != got:
                self.notes.append("MNN: %s %s is %s in MNN (model: %s)%s"
                                  % (kind, name, got, want,
                                     ", compared by value" if kind == "output" else ""))

    def feed(self, inputs: Sequence[np.ndarray]) -> None:
        """Copy the inputs into the session's input tensors, each converted to the dtype of
        MNN's tensor (also used by walk/layer_times)."""
        MNN = self.MNN
        for t, (halide, dtype), x in zip(self.inputs, self.in_types, inputs):
            x = np.ascontiguousarray(x, dtype=dtype)
            t.copyFrom(MNN.Tensor(x.shape, halide, x, MNN.Tensor_DimensionType_Caffe))

    def _read_outputs(self) -> List[np.ndarray]:
        res = []
        for t, host in zip(self.outputs, self.host_out):
            t.copyToHostTensor(host)
            res.append(np.array(host.getNumpyData(), copy=True))
        return res

    def run(self, inputs: List[np.ndarray]) -> List[np.ndarray]:
        self.feed(inputs)
        self.interp.runSession(self.session)
        return self._read_outputs()

    # -- per layer ----------------------------------------------------------------------------
    def _host_copy(self, t) -> np.ndarray:
        MNN = self.MNN
        host = MNN.Tensor(t, MNN.Tensor_DimensionType_Caffe)
        t.copyToHostTensor(host)
        return np.array(host.getNumpyData(), copy=True)

    def walk(self, inputs, sink, on_layer=None):
        self.feed(inputs)
        producer: Dict[int, str] = {}
        for name, t in zip(self.input_names, self.inputs):
            p = _host_ptr(t)
            if p:
                producer[p] = "input:" + name
        records: List[Dict[str, object]] = []
        seen: Dict[str, int] = {}
        pending: Dict[str, object] = {}
        errors: List[str] = []

        def before(tensors, info):
            if on_layer is not None:
                on_layer(info.getName(), info.getType())
            try:
                ins, ext = [], {}
                for j, t in enumerate(tensors):
                    p = _host_ptr(t)
                    src = producer.get(p) if p else None
                    if src is None:
                        # a constant or a tensor made outside the ops we saw: keep its statistics
                        src = "const:%s:%d" % (info.getName(), j)
                        try:
                            ext[src] = tensor_stats(self._host_copy(t))
                        except Exception as e:  # noqa: BLE001 - a statistic must not stop the run
                            ext[src] = {"error": str(e)[:200]}
                    ins.append(src)
                pending["inputs"], pending["external"] = ins, ext
            except Exception as e:  # noqa: BLE001 - an exception must not cross into C++
                errors.append("before %s: %s" % (info.getName(), e))
            return True

        def after(tensors, info):
            try:
                base = _op_key(seen, info.getName())
                rec = {"index": len(records), "name": base, "type": info.getType(),
                       "inputs": pending.pop("inputs", []), "outputs": [], "tensors": {}}
                ext = pending.pop("external", {})
                if ext:
                    rec["external"] = ext
                try:
                    rec["mflops"] = float(info.getFlops())
                except Exception:  # noqa: BLE001
                    pass
                for j, t in enumerate(tensors):
                    key = base if j == 0 else "%s:%d" % (base, j)
                    rec["outputs"].append(key)
                    try:
                        rec["tensors"][key] = sink(key, self._host_copy(t))
                    except Exception as e:  # noqa: BLE001
                        rec["tensors"][key] = {"error": str(e)[:200]}
                    p = _host_ptr(t)
                    if p:
                        producer[p] = key
                records.append(rec)
            except Exception as e:  # noqa: BLE001
                errors.append("after %s: %s" % (info.getName(), e))
            return True

        self.interp.runSessionWithCallBackInfo(self.session, before, after)
        if errors:
            raise RuntimeError("MNN callbacks failed: " + "; ".join(errors[:3]))
        return records, self._read_outputs()

    def layer_times(self, inputs, iterations):
        """Per-op wall time between MNN's before and after callbacks (the op's own execution)."""
        self.feed(inputs)
        order: List[str] = []
        types: Dict[str, str] = {}
        flops: Dict[str, float] = {}
        samples: Dict[str, List[float]] = {}
        state = {"t0": 0.0, "it": 0, "seen": {}}

        def before(tensors, info):
            state["t0"] = time.perf_counter()
            return True

        def after(tensors, info):
            dt = (time.perf_counter() - state["t0"]) * 1e3
            key = _op_key(state["seen"], info.getName())
            if key not in types:
                order.append(key)
                types[key] = info.getType()
                try:
                    flops[key] = float(info.getFlops())
                except Exception:  # noqa: BLE001
                    pass
            if state["it"] > 0:
                samples.setdefault(key, []).append(dt)
            return True

        for it in range(iterations + 1):
            state["it"], state["seen"] = it, {}
            self.interp.runSessionWithCallBackInfo(self.session, before, after)
        return [{"index": i, "name": k, "type": types[k], "mflops": flops.get(k),
                 "ms": statistics.median(samples[k]) if samples.get(k) else None}
                for i, k in enumerate(order)]


def _op_key(seen: Dict[str, int], name: str) -> str:
    """An op name, made unique within one run (a name that repeats gets #2, #3, ...)."""
    n = seen.get(name, 0)
    seen[name] = n + 1
    return name if n == 0 else "%s#%d" % (name, n + 1)


_capsule_api = None


def _capsule_ptr(cap) -> int:
    """The pointer a PyCapsule holds (0 when it cannot be read)."""
    global _capsule_api
    try:
        if _capsule_api is None:
            api = ctypes.pythonapi
            api.PyCapsule_GetName.restype = ctypes.c_char_p
            api.PyCapsule_GetName.argtypes = [ctypes.py_object]
            api.PyCapsule_GetPointer.restype = ctypes.c_void_p
            api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
            _capsule_api = api
        name = _capsule_api.PyCapsule_GetName(cap)
        return int(_capsule_api.PyCapsule_GetPointer(cap, name) or 0)
    except Exception:  # noqa: BLE001 - not a capsule
        return 0


def _same_capsule(a, b) -> bool:
    """Whether two of MNN's type capsules stand for the same type (the binding hands out the
    same objects; their pointers are compared in case it ever makes new ones)."""
    if a is None or b is None:
        return False
    if a is b:
        return True
    pa = _capsule_ptr(a)
    return pa != 0 and pa == _capsule_ptr(b)


def _host_ptr(t) -> int:
    """The host buffer address of an MNN tensor (0 when it has none or it cannot be read)."""
    try:
        cap = t.getHost()
    except Exception:  # noqa: BLE001
        return 0
    return 0 if cap is None else _capsule_ptr(cap)
