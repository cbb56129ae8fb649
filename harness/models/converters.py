"""Model formats and their converters: ONNX -> the format an engine loads, cached by content.

The registry ``CONVERTERS`` maps a model format (an adapter's ``MODEL_FORMAT``) to its
converter: how ONNX becomes that format, and which engine-native files of a model are already
in it. It is the one place outside ``harness_agent/engines/`` that knows format names; the
rest of the coordinator asks it. A conversion is cached under source sha256 + converter +
version + options, so a second preparation converts nothing.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

from ..cache import cache_root, sha256_file, sha256_text
from ..errors import HarnessError
from .inputs import onnx_inputs, onnx_io_names


class ConvertError(HarnessError):
    """A converter failed or is missing; the message ends with the converter's output (tail)."""


@dataclass(frozen=True)
class Artifact:
    """A model in one format: its files by role, and the blob names the agent feeds and reads."""
    format: str
    files: dict[str, Path]
    converter: str  # e.g. "pnnx 20261020 fp16=0", "" for files used as they are
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    sha256: str = ""
    # How the agent must feed the inputs, when the converter decided it (passed in the job as
    # "feed"): for ncnn, "batch_index" {blob: 0 when pnnx took axis 0 as the batch axis (the
    # agent drops it), None when pnnx kept every axis (the agent feeds the full rank)}, and
    # "dtype" {blob: numpy dtype pnnx's own test script feeds it in}.
    feed: dict = field(default_factory=dict)
    # the ONNX input names input_names stand for, in the same order (empty: same names)
    source_input_names: tuple[str, ...] = ()
    # a quantized model (harness.models.quantize): the tool and its settings, what calibrated
    # it, notes for the row (random calibration), and its op counts where the coordinator
    # reads them ({"int8_ops": n, "ops_total": m}, passed in the job as "quant")
    quantizer: str = ""
    calibration: str = ""
    notes: tuple[str, ...] = ()
    quant: dict = field(default_factory=dict)

    def blobs_for(self, names) -> list[str]:
        """The engine's input names for model input ``names`` (matched by name, in the order
        given); names this artifact does not know pass through unchanged."""
        src = list(self.source_input_names or self.input_names)
        return [self.input_names[src.index(n)] if n in src and len(src) == len(self.input_names)
                else n for n in names]


@dataclass(frozen=True)
class ConversionFailed:
    """Why a model has no artifact in a format; becomes a ``convert_error`` row (``status``
    "unsupported" where the tool cannot be had here, e.g. ncnn's int8 tools without a
    source to build them from)."""
    format: str
    reason: str  # one line
    status: str = "convert_error"


ArtifactOrFailure = Union[Artifact, ConversionFailed]


# -- running converters -------------------------------------------------------------------------
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise ConvertError(f"converter package {dist} is not installed") from None


def _run(cmd: list[str], cwd: Path, timeout: float = 900) -> str:
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConvertError(f"{Path(cmd[0]).name} timed out after {timeout:.0f} s") from None
    out = (p.stdout or "") + (p.stderr or "")
    if p.returncode != 0:
        raise ConvertError(f"{Path(cmd[0]).name} {_exit_text(p.returncode)}: {_tail(out)}")
    return out


def _exit_text(rc: int) -> str:
    """"exited 2", or "was killed by SIGSEGV" for a negative return code (a signal)."""
    if rc >= 0:
        return f"exited {rc}"
    import signal
    try:
        return f"was killed by {signal.Signals(-rc).name}"
    except ValueError:
        return f"was killed by signal {-rc}"


def _tail(text: str, n: int = 600) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return text[-n:]


def _cached(key: str, build: Callable[[Path], None]) -> Path:
    """Return the cache dir for key, building it in a temp dir and renaming when complete."""
    final = cache_root() / "models" / key
    if (final / "meta.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}."))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same conversion first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def pnnx_binary() -> Path:
    """The pnnx executable of the installed pnnx package; ConvertError when absent."""
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        raise ConvertError("pnnx is not installed (pip install pnnx)")
    # The package's Python wrapper imports torch; the binary beside it needs nothing.
    for loc in spec.submodule_search_locations:
        exe = Path(loc) / "pnnx"
        if exe.is_file():
            return exe
    raise ConvertError("pnnx binary missing from the installed pnnx package "
                       f"({', '.join(spec.submodule_search_locations)})")


# -- one converter per format -------------------------------------------------------------------
_MNNCONVERT = "import sys, _tools; _tools.mnnconvert(sys.argv)"


def to_mnn(src: Path, input_shapes: list[tuple[int, ...]] | None = None,
           input_dtypes: list[str] | None = None, extra_args: tuple[str, ...] = ()) -> Artifact:
    """ONNX -> .mnn with MNN's converter (input shapes stay as the ONNX file has them);
    ``extra_args``: more converter flags (``--weightQuantBits 8``), part of the cache key and
    of the ``converter`` text."""
    ver = _version("MNN")
    converter = " ".join((f"mnnconvert {ver}",) + tuple(extra_args))
    sha = sha256_file(src)
    key = sha256_text(sha, "mnn", converter)[:24]

    def build(d: Path) -> None:
        # The converter's extension is called directly: the wheel's `mnnconvert` wrapper sends
        # usage telemetry and, when its logging SDK is missing, runs `pip install` of it, which
        # downgrades protobuf under onnx.
        out = _run([sys.executable, "-c", _MNNCONVERT, "mnnconvert", "-f", "ONNX", "--modelFile",
                    str(src), "--MNNModel", str(d / "model.mnn"), "--bizCode", "harness",
                    *extra_args], d)
        if "Converted Success" not in out or not (d / "model.mnn").exists():
            raise ConvertError(f"{converter} did not convert: {_tail(out)}")
        (d / "convert.log").write_text(out)
        (d / "meta.json").write_text(json.dumps({"converter": converter, "source": sha}))

    d = _cached(key, build)
    ins, outs = onnx_io_names(src)
    f = d / "model.mnn"
    return Artifact("mnn", {"mnn": f}, converter, ins, outs, sha256_file(f))


# numpy dtype -> pnnx's type suffix in inputshape= (pnnx's ir.cpp type_to_string)
_PNNX_TYPES = {"float32": "f32", "float64": "f64", "float16": "f16", "int32": "i32",
               "int64": "i64", "int16": "i16", "int8": "i8", "uint8": "u8", "bool": "bool"}


def pnnx_inputshape(input_shapes: list[tuple[int, ...]], input_dtypes: list[str]) -> str:
    """pnnx's ``inputshape=`` value: every input with its type, in the model's input order,
    e.g. ``[1,2]i64,[1,3,8,8]f32`` (``[]`` for a scalar)."""
    if len(input_dtypes) != len(input_shapes):
        raise ConvertError(f"{len(input_shapes)} input shapes but {len(input_dtypes)} dtypes")
    bad = [d for d in input_dtypes if d not in _PNNX_TYPES]
    if bad:
        raise ConvertError(f"pnnx takes no input of dtype {', '.join(bad)}")
    return ",".join("[" + ",".join(map(str, s)) + "]" + _PNNX_TYPES[d]
                    for s, d in zip(input_shapes, input_dtypes))


def to_ncnn(src: Path, input_shapes: list[tuple[int, ...]],
            input_dtypes: list[str] | None = None) -> Artifact:
    """ONNX -> ncnn .param/.bin with pnnx, which fixes the input shapes and types into the
    graph. ``input_shapes``/``input_dtypes``: one per ONNX input, in the model's order
    (dtypes default to the model's declared ones, float32 where it declares none)."""
    # fp16=0: pnnx stores weights as fp16 by default, which on PP-OCRv4 det drops the output's
    # cosine to the fp32 reference to ~0.05; runtime fp16 is chosen by ncnn's options instead.
    opts = "fp16=0"
    if input_dtypes is None:
        input_dtypes = [i.dtype or "float32" for i in onnx_inputs(src)]
    if len(input_shapes) != len(input_dtypes):
        raise ConvertError(f"pnnx needs every input: {len(input_shapes)} shape(s) given, the "
                           f"model has {len(input_dtypes)} input(s)")
    shapes = pnnx_inputshape(input_shapes, input_dtypes)
    args = [f"inputshape={shapes}"]
    if any(len(s) == 0 for s in input_shapes):
        # pnnx's inputshape= cannot say 0-d ("[]i64" is misread); it reads every input's shape
        # and type from the model itself when none is given, which serves when they are ours
        args = []
        model = onnx_inputs(src)
        if [tuple(i.dims or ()) for i in model] != [tuple(s) for s in input_shapes] or \
                [i.dtype for i in model] != list(input_dtypes):
            raise ConvertError("pnnx's inputshape= cannot give a 0-d (scalar) input and the "
                               "model does not declare the shapes and types asked for ("
                               + shapes + ")")
    converter = f"pnnx {_version('pnnx')} {opts}"
    sha = sha256_file(src)
    # "feed-2": the cache entry records how pnnx wants each input fed (batch axis or not, and
    # in which dtype)
    key = sha256_text(sha, "ncnn", converter, shapes, "feed-2")[:24]

    def build(d: Path) -> None:
        os.symlink(src, d / "model.onnx")
        out = _run([str(pnnx_binary()), "model.onnx", *args, opts], d)
        param, binf = d / "model.ncnn.param", d / "model.ncnn.bin"
        if not param.exists() or not binf.exists():
            raise ConvertError(f"pnnx wrote no ncnn files: {_tail(out)}")
        batch_index = _pnnx_batch_index(d / "model_ncnn.py")
        blob_dtypes = _pnnx_input_dtypes(d / "model_ncnn.py")
        # Keep only what is needed: pnnx also writes large intermediate onnx/pnnx files.
        for p in d.iterdir():
            if p.name not in ("model.ncnn.param", "model.ncnn.bin"):
                p.unlink()
        (d / "convert.log").write_text(out)
        (d / "meta.json").write_text(json.dumps({"converter": converter, "source": sha,
                                                 "inputshape": shapes,
                                                 "batch_index": batch_index,
                                                 "dtype": blob_dtypes}))

    d = _cached(key, build)
    ins, outs = onnx_io_names(src)
    param, binf = d / "model.ncnn.param", d / "model.ncnn.bin"
    meta = json.loads((d / "meta.json").read_text())
    names = tuple(f"in{i}" for i in range(len(ins)))
    # pnnx names blobs in0.. and out0.. in the order of the ONNX graph's inputs and outputs.
    return Artifact("ncnn", {"param": param, "bin": binf}, converter, names,
                    tuple(f"out{i}" for i in range(len(outs))),
                    sha256_text(sha256_file(param), sha256_file(binf)),
                    feed={"batch_index": dict(meta.get("batch_index") or {}),
                          "dtype": dict(meta.get("dtype") or {})},
                    source_input_names=ins)


# pnnx's own ncnn test script feeds each input as
#   ex.input("in0", ncnn.Mat(in0.numpy(), batch_index=0).clone())
# where batch_index=0 means "axis 0 is the batch axis, drop it" and pnnx writes 233 (no such
# axis) when it found no batch axis and laid the blob out with every axis (a 4-D Mat for a
# [1,3,8,8] input): feeding such a model a 3-D blob gives wrong results or crashes.
_PNNX_INPUT = re.compile(r'ex\.input\("(\w+)",\s*ncnn\.Mat\(.*?batch_index=(\d+)')


def _pnnx_batch_index(script: Path) -> dict:
    """{blob name: batch axis or None} from pnnx's generated model_ncnn.py ({} if absent)."""
    try:
        text = script.read_text()
    except OSError:
        return {}
    out = {}
    for name, idx in _PNNX_INPUT.findall(text):
        i = int(idx)
        out[name] = None if i == 233 else i
    return out


# ... and makes each input in the dtype it laid the blob out for (pnnx turns an int64 input
# into torch.int: ncnn layers that read indices, such as Embed, read int32 bits):
#   in0 = torch.randint(10, (1, 6), dtype=torch.int)
_PNNX_INPUT_DTYPE = re.compile(r"^\s*(in\d+)\s*=\s*torch\.\w+\(.*dtype=torch\.(\w+)\)",
                               re.M)
_TORCH_DTYPES = {"float": "float32", "float32": "float32", "half": "float16",
                 "float16": "float16", "double": "float64", "int": "int32", "int32": "int32",
                 "long": "int64", "int64": "int64", "short": "int16", "int8": "int8",
                 "uint8": "uint8", "bool": "bool"}


def _pnnx_input_dtypes(script: Path) -> dict:
    """{blob name: numpy dtype} of the inputs of pnnx's generated model_ncnn.py ({} if absent)."""
    try:
        text = script.read_text()
    except OSError:
        return {}
    return {name: _TORCH_DTYPES.get(t, "float32") for name, t in _PNNX_INPUT_DTYPE.findall(text)}


def as_onnx(src: Path, input_shapes: list[tuple[int, ...]] | None = None,
            input_dtypes: list[str] | None = None) -> Artifact:
    """The ONNX file itself, for engines that load ONNX (no conversion), with its count of
    quantized ops (a QDQ model runs as given, in int8)."""
    from .quantize import onnx_quant_ops
    ins, outs = onnx_io_names(src)
    n, total = onnx_quant_ops(src)
    return Artifact("onnx", {"onnx": src}, "", ins, outs, sha256_file(src),
                    quant={"int8_ops": n, "ops_total": total})


def mnn_inputs(art: Artifact) -> list | None:
    """The inputs an .mnn file declares (names, dtypes, dims; models.inputs.ModelInput), read
    with MNN when it is installed here; None when it is not or the file does not load."""
    from harness_agent.fdcapture import capture_native_output
    from .inputs import ModelInput
    types = {"Halide_Type_Float": "float32", "Halide_Type_Int": "int32",
             "Halide_Type_Int64": "int64", "Halide_Type_Uint8": "uint8",
             "Halide_Type_Double": "float64"}
    try:
        with capture_native_output(echo_fd=-1):
            import MNN
            interp = MNN.Interpreter(str(art.files["mnn"]))
            session = interp.createSession({"numThread": 1})
            tensors = interp.getSessionInputAll(session)
    except Exception:  # noqa: BLE001 - MNN absent or the file unreadable: nothing declared
        return None
    out = []
    for name, t in tensors.items():
        halide = t.getDataType()
        dtype = next((d for k, d in types.items() if getattr(MNN, k, None) is halide), None)
        dims = tuple(int(d) if int(d) > 0 else None for d in t.getShape())
        out.append(ModelInput(name, dtype, dims))
    return out


def ncnn_inputs(art: Artifact) -> list | None:
    """The inputs an ncnn .param file declares: its Input layers' blob names and, where the
    layer carries them (0=w 1=h 11=d 2=c), shapes as NCHW with a batch of 1 (ncnn blobs have
    no batch axis; the adapter drops it again). dtype None: ncnn blobs are float32. None when
    the file does not parse."""
    from ..diagnose.ncnn_param import parse
    from .inputs import ModelInput
    try:
        pf = parse(art.files["param"])
    except Exception:  # noqa: BLE001 - unreadable: nothing declared (loading will say why)
        return None
    out = []
    for layer in pf.layers:
        if layer.type != "Input" or not layer.tops:
            continue
        p = {k: int(v) for k, v in layer.params.items() if k in ("0", "1", "11", "2")
             and v.lstrip("-").isdigit()}
        w, h, d, c = (p.get(k, 0) for k in ("0", "1", "11", "2"))
        if w <= 0:
            dims = None
        elif h <= 0:
            dims = (w,)
        elif c <= 0:
            dims = (h, w)
        else:
            dims = (1, c, d, h, w) if d > 0 else (1, c, h, w)
        out.append(ModelInput(layer.tops[0], None, dims))
    return out


def _native(fmt: str, roles: dict[str, str]) -> Callable[[object], Optional[Artifact]]:
    """The artifact of a ModelSpec's native files of ``fmt``: ``roles`` maps the suite key of
    each file to its role in the artifact (the key the agent's adapter loads it by)."""
    def native(spec) -> Optional[Artifact]:
        files = {role: spec.native[key] for key, role in roles.items() if key in spec.native}
        if not files:
            return None
        return Artifact(fmt, files, "",
                        sha256=sha256_text(*(sha256_file(files[r]) for r in roles.values())))
    return native


# -- the registry -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Converter:
    """How models reach one format.

    ``convert(onnx, input_shapes, input_dtypes)`` -> Artifact or ConvertError (shapes and
    numpy dtype names of every input, in the model's order); ``native(spec)``: the
    artifact from a ModelSpec's engine-native files, None when it has none in this format;
    ``suffix`` and ``suite_entry(path)``: the file suffix of a model in this format given on the
    command line, and the suite keys it becomes; ``suite_keys``: the suite keys of a native
    model in this format, all given together. ``identity``: the format is ONNX itself."""
    format: str
    convert: Callable[[Path, list, list], Artifact]
    native: Callable[[object], Optional[Artifact]]
    suffix: str
    suite_entry: Callable[[Path], dict]
    suite_keys: tuple[str, ...] = ()
    identity: bool = False
    # the inputs a native model file declares (names, dtypes, dims), None when it says nothing
    declared: Optional[Callable[[Artifact], Optional[list]]] = None


CONVERTERS: dict[str, Converter] = {
    "mnn": Converter("mnn", to_mnn, _native("mnn", {"mnn": "mnn"}), ".mnn",
                     lambda p: {"mnn": str(p)}, ("mnn",), declared=mnn_inputs),
    "ncnn": Converter("ncnn", to_ncnn, _native("ncnn", {"ncnn_param": "param", "ncnn_bin": "bin"}),
                      ".param",
                      lambda p: {"ncnn_param": str(p), "ncnn_bin": str(p.with_suffix(".bin"))},
                      ("ncnn_param", "ncnn_bin"), declared=ncnn_inputs),
    "onnx": Converter("onnx", as_onnx, lambda spec: None, ".onnx", lambda p: {"onnx": str(p)},
                      identity=True),
}


def register_converter(conv: Converter) -> None:
    """Add (or replace) the converter of ``conv.format``: a new engine's model format."""
    CONVERTERS[conv.format] = conv


def converter_for(fmt: str) -> Converter:
    """The converter of a model format; ConvertError when none is registered."""
    if fmt not in CONVERTERS:
        raise ConvertError(f"no converter from ONNX to {fmt} (known formats: "
                           f"{', '.join(sorted(CONVERTERS))})")
    return CONVERTERS[fmt]


def engine_format(engine: str) -> str:
    """The model format an engine's adapter loads."""
    from ..engines import adapter_class
    return adapter_class(engine).MODEL_FORMAT


def artifact_for(spec, onnx: Path | None, fmt: str, input_shapes: list[tuple[int, ...]],
                 input_dtypes: list[str] | None = None) -> ArtifactOrFailure:
    """The model in ``fmt``: its native file when the spec has one, else converted from
    ``onnx`` with every input's shape and dtype (model order; dtypes default to the model's).
    A failure is returned as ConversionFailed, never raised."""
    try:
        conv = converter_for(fmt)
        native = conv.native(spec)
        if native is not None:
            return native
        if onnx is None:
            return ConversionFailed(fmt, f"no {fmt} file for model {spec.name} and no ONNX "
                                         "source to convert")
        if input_dtypes is None:
            input_dtypes = [i.dtype or "float32" for i in onnx_inputs(onnx)]
        return conv.convert(onnx, input_shapes, input_dtypes)
    except ConvertError as e:
        return ConversionFailed(fmt, str(e))


def native_inputs(spec) -> list | None:
    """The inputs a ModelSpec's native model files declare (the first format that says), for
    a model without an ONNX source; None when none says."""
    for conv in CONVERTERS.values():
        art = conv.native(spec)
        if art is not None and conv.declared is not None:
            got = conv.declared(art)
            if got:
                return got
    return None


def native_files(spec) -> list[Path]:
    """Every engine-native file of a ModelSpec, in registry order (its identity without ONNX)."""
    out: list[Path] = []
    for conv in CONVERTERS.values():
        art = conv.native(spec)
        if art is not None:
            out.extend(art.files.values())
    return out


def suite_entry_for_file(path: Path) -> dict | None:
    """Suite keys for a model file given by path (by its suffix); None for an unknown suffix."""
    for conv in CONVERTERS.values():
        if path.suffix == conv.suffix:
            return conv.suite_entry(path)
    return None


def model_suffixes() -> list[str]:
    """File suffixes a model given by path may have."""
    return sorted(c.suffix for c in CONVERTERS.values())


def native_suffixes() -> list[str]:
    """Suffixes of engine-native model files (they carry no input shapes of their own)."""
    return sorted(c.suffix for c in CONVERTERS.values() if not c.identity)


def converted_engines() -> list[str]:
    """Engines whose models are converted from ONNX (the engines under test), the default of a
    one-off run; an engine that loads ONNX as it is serves as a baseline and is asked for."""
    from ..engines import known_engines
    convs = [CONVERTERS.get(engine_format(e)) for e in known_engines()]
    return [e for e, c in zip(known_engines(), convs) if c is not None and not c.identity]


def native_suite_keys() -> list[tuple[str, ...]]:
    """The suite keys of native model files, one tuple per format (keys given together)."""
    return [c.suite_keys for c in CONVERTERS.values() if c.suite_keys]
