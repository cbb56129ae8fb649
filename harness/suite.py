"""Suite files (TOML) loaded into typed, validated objects.

Validation is strict: an unknown key is an error, not ignored, so a typo never silently drops a
setting. Every error names the file, the key path and what was expected.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engines import adapter_class, known_engines
from .errors import InputError

DTYPES = ("float32", "float16", "int32", "int64", "uint8")
MODEL_SOURCES = ("builtin", "onnx", "mnn", "ncnn_param")


@dataclass(frozen=True)
class InputSpec:
    shape: tuple[int, ...]
    name: str | None = None
    dtype: str = "float32"
    seed: int = 0
    npy: Path | None = None

    def key(self) -> str:
        src = f"npy:{self.npy}" if self.npy else f"seed:{self.seed}"
        return f"{self.name or ''}:{'x'.join(map(str, self.shape))}:{self.dtype}:{src}"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builtin: str | None = None
    onnx: Path | None = None
    mnn: Path | None = None
    ncnn_param: Path | None = None
    ncnn_bin: Path | None = None
    inputs: tuple[InputSpec, ...] = ()
    # Per-model restrictions of the suite-wide matrix (None: use the suite's).
    engines: tuple[str, ...] | None = None
    backends: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    threads: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Measure:
    warmup: int = 3
    min_iterations: int = 10
    min_seconds: float = 1.0
    max_iterations: int = 100000
    processes: int = 1
    timeout_s: float = 300.0
    memory_limit_mb: int | None = None  # RLIMIT_AS for the agent (simulate a small board)


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path | None
    models: tuple[ModelSpec, ...]
    engines: dict[str, tuple[str, ...]]
    backends: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] = ("fp32",)
    threads: tuple[int, ...] = (1,)
    measure: Measure = field(default_factory=Measure)
    engine_options: dict[str, dict[str, Any]] = field(default_factory=dict)


class _V:
    """Typed accessors over one TOML table that report errors with the full key path."""

    def __init__(self, where: str, table: Any, path: str):
        self.where, self.path = where, path
        if not isinstance(table, dict):
            self.fail("", "expected a table", type_name(table))
        self.t = table

    def fail(self, key: str, expected: str, got: Any = None):
        kp = f"{self.path}.{key}" if self.path and key else (key or self.path or "(top level)")
        what = f"{kp}: bad value" if got is None else f"{kp}: got {got}"
        raise InputError(self.where, what, expected)

    def keys(self, allowed: tuple[str, ...] | list[str]) -> None:
        for k in self.t:
            if k not in allowed:
                kp = f"{self.path}.{k}" if self.path else k
                raise InputError(self.where, f"{kp}: unknown key",
                                 "one of " + ", ".join(allowed))

    def get(self, key, kind, default=None, required=False):
        if key not in self.t:
            if required:
                self.fail(key, f"a required {kind.__name__ if isinstance(kind, type) else kind}",
                          "nothing")
            return default
        v = self.t[key]
        if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
            self.fail(key, "an integer", repr(v))
        if kind is float and (isinstance(v, bool) or not isinstance(v, (int, float))):
            self.fail(key, "a number", repr(v))
        if kind is str and not isinstance(v, str):
            self.fail(key, "a string", repr(v))
        return float(v) if kind is float else v

    def str_list(self, key, choices=None, default=None):
        if key not in self.t:
            return default
        v = self.t[key]
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            self.fail(key, "a non-empty list of strings", repr(v))
        if choices is not None:
            for x in v:
                if x not in choices:
                    self.fail(key, "one of " + ", ".join(choices), repr(x))
        return tuple(v)

    def int_list(self, key, default=None, minimum=1):
        if key not in self.t:
            return default
        v = self.t[key]
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if (not isinstance(v, list) or not v
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= minimum
                           for x in v)):
            self.fail(key, f"a non-empty list of integers >= {minimum}", repr(v))
        return tuple(v)

    def sub(self, key):
        return _V(self.where, self.t[key], f"{self.path}.{key}" if self.path else key)


def type_name(v: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


def _path(v: _V, key: str, base: Path, must_exist: bool = True) -> Path | None:
    s = v.get(key, str)
    if s is None:
        return None
    p = Path(s).expanduser()
    p = p if p.is_absolute() else (base / p)
    if must_exist and not p.is_file():
        v.fail(key, "an existing file", f"{s!r} (looked at {p})")
    return p.resolve()


def _input(v: _V, base: Path) -> InputSpec:
    v.keys(("name", "shape", "dtype", "seed", "npy"))
    npy = _path(v, "npy", base)
    shape = v.int_list("shape", minimum=1)
    if shape is None and npy is None:
        v.fail("shape", "a shape such as [1, 3, 224, 224] (or an npy file)", "nothing")
    if shape is None:
        import numpy as np
        shape = tuple(int(d) for d in np.load(npy, mmap_mode="r").shape)
    dtype = v.get("dtype", str, "float32")
    if dtype not in DTYPES:
        v.fail("dtype", "one of " + ", ".join(DTYPES), repr(dtype))
    return InputSpec(shape=tuple(shape), name=v.get("name", str), dtype=dtype,
                     seed=v.get("seed", int, 0), npy=npy)


def _model(v: _V, base: Path, engines: list[str]) -> ModelSpec:
    from .models.registry import builtin_names
    v.keys(("name", "builtin", "onnx", "mnn", "ncnn_param", "ncnn_bin", "inputs", "shape",
            "engines", "backends", "precisions", "threads"))
    name = v.get("name", str, required=True)
    builtin = v.get("builtin", str)
    if builtin is not None and builtin not in builtin_names():
        v.fail("builtin", "one of " + ", ".join(builtin_names()), repr(builtin))
    onnx = _path(v, "onnx", base)
    mnn = _path(v, "mnn", base)
    param = _path(v, "ncnn_param", base)
    nbin = _path(v, "ncnn_bin", base)
    if (param is None) != (nbin is None):
        v.fail("ncnn_bin" if nbin is None else "ncnn_param",
               "ncnn_param and ncnn_bin together", "only one of them")
    if builtin is None and onnx is None and mnn is None and param is None:
        v.fail("", "a model source: builtin, onnx, mnn or ncnn_param+ncnn_bin", "none")
    if builtin is not None and (onnx or mnn or param):
        v.fail("builtin", "either builtin or file paths, not both", "both")
    if onnx is not None:
        _check_onnx_file(v, "onnx", onnx)
    if "shape" in v.t and "inputs" in v.t:
        v.fail("shape", "either shape or inputs, not both", "both")
    if "inputs" in v.t:
        raw = v.t["inputs"]
        if not isinstance(raw, list) or not raw:
            v.fail("inputs", "a non-empty array of tables", type_name(raw))
        inputs = tuple(_input(_V(v.where, t, f"{v.path}.inputs[{i}]"), base)
                       for i, t in enumerate(raw))
    elif "shape" in v.t:
        inputs = (InputSpec(shape=v.int_list("shape")),)
    elif builtin is not None:
        from .models.registry import default_inputs
        inputs = default_inputs(builtin)
    elif onnx is not None:
        from .models.registry import builtin_for_file, default_inputs
        known = builtin_for_file(onnx)  # the PP-OCR files themselves have dynamic H and W
        inputs = default_inputs(known) if known else _declared_inputs(v, onnx)
    else:
        v.fail("inputs", "input shapes (shape = [...] or [[models.inputs]])", "nothing")
    return ModelSpec(
        name=name, builtin=builtin, onnx=onnx, mnn=mnn, ncnn_param=param, ncnn_bin=nbin,
        inputs=inputs, engines=v.str_list("engines", engines),
        backends=v.str_list("backends"), precisions=v.str_list("precisions"),
        threads=v.int_list("threads"))


def _declared_inputs(v: _V, path: Path) -> tuple[InputSpec, ...]:
    """Input shapes the ONNX file declares; a dynamic batch becomes 1, other dynamic dims need
    explicit shapes."""
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    out = []
    for inp in m.graph.input:
        if inp.name in inits:
            continue
        dims = []
        for i, d in enumerate(inp.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(d.dim_value)
            elif i == 0:
                dims.append(1)
            else:
                v.fail("inputs", f"shapes for input {inp.name!r}, whose dim {i} is dynamic "
                       "(shape = [...] in a suite, --shape on the command line)", "nothing")
        out.append(InputSpec(shape=tuple(dims), name=inp.name))
    return tuple(out)


def _check_onnx_file(v: _V, key: str, path: Path) -> None:
    # A cheap sniff (ONNX is a protobuf ModelProto: field 1 ir_version is a varint, tag 0x08),
    # so a wrong file is caught at load time, not deep inside a converter.
    with open(path, "rb") as f:
        head = f.read(1)
    if head != b"\x08":
        v.fail(key, "an ONNX model file", f"{path.name}, which is not ONNX")


def _engines(v: _V) -> dict[str, tuple[str, ...]]:
    raw = v.t.get("engines")
    if raw is None:
        v.fail("engines", "a table such as engines = { mnn = \"installed\" }", "nothing")
    if isinstance(raw, list):
        raw = {e: "installed" for e in raw} if all(isinstance(e, str) for e in raw) else raw
    ev = v.sub("engines")
    ev.keys(known_engines())
    out = {}
    for e in ev.t:
        vers = ev.str_list(e)
        out[e] = vers
    if not out:
        v.fail("engines", "at least one engine", "an empty table")
    return out


def _check_matrix(v: _V, engines: dict, backends, precisions) -> None:
    allowed_b = set().union(*(adapter_class(e).BACKENDS for e in engines))
    allowed_p = set().union(*(adapter_class(e).PRECISIONS for e in engines))
    for b in backends:
        if b not in allowed_b:
            v.fail("backends", "one of " + ", ".join(sorted(allowed_b)), repr(b))
    for p in precisions:
        if p not in allowed_p:
            v.fail("precisions", "one of " + ", ".join(sorted(allowed_p)), repr(p))


def parse_suite(data: dict, where: str, base: Path, path: Path | None = None) -> Suite:
    v = _V(where, data, "")
    v.keys(("name", "description", "engines", "backends", "precisions", "threads", "measure",
            "models", "engine_options"))
    engines = _engines(v)
    backends = v.str_list("backends", default=("cpu",))
    precisions = v.str_list("precisions", default=("fp32",))
    _check_matrix(v, engines, backends, precisions)
    threads = v.int_list("threads", default=(1,))
    measure = Measure()
    if "measure" in v.t:
        mv = v.sub("measure")
        mv.keys(("warmup", "min_iterations", "min_seconds", "max_iterations", "processes",
                 "timeout_s", "memory_limit_mb"))
        measure = Measure(
            warmup=mv.get("warmup", int, measure.warmup),
            min_iterations=mv.get("min_iterations", int, measure.min_iterations),
            min_seconds=mv.get("min_seconds", float, measure.min_seconds),
            max_iterations=mv.get("max_iterations", int, measure.max_iterations),
            processes=mv.get("processes", int, measure.processes),
            timeout_s=mv.get("timeout_s", float, measure.timeout_s),
            memory_limit_mb=mv.get("memory_limit_mb", int, None))
        for key, lo in (("warmup", 0), ("min_iterations", 1), ("max_iterations", 1),
                        ("processes", 1), ("min_seconds", 0), ("timeout_s", 0.001)):
            if getattr(measure, key) < lo:
                mv.fail(key, f"a value >= {lo}", repr(getattr(measure, key)))
    raw_models = v.t.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        v.fail("models", "at least one [[models]] entry", type_name(raw_models)
               if raw_models is not None else "nothing")
    models = tuple(_model(_V(where, m, f"models[{i}]"), base, list(engines))
                   for i, m in enumerate(raw_models))
    names = [m.name for m in models]
    for n in names:
        if names.count(n) > 1:
            v.fail("models", "unique model names", f"{n!r} twice")
    for i, m in enumerate(models):
        mv = _V(where, raw_models[i], f"models[{i}]")
        _check_matrix(mv, {e: () for e in (m.engines or engines)}, m.backends or (),
                      m.precisions or ())
    opts = {}
    if "engine_options" in v.t:
        ov = v.sub("engine_options")
        ov.keys(tuple(engines))
        opts = {e: dict(ov.sub(e).t) for e in ov.t}
    return Suite(name=v.get("name", str, Path(where).stem), path=path, models=models,
                 engines=engines, backends=backends, precisions=precisions, threads=threads,
                 measure=measure, engine_options=opts)


def read_toml(path: str | Path, what: str) -> dict:
    """A TOML file's data, or one clear InputError (missing, not text, not TOML)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(str(path), f"{what} file not found", f"a TOML {what} file")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise InputError(str(path), f"not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise InputError(str(path), "not a text file", f"a TOML {what} file") from None


def load_suite(path: str | Path) -> Suite:
    p = Path(path)
    return parse_suite(read_toml(p, "suite"), str(path), p.parent.resolve(), p.resolve())
