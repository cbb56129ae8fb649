"""Per-layer tensors on the device (the device side of `harness diagnose`): .npz files that
stream one tensor at a time, and the sinks an adapter's walk() hands every intermediate tensor
to (write it to an .npz, or compare it against a reference on the spot), so the process holds one
intermediate at a time, not the whole model's. How an engine yields its intermediates is the
engine's adapter's walk() (harness_agent/engines/).

Standard library + numpy only, Python 3.9 syntax, relative imports.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from typing import Dict, List, Optional

import numpy as np

from .outputs import compare, describe
from .tolerance import TOLERANCES, Tolerance, within

# "Close enough to be the same tensor" when matching names by value (fp32 against fp32).
# fp32's relative bounds without its absolute floor: two different tensors of tiny values
# would both be within the floor of either, and name matching must tell them apart
MATCH = Tolerance(TOLERANCES["fp32"].rel_err, TOLERANCES["fp32"].cosine)


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
def tensor_stats(arr: np.ndarray) -> Dict[str, object]:
    """describe() without the checksum: what a layer record keeps of a tensor."""
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
        return tensor_stats(arr)




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
        d = tensor_stats(arr)
        name, how = self._choose(key, arr)
        d["match"] = how
        if name is None:
            return d
        r = self.ref.get(name)
        if self.candidates is not None:
            self.last_pos = max(self.last_pos, self.ref.pos.get(name, -1))
        d["ref_name"] = name
        rs = tensor_stats(r)
        d["ref"] = dict((k, rs[k]) for k in ("shape", "min", "max", "mean", "std", "nan", "inf"))
        d.update(compare(arr, r))
        return d


