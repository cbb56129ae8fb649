"""Model inputs: their names, dtypes and shapes in an ONNX graph, deterministic input data and
onnxruntime reference outputs, cached beside the converted models.

Inputs are matched to the model by name (an unnamed input takes the next model input in the
model's order), and every input set is kept in the model's input order. An input's dtype is the
one a suite or ``--shape`` gives, else the one the model declares, else an ``.npy`` file's own,
else float32. Integer inputs default to the small range DEFAULT_INT_RANGE, narrowed to the
table size when the input indexes a constant table directly (``Gather`` of an initializer).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..cache import cache_root, sha256_file, sha256_text
from ..config.suite import DTYPES, InputSpec
from ..errors import InputError
from ..store.atomic import atomic_write_bytes
from .shapes import format_shapes

# Integer inputs without a range or value: uniform in [0, 9] (inclusive). Small enough to be a
# valid index, token id or class id in most models, and never negative.
DEFAULT_INT_RANGE = (0, 9)


@dataclass(frozen=True)
class InputSet:
    """The inputs of one model at fixed shapes, as .npy files, with their references."""
    key: str  # stable id of (model source, inputs)
    shape_text: str  # "x:1x3x640x640", see shapes.format_shapes
    names: tuple[str, ...]  # model input names, in the model's order
    shapes: tuple[tuple[int, ...], ...]
    inputs: tuple[Path, ...]
    references: tuple[Path, ...]  # empty when there is no ONNX source
    output_names: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()  # numpy dtype name of each input file
    output_dtypes: tuple[str, ...] = ()  # numpy dtype name of each reference output
    # False when the names are placeholders (in0, ...) of a model that has none to match
    named: bool = True


@dataclass(frozen=True)
class ModelInput:
    """One input as an ONNX graph declares it."""
    name: str
    dtype: Optional[str]  # numpy name, None when the graph gives no element type
    dims: Optional[tuple[Optional[int], ...]]  # None dim: symbolic; None: unknown rank
    index_limit: Optional[int] = None  # rows of a constant table the input indexes directly


def _np_dtype(elem_type: int, where: str) -> Optional[str]:
    from onnx import helper
    if elem_type == 0:
        return None
    try:
        name = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        name = str(elem_type)
    if name not in DTYPES:
        raise InputError(where, f"input dtype {name} is not supported",
                         "one of " + ", ".join(DTYPES))
    return name


def onnx_inputs(path: Path) -> list[ModelInput]:
    """The real inputs of an ONNX graph (weights listed as inputs left out), in its order."""
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name: i for i in m.graph.initializer}
    limits: dict[str, int] = {}
    for node in m.graph.node:
        # ids that index a constant table directly (an embedding): keep them inside it
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[0] in inits:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            dims = list(inits[node.input[0]].dims)
            if dims and -len(dims) <= axis < len(dims):
                rows = int(dims[axis])
                limits[node.input[1]] = min(rows, limits.get(node.input[1], rows))
    out = []
    for inp in m.graph.input:
        if inp.name in inits:
            continue
        tt = inp.type.tensor_type
        dims = None
        if tt.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                         for d in tt.shape.dim)
        out.append(ModelInput(inp.name, _np_dtype(tt.elem_type, f"{path}: input {inp.name}"),
                              dims, limits.get(inp.name)))
    return out


def onnx_io_names(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(input names, output names) of an ONNX graph; weights listed as inputs are left out."""
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    ins = tuple(i.name for i in m.graph.input if i.name not in inits)
    return ins, tuple(o.name for o in m.graph.output)


def _load_array(path: Path, name: str | None) -> np.ndarray:
    """The array of an .npy file, or of an .npz file: the one named ``name``, else its only
    array. InputError when an .npz has neither."""
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # zipfile.BadZipFile is an OSError's cousin
        raise InputError(str(path), "is not a NumPy .npy/.npz array file "
                         f"({' '.join(str(e).split())[:120]})",
                         "an array written by numpy.save or numpy.savez") from None
    except Exception as e:  # noqa: BLE001 - np.load raises what its parsers raise
        raise InputError(str(path), f"cannot be read ({type(e).__name__}: {e})",
                         "an array written by numpy.save or numpy.savez") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        return data
    with data:
        keys = list(data.keys())
        if name in keys:
            return data[name]
        if len(keys) == 1:
            return data[keys[0]]
        raise InputError(str(path), f"no array named {name!r} among {', '.join(keys)}",
                         "an array named like the model input (or a single array)")


def npy_shape(path: Path, name: str | None = None) -> tuple[int, ...]:
    """The shape of an input file (.npy, or the input's array of an .npz)."""
    return tuple(int(d) for d in _load_array(path, name).shape)


def _check_fits(spec: InputSpec, dtype: np.dtype) -> None:
    """InputError when making this input would not fit in memory: a mistyped shape is one
    line, not a traceback (random values are drawn in 8-byte words before the cast)."""
    n = 1
    for d in spec.shape:
        n *= int(d)
    need = n * max(dtype.itemsize, 8)
    from harness_agent.sysinfo import mem_available_kb
    avail_kb = mem_available_kb()
    avail = None if avail_kb is None else avail_kb * 1024
    if avail is not None and need > avail:
        what = f"input {spec.name}" if spec.name else "input"
        raise InputError(what, f"shape {'x'.join(map(str, spec.shape))} needs "
                         f"{need / 2**30:.1f} GiB to generate",
                         f"a shape that fits in the {avail / 2**30:.1f} GiB available here")


def make_input(spec: InputSpec, index_limit: int | None = None) -> np.ndarray:
    """Input data of one input (see InputSpec for where values come from); ``index_limit``:
    the default integer range stays below it (rows of the table the input indexes).
    Raises InputError for a file that is not an array or a shape that cannot fit in memory."""
    dtype = np.dtype(spec.dtype or "float32")
    if spec.npy is None:
        _check_fits(spec, dtype)
    if spec.npy is not None:
        arr = _load_array(spec.npy, spec.name)
        if tuple(arr.shape) != tuple(spec.shape):
            raise InputError(str(spec.npy), f"input shape {arr.shape}", f"shape {spec.shape}")
        return np.asarray(arr).astype(dtype, copy=False)
    if spec.value is not None:
        return np.full(spec.shape, spec.value, dtype=dtype)
    rng = np.random.default_rng(spec.seed)
    if dtype.kind == "b":
        return np.asarray(rng.integers(0, 2, size=spec.shape).astype(bool))
    if dtype.kind == "f":
        if spec.range is not None:
            return np.asarray(rng.uniform(spec.range[0], spec.range[1], spec.shape), dtype)
        return np.asarray(rng.standard_normal(spec.shape), dtype)
    lo, hi = spec.range or DEFAULT_INT_RANGE
    if spec.range is None and index_limit is not None:
        hi = min(hi, index_limit - 1)
    info = np.iinfo(dtype)
    lo, hi = max(int(lo), info.min), min(int(hi), info.max)
    return np.asarray(rng.integers(lo, hi, size=spec.shape, endpoint=True), dtype)


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def bind_inputs(model_name: str, model: list[ModelInput] | None,
                specs: tuple[InputSpec, ...]) -> list[tuple[InputSpec, ModelInput | None]]:
    """Each input spec with the model input it feeds, in the model's order and with its dtype
    resolved. A named spec goes to the input of that name; unnamed ones take the remaining
    inputs in order; a model input left without one must have static dims (it gets seeded
    values). ``model`` None (no ONNX source): the specs as they are.

    Raises InputError for an unknown name, too many inputs or an input without a shape."""
    if model is None:
        return [(dataclasses.replace(s, dtype=s.dtype or _npy_dtype(s) or "float32"), None)
                for s in specs]
    by_name = {m.name: m for m in model}
    unknown = [s.name for s in specs if s.name is not None and s.name not in by_name]
    if unknown:
        raise InputError(model_name, f"no model input named {', '.join(map(str, unknown))}",
                         "one of " + ", ".join(by_name))
    given = {s.name: s for s in specs if s.name is not None}
    unnamed = [s for s in specs if s.name is None]
    free = [m for m in model if m.name not in given]
    if len(unnamed) > len(free) or (not given and len(unnamed) != len(model)):
        raise InputError(model_name, f"{len(specs)} input(s) given, the model has "
                         f"{len(model)}", ", ".join(by_name))
    for s, m in zip(unnamed, free):
        given[m.name] = s
    out = []
    for m in model:
        s = given.get(m.name)
        if s is None:
            if m.dims is None or any(d is None for d in m.dims):
                raise InputError(model_name, f"input {m.name!r} has no shape given and a "
                                 "dynamic one in the model", "a shape for every dynamic input")
            s = InputSpec(shape=tuple(int(d) for d in m.dims))  # type: ignore[arg-type]
        dtype = s.dtype or m.dtype or _npy_dtype(s) or "float32"
        out.append((dataclasses.replace(s, name=m.name, dtype=dtype), m))
    return out


def _npy_dtype(spec: InputSpec) -> str | None:
    if spec.npy is None:
        return None
    name = _load_array(spec.npy, spec.name).dtype.name
    return name if name in DTYPES else None


def prepare_inputs(model_name: str, onnx_path: Path | None, specs: tuple[InputSpec, ...],
                   source_sha: str, declared: list[ModelInput] | None = None) -> InputSet:
    """Write the inputs (and, with an ONNX source, fp32 1-thread onnxruntime references), in
    the model's input order. ``declared``: the inputs a native model file declares, used when
    there is no ONNX source.

    Raises InputError when the inputs do not fit the model (names, number, shapes)."""
    model = onnx_inputs(onnx_path) if onnx_path is not None else declared
    bound = bind_inputs(model_name, model, specs)
    specs = tuple(s for s, _ in bound)
    key = sha256_text(source_sha, "inputs-3", *(s.key() for s in specs),
                      *(sha256_file(s.npy) for s in specs if s.npy))[:24]
    d = cache_root() / "data" / key
    meta_path = d / "meta.json"
    named = model is not None or all(s.name for s in specs)
    names = [s.name or f"in{i}" for i, s in enumerate(specs)]
    outs: tuple[str, ...] = ()
    if onnx_path is not None:
        outs = onnx_io_names(onnx_path)[1]
    if not meta_path.exists():
        arrays = [make_input(s, m.index_limit if m else None) for s, m in bound]
        refs = []
        if onnx_path is not None:
            refs = _reference(model_name, onnx_path, names, arrays)
        for i, a in enumerate(arrays):
            atomic_write_bytes(d / f"in{i}.npy", _npy_bytes(a))
        for j, r in enumerate(refs):
            atomic_write_bytes(d / f"ref{j}.npy", _npy_bytes(r))
        meta = {"names": names, "shapes": [list(s.shape) for s in specs],
                "dtypes": [a.dtype.name for a in arrays], "n_refs": len(refs),
                "ref_dtypes": [r.dtype.name for r in refs],
                "reference": "onnxruntime fp32 1 thread" if refs else None}
        atomic_write_bytes(meta_path, json.dumps(meta).encode())
    meta = json.loads(meta_path.read_text())
    return InputSet(
        key=key, shape_text=format_shapes(zip(names, [s.shape for s in specs])),
        names=tuple(names),
        shapes=tuple(tuple(s.shape) for s in specs),
        inputs=tuple(d / f"in{i}.npy" for i in range(len(specs))),
        references=tuple(d / f"ref{j}.npy" for j in range(meta["n_refs"])),
        output_names=tuple(outs), dtypes=tuple(meta.get("dtypes") or ()),
        output_dtypes=tuple(meta.get("ref_dtypes") or ()), named=named)


def _reference(model_name: str, onnx_path: Path, names, arrays) -> list[np.ndarray]:
    import onnxruntime as ort
    from harness_agent.engines.onnxruntime import numpy_dtype
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    # fed by name, each in the dtype the model declares (a suite may override the dtype of the
    # input files; the reference is still the model's own computation)
    feed = {}
    for inp in sess.get_inputs():
        arr = arrays[names.index(inp.name)]
        feed[inp.name] = arr.astype(numpy_dtype(inp.type) or arr.dtype, copy=False)
    try:
        return [np.asarray(o) for o in sess.run(None, feed)]
    except Exception as e:  # onnxruntime reports shape mismatches as generic exceptions
        msg = "; ".join(ln.strip() for ln in str(e).strip().splitlines() if ln.strip())
        given = ", ".join(f"{n}:{'x'.join(map(str, a.shape))}" for n, a in feed.items())
        wants = ", ".join(f"{i.name}:{'x'.join(str(d) for d in i.shape)}"
                          for i in sess.get_inputs())
        raise InputError(model_name, f"the input ({given}) does not fit the model: {msg[:300]}",
                         f"the shapes the model declares ({wants}), e.g. with --shape or "
                         "shape = [...]") from None
