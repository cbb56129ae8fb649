"""Suite files (TOML) loaded into typed, validated objects.

Validation is strict (see `harness.config.toml.Table`): an unknown key is an error, not ignored,
so a typo never silently drops a setting. Every error names the file, the key path and what was
expected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engines import adapter_class, known_engines
from .toml import Table, read_toml, type_name

if TYPE_CHECKING:
    from ..models.calibration_images import Preprocess

log = logging.getLogger(__name__)

# Input dtypes a suite, a flag or a model may name (numpy names; ONNX's are mapped to them).
DTYPES = ("float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8",
          "uint16", "uint32", "uint64", "bool")


@dataclass(frozen=True)
class InputSpec:
    """One model input: its shape (``()`` for a scalar) and where its values come from.

    dtype None: the dtype the model declares (float32 when it declares none; an .npy file's
    own dtype for a model that declares none). Values: ``npy`` (an .npy file, or an .npz with
    an array named like the input or a single array), else ``value`` (every element), else
    seeded random values: floats standard normal, or uniform in ``range`` [lo, hi); integers
    uniform in ``range`` [lo, hi] inclusive (default: harness.models.inputs.DEFAULT_INT_RANGE);
    bools True/False at random."""
    shape: tuple[int, ...]
    name: str | None = None
    dtype: str | None = None
    seed: int = 0
    npy: Path | None = None
    range: tuple[float, float] | None = None
    value: float | int | bool | None = None

    def key(self) -> str:
        """What the input data depends on (the inputs cache key)."""
        if self.npy:
            src = f"npy:{self.npy}"
        elif self.value is not None:
            src = f"value:{self.value!r}"
        else:
            src = f"seed:{self.seed}" + (f":range:{list(self.range)}" if self.range else "")
        return f"{self.name or ''}:{'x'.join(map(str, self.shape))}:{self.dtype}:{src}"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builtin: str | None = None
    onnx: Path | None = None
    # engine-native model files by suite key (the converters registry names the keys)
    native: dict[str, Path] = field(default_factory=dict)
    inputs: tuple[InputSpec, ...] = ()
    # Per-model restrictions of the suite-wide matrix (None: use the suite's).
    engines: tuple[str, ...] | None = None
    backends: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    threads: tuple[int, ...] | None = None
    # int8 calibration (harness.models.quantize): a folder of .npy/.npz files, one sample
    # each; without one, this many seeded random inputs
    calibration: Path | None = None
    calibration_samples: int | None = None
    # how an image of an image calibration folder becomes an input (None: the defaults)
    preprocess: Preprocess | None = None


@dataclass(frozen=True)
class Measure:
    warmup: int = 3
    min_iterations: int = 10
    min_seconds: float = 1.0
    max_iterations: int = 100000
    processes: int = 1
    timeout_s: float = 300.0
    memory_limit_mb: int | None = None  # RLIMIT_AS for the agent (simulate a small board)
    # Thermal cool-down before each measurement process: a fixed pause (s), then optionally
    # a wait until the hottest zone is within cooldown_to_c °C of the sweep's start, at most
    # cooldown_max_s seconds (harness_agent.cooldown).
    cooldown_s: float = 0.0
    cooldown_to_c: float | None = None
    cooldown_max_s: float = 300.0
    # Sustained run: the model back to back for this many seconds in one process, kept per
    # second with temperature and frequency (harness_agent.sustained); None: the usual loop.
    sustained_s: float | None = None

    def agent_timeout_s(self) -> float:
        """The deadline of one measurement process: timeout_s plus the longest cool-down
        and the sustained run, which the agent spends on purpose."""
        wait = self.cooldown_s + (self.cooldown_max_s if self.cooldown_to_c is not None else 0)
        return self.timeout_s + wait + (self.sustained_s or 0.0)


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path | None
    models: tuple[ModelSpec, ...]
    engines: dict[str, tuple[str, ...]]
    backends: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] = ("fp32",)
    threads: tuple[int, ...] = (1,)
    # CPUs per configuration: "all", "big", "little" or a list such as "0-3" (harness_agent.cores)
    cores: tuple[str, ...] = ("all",)
    measure: Measure = field(default_factory=Measure)
    engine_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (engine, version label) -> harness.builds.source.EngineSource for versions built from
    # source; other versions are wheel versions (or "installed")
    sources: dict = field(default_factory=dict)
    # int8 for ncnn: the source (EngineSource) its quantization tools are built from for the
    # coordinator's machine (``[quantize] ncnn_tools``, else the suite's first ncnn source;
    # None: ncnn int8 rows are unsupported), and ncnn2table's method (kl, aciq, eq)
    ncnn_tools: Any = None
    ncnn_method: str = "kl"


NCNN_METHODS = ("kl", "aciq", "eq")  # ncnn2table's method= values


def _path(v: Table, key: str, base: Path, must_exist: bool = True) -> Path | None:
    s = v.get(key, str)
    if s is None:
        return None
    p = Path(s).expanduser()
    p = p if p.is_absolute() else (base / p)
    if must_exist and not p.is_file():
        v.fail(key, "an existing file", f"{s!r} (looked at {p})")
    return p.resolve()


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _input(v: Table, base: Path) -> InputSpec:
    v.keys(("name", "shape", "dtype", "seed", "npy", "range", "value"))
    npy = _path(v, "npy", base)
    name = v.get("name", str)
    # [] is a scalar (0-d) input
    shape = () if v.t.get("shape") == [] else v.int_list("shape", minimum=1)
    if shape is None and npy is None:
        v.fail("shape", "a shape such as [1, 3, 224, 224] (or an npy file)", "nothing")
    if shape is None:
        from ..models.inputs import npy_shape
        shape = npy_shape(npy, name)
    dtype = v.get("dtype", str)
    if dtype is not None and dtype not in DTYPES:
        v.fail("dtype", "one of " + ", ".join(DTYPES), repr(dtype))
    rng = v.t.get("range")
    if rng is not None and not (isinstance(rng, list) and len(rng) == 2
                                and all(_number(x) for x in rng) and rng[0] <= rng[1]):
        v.fail("range", "[lo, hi] with lo <= hi", repr(rng))
    value = v.t.get("value")
    if value is not None and not (_number(value) or isinstance(value, bool)):
        v.fail("value", "a number or a boolean", repr(value))
    given = [k for k in ("npy", "range", "value") if k in v.t]
    if len(given) > 1:
        v.fail(given[1], "one of npy, range or value", " and ".join(given))
    return InputSpec(shape=tuple(shape), name=name, dtype=dtype,
                     seed=v.get("seed", int, 0), npy=npy,
                     range=(rng[0], rng[1]) if rng is not None else None, value=value)


def _model(v: Table, base: Path, engines: list[str]) -> ModelSpec:
    from ..models.converters import native_suite_keys
    from ..models.registry import builtin_names
    groups = native_suite_keys()
    v.keys(("name", "builtin", "onnx", *(k for g in groups for k in g), "inputs", "shape",
            "engines", "backends", "precisions", "threads", "calibration",
            "calibration_samples", "preprocess"))
    name = v.get("name", str, required=True)
    builtin = v.get("builtin", str)
    if builtin is not None and builtin not in builtin_names():
        v.fail("builtin", "one of " + ", ".join(builtin_names()), repr(builtin))
    onnx = _path(v, "onnx", base)
    native: dict[str, Path] = {}
    for group in groups:
        paths = {k: _path(v, k, base) for k in group}
        given = [k for k, p in paths.items() if p is not None]
        if given and len(given) < len(group):
            missing = next(k for k in group if k not in given)
            v.fail(missing, " and ".join(group) + " together", "only " + ", ".join(given))
        native.update({k: p for k, p in paths.items() if p is not None})
    if builtin is None and onnx is None and not native:
        v.fail("", "a model source: builtin, onnx, " + " or ".join("+".join(g) for g in groups),
               "none")
    if builtin is not None and (onnx or native):
        v.fail("builtin", "either builtin or file paths, not both", "both")
    if onnx is not None:
        _check_onnx_file(v, "onnx", onnx)
    if "shape" in v.t and "inputs" in v.t:
        v.fail("shape", "either shape or inputs, not both", "both")
    if "inputs" in v.t:
        raw = v.t["inputs"]
        if not isinstance(raw, list) or not raw:
            v.fail("inputs", "a non-empty array of tables", type_name(raw))
        inputs = tuple(_input(v.item("inputs", i), base)
                       for i in range(len(raw)))
    elif "shape" in v.t:
        inputs = (InputSpec(shape=v.int_list("shape")),)
    elif builtin is not None:
        from ..models.registry import default_inputs
        inputs = default_inputs(builtin)
    elif onnx is not None:
        from ..models.registry import builtin_for_file, default_inputs
        known = builtin_for_file(onnx)  # the PP-OCR files themselves have dynamic H and W
        inputs = default_inputs(known) if known else _declared_inputs(v, onnx)
    else:
        inputs = _native_declared(ModelSpec(name=name, native=native))
        if inputs is None:
            v.fail("inputs", "input shapes (shape = [...] or [[models.inputs]])", "nothing")
    calibration, samples = _calibration(v, base)
    preprocess = None
    if "preprocess" in v:
        from ..models.calibration_images import parse_preprocess
        if calibration is None:
            v.fail("preprocess", "preprocess only with calibration (a folder of images)",
                   "no calibration folder")
        preprocess = parse_preprocess(v.sub("preprocess"))
        from ..models.calibration_images import image_files
        if not image_files(calibration):  # it would be ignored: say so now
            v.fail("preprocess", "preprocess only with a calibration folder of images",
                   f"{calibration}, which holds no images")
    return ModelSpec(
        name=name, builtin=builtin, onnx=onnx, native=native,
        inputs=inputs, engines=v.str_list("engines", engines),
        backends=v.str_list("backends"), precisions=v.str_list("precisions"),
        threads=v.int_list("threads"), calibration=calibration,
        calibration_samples=samples, preprocess=preprocess)


def _calibration(v: Table, base: Path) -> tuple[Path | None, int | None]:
    """A model's calibration folder (it must exist) and random sample count (>= 1)."""
    raw = v.get("calibration", str)
    folder = None
    if raw is not None:
        p = Path(raw).expanduser()
        folder = (p if p.is_absolute() else base / p).resolve()
        if not folder.is_dir():
            v.fail("calibration", "an existing folder of .npy/.npz calibration samples or "
                   "images",
                   f"{raw!r} (looked at {folder})")
    samples = v.get("calibration_samples", int)
    if samples is not None and samples < 1:
        v.fail("calibration_samples", "a value >= 1", repr(samples))
    if samples is not None and folder is not None:
        v.fail("calibration_samples", "either calibration (a folder) or calibration_samples",
               "both")
    return folder, samples


def _declared_inputs(v: Table, path: Path) -> tuple[InputSpec, ...]:
    """Input shapes the ONNX file declares (dtypes are the model's, filled in when the inputs
    are made); a dynamic batch becomes 1, other dynamic dims need explicit shapes."""
    from ..models.inputs import onnx_inputs
    out = []
    for inp in onnx_inputs(path):
        if inp.dims is None:
            v.fail("inputs", f"a shape for input {inp.name!r}, whose rank the model does not "
                   "declare (shape = [...] in a suite, --shape on the command line)", "nothing")
        dims = []
        for i, d in enumerate(inp.dims):
            if d is not None:
                dims.append(d)
            elif i == 0:
                dims.append(1)
            else:
                v.fail("inputs", f"shapes for input {inp.name!r}, whose dim {i} is dynamic "
                       "(shape = [...] in a suite, --shape on the command line)", "nothing")
        out.append(InputSpec(shape=tuple(dims), name=inp.name))
    return tuple(out)


def _native_declared(spec: ModelSpec) -> tuple[InputSpec, ...] | None:
    """The inputs a native model file declares with static shapes (an .mnn file read with MNN
    where it is installed); None when it declares none or a shape is dynamic."""
    from ..models.converters import native_inputs
    declared = native_inputs(spec)
    if not declared or any(m.dims is None or None in m.dims for m in declared):
        return None
    return tuple(InputSpec(shape=tuple(m.dims), name=m.name) for m in declared)


def _check_onnx_file(v: Table, key: str, path: Path) -> None:
    # A cheap sniff (ONNX is a protobuf ModelProto: field 1 ir_version is a varint, tag 0x08),
    # so a wrong file is caught at load time, not deep inside a converter.
    with open(path, "rb") as f:
        head = f.read(1)
    if head != b"\x08":
        v.fail(key, "an ONNX model file", f"{path.name}, which is not ONNX")


def _engines(v: Table, base: Path) -> tuple[dict[str, tuple[str, ...]], dict]:
    """Engine -> version labels, and (engine, label) -> EngineSource for the versions given
    as source (a table with ``source``) rather than as a wheel version string."""
    from ..builds.source import looks_like_tarball
    raw = v.t.get("engines")
    if raw is None:
        v.fail("engines", "a table such as engines = { mnn = \"installed\" }", "nothing")
    if isinstance(raw, list) and all(isinstance(e, str) for e in raw):
        raw = {e: "installed" for e in raw}  # engines = ["mnn", "ncnn"]: what is installed
    ev = Table(v.where, raw, "engines")
    ev.keys(known_engines())
    out, sources = {}, {}
    for e in ev.t:
        items = ev.t[e] if isinstance(ev.t[e], list) else [ev.t[e]]
        labels = []
        for i, item in enumerate(items):
            if isinstance(item, dict):
                src = _source(Table(ev.where, item, f"engines.{e}[{i}]"), e, base)
                sources[(e, src.name)] = src
                labels.append(src.name)
            elif isinstance(item, str):
                if "/" in item or looks_like_tarball(item):
                    ev.fail(e, "a wheel version; a source goes in { source = \"...\" }",
                            repr(item))
                labels.append(item)
            else:
                ev.fail(e, "version strings or { source = ... } tables", repr(item))
        if not labels:
            ev.fail(e, "at least one version", "an empty list")
        if len(set(labels)) < len(labels):
            ev.fail(e, "distinct versions (give each source its own name = ...)",
                    ", ".join(labels))
        out[e] = tuple(labels)
    if not out:
        v.fail("engines", "at least one engine", "an empty table")
    return out, sources


def _source(t: Table, engine: str, base: Path):
    """An EngineSource from ``{ source = PATH, ref, name, backends, cmake }``."""
    import tarfile

    from ..builds.recipes import known as buildable, recipe_for
    from ..builds.source import EngineSource, default_name
    t.keys(("source", "ref", "name", "backends", "cmake"))
    if engine not in buildable():
        t.fail("source", f"an engine with a build recipe ({', '.join(buildable())})", engine)
    raw = t.get("source", str, required=True)
    p = Path(raw).expanduser()
    p = (p if p.is_absolute() else base / p).resolve()
    if not p.exists():
        t.fail("source", "an existing source tarball or git checkout", f"{raw!r} (looked at {p})")
    ref = t.get("ref", str)
    if ref is not None and not p.is_dir():
        t.fail("ref", "a ref only with a git checkout as source", repr(ref))
    if p.is_dir() and not (p / ".git").exists():
        t.fail("source", "a git checkout (a folder with .git) or a tarball", str(p))
    if p.is_file() and not tarfile.is_tarfile(p):
        t.fail("source", "a source tarball (.tar.xz, .tar.gz, .tgz, .tar) or a git checkout",
               f"{raw!r}, which is not a tar archive")
    backends = t.str_list("backends", choices=recipe_for(engine).BACKENDS, default=("cpu",))
    cmake = t.str_list("cmake", default=())
    for flag in cmake:
        if not flag.startswith("-D"):
            t.fail("cmake", "CMake cache flags such as \"-DMNN_AVX512=ON\"", repr(flag))
    name = t.get("name", str) or default_name(str(p), ref)
    if name == "installed":
        t.fail("name", "a label other than \"installed\" (it means the host's own engine)",
               repr(name))
    return EngineSource(engine=engine, path=str(p), name=name, ref=ref,
                        backends=tuple(dict.fromkeys(("cpu",) + backends)), cmake_args=cmake)


def _check_matrix(v: Table, engines: dict, backends, precisions) -> None:
    allowed_b = set().union(*(adapter_class(e).BACKENDS for e in engines))
    allowed_p = set().union(*(adapter_class(e).PRECISIONS for e in engines))
    for b in backends:
        if b not in allowed_b:
            v.fail("backends", "one of " + ", ".join(sorted(allowed_b)), repr(b))
    for p in precisions:
        if p not in allowed_p:
            v.fail("precisions", "one of " + ", ".join(sorted(allowed_p)), repr(p))


def parse_suite(data: dict, where: str, base: Path, path: Path | None = None) -> Suite:
    """A Suite from TOML-shaped `data`; `where` names the source in messages, `base` is the
    directory relative model paths resolve against. Raises InputError on invalid data."""
    v = Table(where, data)
    v.keys(("name", "description", "engines", "backends", "precisions", "threads", "cores",
            "measure", "models", "engine_options", "quantize"))
    engines, sources = _engines(v, base)
    backends = v.str_list("backends", default=("cpu",))
    precisions = v.str_list("precisions", default=("fp32",))
    _check_matrix(v, engines, backends, precisions)
    threads = v.int_list("threads", default=(1,))
    cores = _cores(v)
    measure = Measure()
    if "measure" in v.t:
        mv = v.sub("measure")
        mv.keys(("warmup", "min_iterations", "min_seconds", "max_iterations", "processes",
                 "timeout_s", "memory_limit_mb", "cooldown_s", "cooldown_to_c",
                 "cooldown_max_s", "sustained_s"))
        measure = Measure(
            warmup=mv.get("warmup", int, measure.warmup),
            min_iterations=mv.get("min_iterations", int, measure.min_iterations),
            min_seconds=mv.get("min_seconds", float, measure.min_seconds),
            max_iterations=mv.get("max_iterations", int, measure.max_iterations),
            processes=mv.get("processes", int, measure.processes),
            timeout_s=mv.get("timeout_s", float, measure.timeout_s),
            memory_limit_mb=mv.get("memory_limit_mb", int, None),
            cooldown_s=mv.get("cooldown_s", float, measure.cooldown_s),
            cooldown_to_c=mv.get("cooldown_to_c", float, None),
            cooldown_max_s=mv.get("cooldown_max_s", float, measure.cooldown_max_s),
            sustained_s=mv.get("sustained_s", float, None))
        for key, lo in (("warmup", 0), ("min_iterations", 1), ("max_iterations", 1),
                        ("processes", 1), ("min_seconds", 0), ("timeout_s", 0.001),
                        ("cooldown_s", 0), ("cooldown_to_c", 0), ("cooldown_max_s", 0),
                        ("sustained_s", 1)):
            value = getattr(measure, key)
            if value is not None and value < lo:
                mv.fail(key, f"a value >= {lo}", repr(value))
    raw_models = v.t.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        v.fail("models", "at least one [[models]] entry", type_name(raw_models)
               if raw_models is not None else "nothing")
    models = tuple(_model(v.item("models", i), base, list(engines))
                   for i in range(len(raw_models)))
    names = [m.name for m in models]
    for n in names:
        if names.count(n) > 1:
            v.fail("models", "unique model names", f"{n!r} twice")
    for i, m in enumerate(models):
        mv = v.item("models", i)
        _check_matrix(mv, {e: () for e in (m.engines or engines)}, m.backends or (),
                      m.precisions or ())
    opts = {}
    if "engine_options" in v.t:
        ov = v.sub("engine_options")
        ov.keys(tuple(engines))
        opts = {e: dict(ov.sub(e).t) for e in ov.t}
    tools, method = _quantize(v, base, sources)
    return Suite(name=v.get("name", str, Path(where).stem), path=path, models=models,
                 engines=engines, backends=backends, precisions=precisions, threads=threads,
                 cores=cores, measure=measure, engine_options=opts, sources=sources,
                 ncnn_tools=tools, ncnn_method=method)


def _quantize(v: Table, base: Path, sources: dict) -> tuple[Any, str]:
    """``[quantize]``: ``ncnn_tools`` (a tarball or git checkout path, or a table like an
    engine source entry: ``{ source, ref, cmake }``) and ``ncnn_method``. Without
    ``ncnn_tools``, the suite's first ncnn source entry builds the tools, if it has one."""
    tools = next((s for (e, _), s in sources.items() if e == "ncnn"), None)
    if "quantize" not in v.t:
        return tools, "kl"
    q = v.sub("quantize")
    q.keys(("ncnn_tools", "ncnn_method"))
    raw = q.t.get("ncnn_tools")
    if isinstance(raw, str):
        raw = {"source": raw}
    if raw is not None:
        if not isinstance(raw, dict):
            q.fail("ncnn_tools", "an ncnn source tarball or git checkout path, or "
                   "{ source = PATH, ref = REF }", type_name(raw))
        tools = _source(Table(q.where, raw, "quantize.ncnn_tools"), "ncnn", base)
    method = q.get("ncnn_method", str, "kl")
    if method not in NCNN_METHODS:
        q.fail("ncnn_method", "one of " + ", ".join(NCNN_METHODS), repr(method))
    return tools, method


def _cores(v: Table) -> tuple[str, ...]:
    """The suite's `cores` values: all, big, little or CPU lists ("0-3", "0,2"); an integer
    is one CPU."""
    from harness_agent.cores import valid_spec

    def text(x):
        return str(x) if isinstance(x, int) and not isinstance(x, bool) else x

    raw = v.t.get("cores")
    norm = Table(v.where, {"cores": [text(x) for x in raw] if isinstance(raw, list)
                           else text(raw)} if raw is not None else {}, v.path)
    items = norm.str_list("cores", default=("all",))
    for c in items:
        if not valid_spec(c):
            v.fail("cores", 'all, big, little or a CPU list such as "0-3" or "0,2"', repr(c))
    return tuple(dict.fromkeys(items))


def load_suite(path: str | Path) -> Suite:
    """The suite in a TOML file; relative model paths resolve against the file's directory.

    Raises InputError (one line: file, key path, what was expected) on any invalid setting."""
    p = Path(path)
    suite = parse_suite(read_toml(p, "suite"), str(path), p.parent.resolve(), p.resolve())
    log.info("suite %s from %s: %d model(s), engines %s", suite.name, p, len(suite.models),
             ", ".join(f"{e} {'/'.join(v)}" for e, v in suite.engines.items()))
    return suite
