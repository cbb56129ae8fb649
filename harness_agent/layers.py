"""Every intermediate output of one model run, layer by layer (device side of `harness diagnose`).

ncnn: every blob of the loaded net is pulled through one Extractor, in the layer order of the
param file (which is topological), with light mode off so that no blob is released or
overwritten in place before it is read.
MNN: Interpreter.runSessionWithCallBackInfo; the after-callback copies each op's outputs to a
host tensor. The dataflow between ops is recovered from host pointers: an op's input is the
output of the last op that wrote that buffer (MNN reuses buffers, never while they are live).

Each produced tensor goes to a sink (write it to an .npz, or compare it against a reference
on the spot), so the process holds one intermediate at a time, not the whole model's.

Standard library + numpy + the engine binding only, Python 3.9 syntax, relative imports.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import re
import statistics
import time
import zipfile
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .outputs import compare, describe
from .tolerance import TOLERANCES, within

Sink = Callable[[str, np.ndarray], Dict[str, object]]

# "Close enough to be the same tensor" when matching names by value (fp32 against fp32).
MATCH = TOLERANCES["fp32"]


# -- tensor files -------------------------------------------------------------------------------
class NpzWriter:
    """Streams arrays into an .npz (one member each) under a temp name; close() renames it.

    Tensor names are kept in a JSON index (member ``__index__``): ONNX names may hold '/' or
    other characters that do not belong in a zip member name.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            os.makedirs(d, exist_ok=True)
        self.tmp = "%s.%d.part" % (path, os.getpid())
        self.zf = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.index: List[Dict[str, object]] = []

    def add(self, name: str, arr: np.ndarray) -> None:
        key = "a%d" % len(self.index)
        arr = np.ascontiguousarray(arr)
        with self.zf.open(key + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, arr, allow_pickle=False)
        self.index.append({"name": name, "key": key, "shape": list(arr.shape),
                           "dtype": str(arr.dtype)})

    def close(self) -> None:
        idx = np.array(json.dumps(self.index))
        with self.zf.open("__index__.npy", "w") as f:
            np.lib.format.write_array(f, idx, allow_pickle=False)
        self.zf.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.zf.close()
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


class NpzReader:
    """Reads what NpzWriter wrote (or a plain .npz), one array at a time, with an LRU cache."""

    cache_bytes = 64 << 20

    def __init__(self, path: str) -> None:
        self.npz = np.load(path, allow_pickle=False)
        if "__index__" in self.npz.files:
            index = json.loads(str(self.npz["__index__"]))
        else:
            index = [{"name": k, "key": k, "shape": None} for k in self.npz.files]
        self.order = [e["name"] for e in index]
        self.pos = dict((n, i) for i, n in enumerate(self.order))
        self._key = dict((e["name"], e["key"]) for e in index)
        self._shape = dict((e["name"], e.get("shape")) for e in index)
        self._cache: Dict[str, np.ndarray] = {}
        self._bytes = 0

    def __contains__(self, name: str) -> bool:
        return name in self._key

    def size(self, name: str) -> int:
        shape = self._shape.get(name)
        if shape is None:
            return int(self.get(name).size)
        n = 1
        for d in shape:
            n *= int(d)
        return n

    def get(self, name: str) -> np.ndarray:
        arr = self._cache.pop(name, None)
        if arr is None:
            arr = self.npz[self._key[name]]
            self._bytes += arr.nbytes
            while self._cache and self._bytes > self.cache_bytes:
                self._bytes -= self._cache.pop(next(iter(self._cache))).nbytes
        self._cache[name] = arr  # most recently used last
        return arr


# -- sinks --------------------------------------------------------------------------------------
def _stats(arr: np.ndarray) -> Dict[str, object]:
    d = describe(arr)
    d.pop("sha256", None)
    return d


class DumpSink:
    """Writes each tensor to an NpzWriter (if given) and returns its statistics."""

    def __init__(self, writer: Optional[NpzWriter]) -> None:
        self.writer = writer

    def __call__(self, key: str, arr: np.ndarray) -> Dict[str, object]:
        if self.writer is not None:
            self.writer.add(key, arr)
        return _stats(arr)




_RASTER = re.compile(r"(_raster_\d+)+$")


class CompareSink:
    """Compares each tensor with its counterpart in a reference .npz, on the device.

    candidates: None: the reference tensor of the same name. A dict name -> [reference names]
    (e.g. an MNN op name -> the ONNX tensor of that name and the tensors of the element-wise
    ops the converter may have fused into it); a name missing there falls back to the same
    name. "*": any reference tensor with as many elements, near the last match in reference
    order (pnnx renames every blob). Among several candidates the one closest in value to
    ``match`` (a trusted fp32 run of the same model) -- or to the tensor itself -- wins.
    """

    def __init__(self, ref: NpzReader, match: Optional[NpzReader] = None,
                 candidates: object = None, writer: Optional[NpzWriter] = None) -> None:
        self.ref, self.match, self.candidates, self.writer = ref, match, candidates, writer
        self.last_pos = -1

    def _candidates(self, key: str, size: int):
        """(candidate reference names, strict): strict ones must agree in value to be used."""
        spec, ref = self.candidates, self.ref
        if spec == "*":
            lo = max(0, self.last_pos - 8)
            names = [n for n in ref.order[lo:] if ref.size(n) == size]
            return names[:24], True
        base = _RASTER.sub("", key)
        names: List[str] = []
        strict = False
        if isinstance(spec, dict):
            names = list(spec.get(key) or [])
            if not names and base != key:
                names, strict = list(spec.get(base) or []), True
        if not names:
            if key in ref:
                names = [key]
            elif base in ref:
                names, strict = [base], True
            elif isinstance(spec, dict):
                # a name the engine made up (MNN's BinaryOpNN, ReLU6): same-size tensors near
                # the last match, used only if one agrees in value
                lo = max(0, self.last_pos - 8)
                names, strict = [n for n in ref.order[lo:] if ref.size(n) == size][:24], True
        return [n for n in names if n in ref and ref.size(n) == size], strict

    def _choose(self, key: str, arr: np.ndarray):
        cands, strict = self._candidates(key, int(arr.size))
        if not cands:
            return None, "none"
        if len(cands) == 1 and not strict:
            return cands[0], "name"
        probe = arr
        if self.match is not None and key in self.match and self.match.size(key) == arr.size:
            probe = self.match.get(key)
        best = None
        for i, n in enumerate(cands):
            m = compare(probe, self.ref.get(n))
            # in order, the first tensor that agrees wins (identity-like ops agree too)
            if within(m, MATCH)[0]:
                return n, "value"
            rel = m.get("rel_err")
            rel = float(rel) if rel is not None and math.isfinite(float(rel)) else math.inf
            cos = m.get("cosine")
            cos = float(cos) if cos is not None else -2.0
            score = (rel, -cos, i)
            if best is None or score < best[0]:
                best = (score, n)
        if self.candidates == "*":
            return cands[0], "order"  # nothing agrees in value: first same-size tensor in order
        if strict or best is None:
            return None, "none"  # a made-up name (e.g. MNN's X_raster_N) that agrees with nothing
        return best[1], "best"

    def __call__(self, key: str, arr: np.ndarray) -> Dict[str, object]:
        if self.writer is not None:
            self.writer.add(key, arr)
        d = _stats(arr)
        name, how = self._choose(key, arr)
        d["match"] = how
        if name is None:
            return d
        r = self.ref.get(name)
        if self.candidates is not None:
            self.last_pos = max(self.last_pos, self.ref.pos.get(name, -1))
        d["ref_name"] = name
        rs = _stats(r)
        d["ref"] = dict((k, rs[k]) for k in ("shape", "min", "max", "mean", "std", "nan", "inf"))
        d.update(compare(arr, r))
        return d


# -- ncnn ---------------------------------------------------------------------------------------
def ncnn_graph(adapter) -> List[Dict[str, object]]:
    net = adapter.net
    blobs = [b.name for b in net.blobs()]
    out = []
    for i, layer in enumerate(net.layers()):
        out.append({"index": i, "name": layer.name, "type": layer.type,
                    "inputs": [blobs[j] for j in layer.bottoms],
                    "outputs": [blobs[j] for j in layer.tops]})
    return out


def ncnn_walk(adapter, inputs: Sequence[np.ndarray], sink: Sink):
    """Extract every blob, layer by layer, and hand each to the sink.

    Returns (layer records, the final outputs in adapter.output_names order)."""
    records = ncnn_graph(adapter)
    wanted = set(adapter.output_names)
    finals: Dict[str, np.ndarray] = {}
    ex = adapter.net.create_extractor()
    ex.set_light_mode(False)  # keep every blob; in-place layers work on copies
    adapter.feed(ex, inputs)
    for rec in records:
        tensors = {}
        for top in rec["outputs"]:
            ret, mat = ex.extract(top)
            if ret != 0:
                tensors[top] = {"error": "extract returned %d" % ret}
                continue
            arr = np.array(mat, copy=True)
            if top in wanted:
                finals[top] = arr
            tensors[top] = sink(top, arr)
        rec["tensors"] = tensors
    for name in adapter.output_names:
        if name not in finals:
            ret, mat = ex.extract(name)
            if ret != 0:
                raise RuntimeError("ncnn extract(%r) returned %d" % (name, ret))
            finals[name] = np.array(mat, copy=True)
    return records, [finals[n] for n in adapter.output_names]


def ncnn_extract_times(adapter, inputs: Sequence[np.ndarray], iterations: int
                       ) -> List[Dict[str, object]]:
    """Approximate per-layer times: the time each layer's extract() adds, with every earlier
    blob already computed. Each extract also waits for (and, on Vulkan, downloads) its blob,
    so this is not how the layers run inside one normal inference."""
    records = ncnn_graph(adapter)
    samples: List[List[float]] = [[] for _ in records]
    for it in range(iterations + 1):
        ex = adapter.net.create_extractor()
        ex.set_light_mode(False)
        adapter.feed(ex, inputs)
        for i, rec in enumerate(records):
            t0 = time.perf_counter()
            for top in rec["outputs"]:
                ex.extract(top)
            if it > 0:  # the first pass builds pipelines and allocators
                samples[i].append((time.perf_counter() - t0) * 1e3)
    for rec, s in zip(records, samples):
        rec["ms"] = _median(s)
    return records


# -- MNN ----------------------------------------------------------------------------------------
_capsule_ptr = None


def _host_ptr(t) -> int:
    global _capsule_ptr
    try:
        cap = t.getHost()
        if cap is None:
            return 0
        if _capsule_ptr is None:
            api = ctypes.pythonapi
            api.PyCapsule_GetName.restype = ctypes.c_char_p
            api.PyCapsule_GetName.argtypes = [ctypes.py_object]
            api.PyCapsule_GetPointer.restype = ctypes.c_void_p
            api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
            _capsule_ptr = api
        name = _capsule_ptr.PyCapsule_GetName(cap)
        return int(_capsule_ptr.PyCapsule_GetPointer(cap, name) or 0)
    except Exception:
        return 0


def _mnn_host(MNN, t) -> np.ndarray:
    host = MNN.Tensor(t, MNN.Tensor_DimensionType_Caffe)
    t.copyToHostTensor(host)
    return np.array(host.getNumpyData(), copy=True)


def _mnn_feed(adapter, inputs: Sequence[np.ndarray]) -> None:
    MNN = adapter.MNN
    for t, x in zip(adapter.inputs, inputs):
        t.copyFrom(MNN.Tensor(x.shape, MNN.Halide_Type_Float, x, MNN.Tensor_DimensionType_Caffe))


def mnn_walk(adapter, inputs: Sequence[np.ndarray], sink: Sink):
    """Run the session once with callbacks; every op's outputs go to the sink.

    Returns (op records, the session's final outputs)."""
    MNN = adapter.MNN
    interp, session = adapter.interp, adapter.session
    _mnn_feed(adapter, inputs)
    producer: Dict[int, str] = {}
    for name, t in zip(adapter.input_names, adapter.inputs):
        p = _host_ptr(t)
        if p:
            producer[p] = "input:" + name
    records: List[Dict[str, object]] = []
    seen: Dict[str, int] = {}
    pending: Dict[str, object] = {}
    errors: List[str] = []

    def before(tensors, info):
        try:
            ins, ext = [], {}
            for j, t in enumerate(tensors):
                p = _host_ptr(t)
                src = producer.get(p) if p else None
                if src is None:
                    # a constant or a tensor made outside the ops we saw: keep its statistics
                    src = "const:%s:%d" % (info.getName(), j)
                    try:
                        ext[src] = _stats(_mnn_host(MNN, t))
                    except Exception as e:  # noqa: BLE001 - a statistic must not stop the run
                        ext[src] = {"error": str(e)[:200]}
                ins.append(src)
            pending["inputs"], pending["external"] = ins, ext
        except Exception as e:  # noqa: BLE001 - an exception must not cross into C++
            errors.append("before %s: %s" % (info.getName(), e))
        return True

    def after(tensors, info):
        try:
            name = info.getName()
            n = seen.get(name, 0)
            seen[name] = n + 1
            base = name if n == 0 else "%s#%d" % (name, n + 1)
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
                    rec["tensors"][key] = sink(key, _mnn_host(MNN, t))
                except Exception as e:  # noqa: BLE001
                    rec["tensors"][key] = {"error": str(e)[:200]}
                p = _host_ptr(t)
                if p:
                    producer[p] = key
            records.append(rec)
        except Exception as e:  # noqa: BLE001
            errors.append("after %s: %s" % (info.getName(), e))
        return True

    interp.runSessionWithCallBackInfo(session, before, after)
    if errors:
        raise RuntimeError("MNN callbacks failed: " + "; ".join(errors[:3]))
    finals = []
    for t, host in zip(adapter.outputs, adapter.host_out):
        t.copyToHostTensor(host)
        finals.append(np.array(host.getNumpyData(), copy=True))
    return records, finals


def mnn_op_times(adapter, inputs: Sequence[np.ndarray], iterations: int
                 ) -> List[Dict[str, object]]:
    """Per-op wall time between MNN's before and after callbacks (the op's own execution)."""
    interp, session = adapter.interp, adapter.session
    _mnn_feed(adapter, inputs)
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
        name = info.getName()
        n = state["seen"].get(name, 0)
        state["seen"][name] = n + 1
        key = name if n == 0 else "%s#%d" % (name, n + 1)
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
        interp.runSessionWithCallBackInfo(session, before, after)
    return [{"index": i, "name": k, "type": types[k], "mflops": flops.get(k),
             "ms": _median(samples.get(k, []))} for i, k in enumerate(order)]


def _median(xs: List[float]) -> Optional[float]:
    return statistics.median(xs) if xs else None


def walk(engine: str, adapter, inputs: Sequence[np.ndarray], sink: Sink):
    """(per-layer records, final outputs) of one run with every intermediate sent to sink."""
    if engine == "ncnn":
        return ncnn_walk(adapter, inputs, sink)
    if engine == "mnn":
        return mnn_walk(adapter, inputs, sink)
    raise ValueError("no per-layer outputs for engine %r (ncnn and MNN have them)" % engine)


def layer_times(engine: str, adapter, inputs: Sequence[np.ndarray], iterations: int):
    """(records with 'ms', how the times were taken)."""
    if engine == "mnn":
        return mnn_op_times(adapter, inputs, iterations), "mnn-callback"
    if engine == "ncnn":
        return ncnn_extract_times(adapter, inputs, iterations), "ncnn-extract-delta"
    raise ValueError("no per-layer timing for engine %r" % engine)
