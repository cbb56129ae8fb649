"""Quantized models: calibration data and each format's quantizer, cached by content.

A quantized model is a converted artifact like the others: the coordinator makes it from the
float artifact of a format (``.mnn``) or from the ONNX source, with the engine's own tool:

  mnn  int8         MNN's offline quantization tool (``mnnquant``, the wheel's ``_tools``
                    extension called directly), calibrated: weights and activations in int8
  mnn  int8-weight  MNN's converter with ``--weightQuantBits 8``: int8 weights only
  onnx int8         ``onnxruntime.quantization.quantize_static``: static QDQ, calibrated
  ncnn int8         ``ncnn2table`` (calibration table over the samples) + ``ncnn2int8``, built
                    from an ncnn source for the coordinator's own machine (NcnnTools)

It is cached under the float source's sha256 + quantizer + settings + the calibration data's
digest. A model that arrives quantized (an ONNX graph with QuantizeLinear/DequantizeLinear)
runs as given. Calibration data: a folder of ``.npy``/``.npz`` files, one sample each
(``calibration = DIR`` in a suite), or of images, preprocessed as the model's
``[models.preprocess]`` says (harness.models.calibration_images), else N seeded random
inputs (``calibration_samples``, default 16), which the row's notes call not representative.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from harness_agent.engines.base import QUANTIZED
from harness_agent.engines.ncnn import INT8_TERM, param_int8_layers, param_layers
from ..cache import cache_root, sha256_file, sha256_text
from ..store.atomic import atomic_write_bytes
from .calibration_images import (ImageError, Preprocess, image_files, image_layout,
                                 image_sample)
from .converters import (Artifact, ConvertError, _cached, _run, _tail, _version, onnx_io_names)
from .inputs import _load_array, _npy_bytes, bind_inputs, make_input, onnx_inputs

DEFAULT_SAMPLES = 16
RANDOM_NOTE = "calibrated on random inputs, which are not representative: int8 accuracy " \
              "here says little of accuracy on real data"
RANDOM_INPUT_NOTE = ("measured on a seeded random input, unlike its calibration data: int8 "
                     "accuracy on data like the calibration's is not measured here (give the "
                     "model an input of that kind: npy)")


def measured_input_notes(spec, art) -> tuple[str, ...]:
    """A note for a model quantized on given data (a folder) but measured on a seeded random
    input: its accuracy figures describe inputs it was not calibrated for. ``spec``: the
    ModelSpec; ``art``: the artifact (an Artifact or anything else)."""
    cal = getattr(art, "calibration", "") or ""
    if not cal or cal.startswith("random ") or getattr(spec, "calibration", None) is None:
        return ()
    if any(i.npy is None and i.value is None for i in spec.inputs):
        return (RANDOM_INPUT_NOTE,)
    return ()


# ONNX ops of a quantized graph: the Q/DQ pair, and the integer ops of the operator-oriented
# format (QOperator) and of dynamic quantization
_QDQ = ("QuantizeLinear", "DequantizeLinear")
_INTEGER_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QLinearAdd",
                "QLinearMul", "QLinearGlobalAveragePool", "QLinearConcat", "QLinearSigmoid",
                "QLinearLeakyRelu", "QLinearAveragePool", "QLinearSoftmax", "DynamicQuantizeLinear")


# -- calibration data ------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """Calibration samples on disk: ``files[i][j]`` is input j (model order) of sample i, an
    .npy file. ``describe``: what the row's ``calibration`` column says; ``random``: seeded
    random inputs (the row notes they are not representative)."""
    key: str
    names: tuple[str, ...]
    files: tuple[tuple[Path, ...], ...]
    describe: str
    random: bool


def calibration_files(folder: Path) -> list[Path]:
    """The sample files of a calibration folder: its .npy and .npz files, sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix in (".npy", ".npz"))


def _sample_arrays(path: Path, names: list[str], shapes, dtypes) -> list[np.ndarray]:
    """One sample file as one array per model input (an .npz: the array named like each input,
    or a single array for a one-input model; an .npy: one-input models only). ConvertError
    naming the file when it does not fit the model's inputs."""
    if path.suffix == ".npy" and len(names) != 1:
        raise ConvertError(f"calibration file {path.name}: an .npy file holds one array, the "
                           f"model has {len(names)} inputs ({', '.join(names)}): use .npz "
                           "with one array per input name")
    out = []
    for name, shape, dtype in zip(names, shapes, dtypes):
        try:
            arr = _load_array(path, name)
        except Exception as e:  # noqa: BLE001 - InputError or a parser's own: one line
            raise ConvertError(f"calibration file {path.name}: {e}") from None
        if tuple(arr.shape) != tuple(shape):
            raise ConvertError(f"calibration file {path.name}: input {name} has shape "
                               f"{'x'.join(map(str, arr.shape))}, the model runs "
                               f"{'x'.join(map(str, shape))}")
        out.append(np.asarray(arr).astype(dtype, copy=False))
    return out


def prepare_calibration(spec, onnx: Path | None, inputs) -> Calibration:
    """The calibration set of a ModelSpec for the inputs it runs (an InputSet): the files of
    ``spec.calibration``, else ``spec.calibration_samples`` seeded random inputs drawn like the
    model's own (each random input's seed + 1 + i; files and constant values stay as they
    are). Written once into the cache by content. ConvertError when the folder's data does not
    fit the model (it becomes the int8 rows' convert_error)."""
    names, shapes, dtypes = list(inputs.names), list(inputs.shapes), list(inputs.dtypes)
    folder = spec.calibration
    images = image_files(folder) if folder is not None else []
    if folder is not None and images:
        files = images
        if calibration_files(folder):
            raise ConvertError(f"calibration folder {folder} holds both .npy/.npz files and "
                               "images: keep one kind")
        if len(names) != 1:
            raise ConvertError(f"calibration folder {folder}: images calibrate one-input "
                               f"models, this one has {len(names)} ({', '.join(names)}): use "
                               ".npz files with one array per input name")
        pre = spec.preprocess or Preprocess()
        try:  # the model, not an image, when the input is no image input
            image_layout(tuple(shapes[0]))
        except ImageError as e:
            raise ConvertError(f"calibration folder {folder} holds images, but model input "
                               f"{names[0]}: {e}") from None
        digest = sha256_text(*(sha256_file(p) for p in files))
        describe = (f"images {folder} {len(files)} files {pre.describe()} "
                    f"sha256:{digest[:12]}")
        key = sha256_text("calib-img", digest, pre.describe(), *names, *map(str, shapes),
                          *dtypes)[:24]

        def samples():
            for p in files:
                try:
                    yield [image_sample(p, tuple(shapes[0]), pre, dtypes[0])]
                except ImageError as e:
                    raise ConvertError(f"calibration image {p.name}: {e}") from None
        n = len(files)
    elif folder is not None:
        files = calibration_files(folder)
        if not files:
            raise ConvertError(f"calibration folder {folder} has no .npy/.npz files or images")
        digest = sha256_text(*(sha256_file(p) for p in files))
        describe = f"npy {folder} {len(files)} files sha256:{digest[:12]}"
        key = sha256_text("calib-npy", digest, *names, *map(str, shapes), *dtypes)[:24]

        def samples():
            for p in files:
                yield _sample_arrays(p, names, shapes, dtypes)
        n = len(files)
    else:
        if onnx is None:  # only ONNX sources are quantized here (native files run as given)
            raise ConvertError(f"model {spec.name}: random calibration needs the ONNX source")
        n = spec.calibration_samples or DEFAULT_SAMPLES
        bound = bind_inputs(spec.name, onnx_inputs(onnx), spec.inputs)
        key = sha256_text("calib-random", str(n), inputs.key)[:24]
        describe = f"random {n} seed+1.. sha256:{key[:12]}"

        def samples():
            for i in range(n):
                arrs = []
                for s, m in bound:
                    if s.npy is None and s.value is None:
                        s = dataclasses.replace(s, seed=s.seed + 1 + i)
                    arrs.append(make_input(s, m.index_limit if m else None))
                yield arrs
    d = cache_root() / "calibration" / key
    if not (d / "meta.json").exists():
        for i, arrs in enumerate(samples()):
            for j, a in enumerate(arrs):
                atomic_write_bytes(d / f"s{i}_in{j}.npy", _npy_bytes(a))
        atomic_write_bytes(d / "meta.json", json.dumps({"n": n, "names": names,
                                                        "describe": describe}).encode())
    files_ = tuple(tuple(d / f"s{i}_in{j}.npy" for j in range(len(names))) for i in range(n))
    return Calibration(key, tuple(names), files_, describe, folder is None)


def calibration_arrays(cal: Calibration):
    """Each sample as {input name: array}."""
    for sample in cal.files:
        yield {n: np.load(p) for n, p in zip(cal.names, sample)}


# -- quantized ONNX detection ---------------------------------------------------------------
def onnx_quant_ops(path: Path) -> tuple[int, int]:
    """(quantized ops, all ops other than Q/DQ nodes) of an ONNX graph, subgraphs left out: an
    op is quantized when a DequantizeLinear feeds it or it is an integer op (QLinearConv,
    ConvInteger, ...). (0, n) for a float model."""
    import onnx
    g = onnx.load(str(path), load_external_data=False).graph
    dq_out = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    ops = [n for n in g.node if n.op_type not in _QDQ]
    quant = [n for n in ops if n.op_type in _INTEGER_OPS or any(i in dq_out for i in n.input)]
    return len(quant), len(ops)


def is_quantized_onnx(path: Path) -> bool:
    """Whether an ONNX model arrives quantized: it has QuantizeLinear/DequantizeLinear nodes
    (QDQ) or integer ops (QOperator, dynamic quantization)."""
    import onnx
    g = onnx.load(str(path), load_external_data=False).graph
    return any(n.op_type in _QDQ or n.op_type in _INTEGER_OPS for n in g.node)


# -- quantizers -------------------------------------------------------------------------------
_MNNQUANT = "import sys, _tools; _tools.mnnquant(sys.argv)"
# MNN's defaults for its offline tool: KL-divergence activation ranges, max-abs weights
MNN_FEATURE, MNN_WEIGHT = "KL", "MAX_ABS"


def mnn_int8(float_art: Artifact, cal: Calibration, shapes) -> Artifact:
    """Full int8 .mnn with MNN's offline quantization tool over ``cal`` (its ``sequence``
    input: one folder per sample with ``input.json`` and one ``NAME.txt`` per input)."""
    quantizer = (f"mnnquant {_version('MNN')} feature={MNN_FEATURE} weight={MNN_WEIGHT}")
    key = sha256_text(float_art.sha256, "mnn-int8", quantizer, cal.key)[:24]
    names = list(float_art.blobs_for(cal.names)) if float_art.input_names else list(cal.names)

    def build(d: Path) -> None:
        root = d / "calibration"
        for i, sample in enumerate(cal.files):
            sd = root / f"s{i:05d}"
            sd.mkdir(parents=True)
            for name, p, shape in zip(names, sample, shapes):
                # the tool opens DIR/NAME.txt: a name with "/" (gpu_0/data_0) is a subfolder
                txt = sd / f"{name}.txt"
                txt.parent.mkdir(parents=True, exist_ok=True)
                np.savetxt(txt, np.load(p).reshape(1, -1), fmt="%.9g")
            (sd / "input.json").write_text(json.dumps(
                {"inputs": [{"name": n, "shape": list(s)} for n, s in zip(names, shapes)]}))
        # the tool joins "path" and each entry's name without a separator
        cfg = {"path": str(root) + "/", "input_type": "sequence",
               "used_sample_num": len(cal.files), "feature_quantize_method": MNN_FEATURE,
               "weight_quantize_method": MNN_WEIGHT}
        (d / "quant.json").write_text(json.dumps(cfg))
        # argv[0] of `python -c` is "-c": the tool reads argv[1:] as src, dst, config
        out = _run([sys.executable, "-c", _MNNQUANT, str(float_art.files["mnn"]),
                    str(d / "model.mnn"), str(d / "quant.json")], d)
        if "Quantize model done" not in out or not (d / "model.mnn").exists():
            raise ConvertError(f"mnnquant did not quantize: {_tail(out)}")
        for p in root.rglob("*"):  # the text copies are large; the .npy samples are kept
            if p.is_file():
                p.unlink()
        (d / "quantize.log").write_text(out)
        (d / "meta.json").write_text(json.dumps({"quantizer": quantizer,
                                                 "calibration": cal.describe}))

    d = _cached(key, build)
    f = d / "model.mnn"
    return dataclasses.replace(float_art, files={"mnn": f}, sha256=sha256_file(f),
                               quantizer=quantizer, calibration=cal.describe,
                               notes=(RANDOM_NOTE,) if cal.random else ())


def mnn_int8_weight(src: Path) -> Artifact:
    """ONNX -> .mnn with int8 weights (MNN's converter, ``--weightQuantBits 8``)."""
    from .converters import to_mnn
    art = to_mnn(src, extra_args=("--weightQuantBits", "8"))
    return dataclasses.replace(art, converter=f"mnnconvert {_version('MNN')}",
                               quantizer=art.converter, calibration="none (weights only)")


# onnxruntime.quantization's static QDQ settings, spelled out so the row says them. uint8
# activations with int8 weights (U8S8), as onnxruntime advises for x86-64: with its default
# int8 activations (S8S8) squeezenet ran at 5.9 ms against 3.9 ms in fp32 here (AVX512-VNNI),
# with U8S8 at 1.4 ms. pre_process: quant_pre_process first (shape inference and graph
# optimization, which folds BatchNormalization into Conv: without it PP-OCR cls kept a third
# of its ops in float)
ORT_SETTINGS = {"quant_format": "QDQ", "activation_type": "QUInt8", "weight_type": "QInt8",
                "calibrate_method": "MinMax", "per_channel": False, "pre_process": True}


@contextlib.contextmanager
def _logged(path: Path):
    """Route the root logger (onnxruntime.quantization warns through it, one line per
    tensor) and Python warnings (numpy's, over NaN calibration data) into ``path`` while
    quantizing, instead of the user's terminal."""
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    saved = root.handlers[:]
    root.handlers = [handler]
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers = saved
        handler.close()


def ort_int8(src: Path, cal: Calibration) -> Artifact:
    """Static QDQ ONNX with ``onnxruntime.quantization.quantize_static`` over ``cal``."""
    ver = importlib.metadata.version("onnxruntime")
    settings = " ".join(f"{k}={v}" for k, v in ORT_SETTINGS.items())
    quantizer = f"onnxruntime.quantization {ver} quantize_static {settings}"
    sha = sha256_file(src)
    key = sha256_text(sha, "onnx-int8", quantizer, cal.key)[:24]

    def build(d: Path) -> None:
        from onnxruntime import quantization as q

        class Reader(q.CalibrationDataReader):
            def __init__(self):
                self.it = iter(calibration_arrays(cal))

            def get_next(self):
                return next(self.it, None)

        out = d / "model.onnx"
        pre = d / "pre.onnx"
        try:
            with _logged(d / "quantize.log"):
                q.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
                q.quantize_static(
                    str(pre), str(out), Reader(),
                    quant_format=q.QuantFormat.QDQ, activation_type=q.QuantType.QUInt8,
                    weight_type=q.QuantType.QInt8, calibrate_method=q.CalibrationMethod.MinMax,
                    per_channel=False)
        except Exception as e:  # noqa: BLE001 - the quantizer's own words, one line
            raise ConvertError(f"quantize_static failed: {type(e).__name__}: "
                               f"{_tail(str(e), 400)}") from None
        pre.unlink(missing_ok=True)
        n, total = onnx_quant_ops(out)
        (d / "meta.json").write_text(json.dumps({"quantizer": quantizer, "source": sha,
                                                 "calibration": cal.describe,
                                                 "int8_ops": n, "ops_total": total}))

    d = _cached(key, build)
    f = d / "model.onnx"
    meta = json.loads((d / "meta.json").read_text())
    ins, outs = onnx_io_names(f)
    return Artifact("onnx", {"onnx": f}, "", ins, outs, sha256_file(f),
                    quantizer=quantizer, calibration=cal.describe,
                    notes=(RANDOM_NOTE,) if cal.random else (),
                    quant={"int8_ops": meta["int8_ops"], "ops_total": meta["ops_total"]})


# -- ncnn: ncnn2table + ncnn2int8 from a source build -------------------------------------------
class QuantizerUnavailable(ConvertError):
    """The quantizer cannot be had here (no source to build ncnn's tools from, or a source
    without them): the int8 rows are ``unsupported``, not ``convert_error``."""


@dataclass(frozen=True)
class NcnnTools:
    """ncnn's int8 tools of one source build for the coordinator's machine. ``source``: the
    build's label and source identity ("src:ncnn-20260526 sha256:1e6a1d3c6285"), as the
    ``quantizer`` column says it; ``build_key``: the build's cache key (part of the quantized
    model's key: another build of the tools is another quantizer)."""
    ncnn2table: Path
    ncnn2int8: Path
    source: str
    build_key: str


NO_NCNN_TOOLS = ("ncnn int8 needs ncnn2table/ncnn2int8, which are not in the ncnn wheel: "
                 "give an ncnn source to build them from, as an ncnn engine entry "
                 "{ source = \"ncnn-YYYYMMDD.tar.xz\" } or [quantize] ncnn_tools = \"PATH\" "
                 "(a source tarball or git checkout)")


def ncnn_tools(source) -> NcnnTools:
    """ncnn2table and ncnn2int8 built from ``source`` (an EngineSource, or None) for this
    machine (harness.builds: cached by source, options and recipe). Raises
    QuantizerUnavailable without a source or when the source has no int8 tools, and
    ConvertError (with the compiler's words) when it does not build."""
    from ..builds.build import BuildFailed, build
    from ..builds.source import SourceError, short_identity
    from ..builds.target import this_python_target
    if source is None:
        raise QuantizerUnavailable(NO_NCNN_TOOLS)
    target = this_python_target()
    try:
        b = build(source, target.key(), lambda: target)
    except (BuildFailed, SourceError) as e:
        raise ConvertError(f"building ncnn's int8 tools from {source.name} failed: {e}") \
            from None
    missing = [t for t in ("ncnn2table", "ncnn2int8") if t not in b.tools]
    if missing:
        raise QuantizerUnavailable(f"the ncnn source {source.name} built no {', '.join(missing)}"
                                   " (its tree has no tools/quantize)")
    ident = source.identity()
    return NcnnTools(b.tools["ncnn2table"], b.tools["ncnn2int8"],
                     f"{source.name} {ident.split(':')[0]}:{short_identity(ident)}", b.key)


def ncnn_quantizer(tools: NcnnTools, method: str) -> str:
    """The ``quantizer`` column of an ncnn int8 model."""
    return f"ncnn2table method={method} + ncnn2int8 ({tools.source})"


def ncnn_input_blobs(param_text: str) -> list[str]:
    """The input blobs of an ncnn .param in ncnn2table's order (its Input layers' tops, in
    file order: one list file per blob, in this order). Raises ValueError."""
    return [tops[0] for typ, tops, _ in param_layers(param_text) if typ == "Input" and tops]


def ncnn_sample(arr: np.ndarray, batch_index) -> np.ndarray:
    """One calibration array as ncnn2table reads it: float32 in C order, the batch axis
    dropped as the agent feeds the blob (``batch_index`` 0: pnnx took axis 0 as batch; None:
    kept; unknown: dropped from a 4-D array, as the agent does). ConvertError for a batch
    above 1 or a non-float input (ncnn2table reads float .npy files only)."""
    if arr.dtype.kind != "f":
        raise ConvertError(f"ncnn2table reads float32 .npy files only: an input is "
                           f"{arr.dtype} (int8 for ncnn needs float inputs)")
    drop = batch_index == 0 if batch_index != "unknown" else arr.ndim == 4
    if drop and arr.ndim >= 1:
        if arr.shape[0] != 1:
            raise ConvertError(f"ncnn runs batch 1 only: a calibration sample has shape "
                               f"{'x'.join(map(str, arr.shape))}")
        arr = arr[0]
    return np.ascontiguousarray(arr, dtype=np.float32)


def ncnn2table_argv(tools: NcnnTools, param: Path, binf: Path, lists: list[str],
                    shapes: list[tuple[int, ...]], table: str, method: str,
                    threads: int) -> list[str]:
    """ncnn2table's command line: ``PARAM BIN LIST[,LIST..] TABLE shape=[w,h,c],.. method=M
    type=1 thread=N`` (type=1: the lists name .npy files). ``shapes``: each blob's array shape
    as fed (numpy order, batch dropped); ncnn2table wants it reversed ([w,h,c])."""
    shape = ",".join("[" + ",".join(str(d) for d in reversed(s)) + "]" for s in shapes)
    return [str(tools.ncnn2table), str(param), str(binf), ",".join(lists), table,
            f"shape={shape}", f"method={method}", "type=1", f"thread={threads}"]


def _ncnn_lists(d: Path, float_art: Artifact, cal: Calibration,
                blobs: list[str]) -> tuple[list[str], list[tuple[int, ...]]]:
    """Each calibration sample written as ncnn2table reads it, and one list file per input
    blob (in ``blobs`` order) naming them: relative paths under ``d``, since ncnn2table reads
    at most 255 characters of a list line. Returns (list files, each blob's fed shape)."""
    names = list(float_art.blobs_for(cal.names))
    missing = [b for b in blobs if b not in names]
    if missing or len(blobs) != len(names):
        raise ConvertError(f"the ncnn model's inputs ({', '.join(blobs)}) are not the "
                           f"calibration's ({', '.join(names)})")
    batch = dict((float_art.feed or {}).get("batch_index") or {})
    (d / "calib").mkdir()
    rows: dict[str, list[str]] = {b: [] for b in blobs}
    shapes: dict[str, tuple[int, ...]] = {}
    for i, sample in enumerate(cal.files):
        for name, path in zip(names, sample):
            arr = ncnn_sample(np.load(path), batch.get(name, "unknown"))
            rel = f"calib/s{i}_{name}.npy"
            np.save(d / rel, arr)
            rows[name].append(rel)
            shapes[name] = arr.shape
    lists = []
    for j, b in enumerate(blobs):
        (d / f"calib/list{j}.txt").write_text("\n".join(rows[b]) + "\n")
        lists.append(f"calib/list{j}.txt")
    return lists, [shapes[b] for b in blobs]


# a blob's batch count in a shape expression ("0n"), which pnnx writes (``6="1,1,//(96,0n),0n"``
# on Reshape) and ncnn before it knew the token reads as the literal 0 (divide by zero)
_BATCH_TOKEN = re.compile(r"(?<![0-9A-Za-z])[0-9]n(?![0-9A-Za-z])")
_EXPR = re.compile(r'(?<=\s)6="([^"]*)"')


def tool_param(text: str) -> tuple[str, dict[str, str]]:
    """The .param the tools read: each shape expression's batch token (``0n``) as 1, its
    value in every run here (ncnn runs batch 1); ({layer name: original expression}) of the
    lines changed (merge_params puts the float model's lines back)."""
    changed: dict[str, str] = {}
    out = []
    for line in text.splitlines():
        m = _EXPR.search(line)
        if m and _BATCH_TOKEN.search(m.group(1)):
            changed[line.split()[1]] = m.group(0)
            line = line[:m.start()] + '6="' + _BATCH_TOKEN.sub("1", m.group(1)) + '"' \
                + line[m.end():]
        out.append(line)
    return "\n".join(out) + "\n", changed


def merge_params(original: str, tools: str) -> str:
    """The int8 .param: ``tools`` (what ncnn2int8 wrote) with every layer that it did not
    quantize written as in ``original``, and the quantized layers' params that the tools left
    out added back. ncnn2int8 rewrites the whole file with its own ncnn's writer, which omits
    params it does not know (pnnx's Reshape batch axes 12=/13=, for ncnn 20260526) and writes
    the shape expressions tool_param changed: left as written, the int8 model would not be
    the float model quantized. Raises ValueError when the two files' layers differ."""
    orig = {parts[1]: parts for parts in (ln.split() for ln in original.splitlines()[2:])
            if len(parts) >= 4}
    lines = tools.splitlines()
    out = lines[:2]
    for line in lines[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        o = orig.get(parts[1])
        if o is None or o[0] != parts[0]:
            raise ValueError(f"ncnn2int8 wrote a layer {parts[1]} ({parts[0]}) that the float "
                             f"model does not have")
        term = INT8_TERM.get(parts[0])
        nio = 4 + int(parts[2]) + int(parts[3])
        kv = dict(t.partition("=")[::2] for t in parts[nio:])
        if term is None or kv.get(str(term), "0") in ("0", ""):
            out.append(" ".join(o))  # not quantized: exactly the float model's layer
            continue
        ono = 4 + int(o[2]) + int(o[3])
        extra = [t for t in o[ono:] if t.partition("=")[0] not in kv]
        out.append(" ".join(parts + extra))
    return "\n".join(out) + "\n"


def ncnn_int8(float_art: Artifact, cal: Calibration, tools: NcnnTools,
              method: str = "kl") -> Artifact:
    """int8 .param/.bin from the fp32 ones (pnnx's) with ncnn2table over ``cal`` (the
    calibration table) and ncnn2int8. Cached by the float model's sha256, the tools' build,
    the method and the calibration. Raises ConvertError with the tool's own last lines."""
    quantizer = ncnn_quantizer(tools, method)
    # "merged-1": the int8 .param keeps the float model's lines where the tools did not
    # quantize (merge_params)
    key = sha256_text(float_art.sha256, "ncnn-int8", "merged-1", quantizer, tools.build_key,
                      cal.key)[:24]
    param, binf = float_art.files["param"], float_art.files["bin"]

    def build(d: Path) -> None:
        text = Path(param).read_text()
        blobs = ncnn_input_blobs(text)
        lists, shapes = _ncnn_lists(d, float_art, cal, blobs)
        # the tools may be an older ncnn than pnnx writes for (ncnn 20260526 reads "0n" as 0)
        fixed, changed = tool_param(text)
        (d / "tool.param").write_text(fixed)
        threads = min(os.cpu_count() or 1, 4)
        out = _run(ncnn2table_argv(tools, Path("tool.param"), binf, lists, shapes,
                                   "model.table", method, threads), d)
        if not (d / "model.table").is_file() or "table create success" not in out:
            raise ConvertError(f"ncnn2table wrote no table: {_tail(out)}")
        out2 = _run([str(tools.ncnn2int8), "tool.param", str(binf), "model.int8.param",
                     "model.int8.bin", "model.table"], d)
        if not (d / "model.int8.param").is_file() or not (d / "model.int8.bin").is_file():
            raise ConvertError(f"ncnn2int8 wrote no model: {_tail(out2)}")
        q = d / "model.int8.param"
        try:
            q.write_text(merge_params(text, q.read_text()))
        except ValueError as e:
            raise ConvertError(str(e)) from None
        shutil.rmtree(d / "calib")  # copies of the cached samples
        (d / "tool.param").unlink()
        n, total = param_int8_layers(q.read_text())
        (d / "quantize.log").write_text(out + "\n" + out2)
        (d / "meta.json").write_text(json.dumps({
            "quantizer": quantizer, "calibration": cal.describe, "int8_ops": n,
            "ops_total": total,
            # layers whose shape expressions the tools read with the batch token as 1
            "batch_token_as_1": sorted(changed)}))

    d = _cached(key, build)
    q_param, q_bin = d / "model.int8.param", d / "model.int8.bin"
    meta = json.loads((d / "meta.json").read_text())
    return dataclasses.replace(
        float_art, files={"param": q_param, "bin": q_bin},
        sha256=sha256_text(sha256_file(q_param), sha256_file(q_bin)), quantizer=quantizer,
        calibration=cal.describe, notes=(RANDOM_NOTE,) if cal.random else (),
        quant={"int8_ops": meta["int8_ops"], "ops_total": meta["ops_total"]})


def needs_calibration(fmt: str, precision: str) -> bool:
    """Whether quantizing ``fmt`` for ``precision`` reads calibration data."""
    return precision == "int8" and fmt in ("mnn", "onnx", "ncnn")


def quantized_artifact(fmt: str, precision: str, onnx: Path | None, float_art,
                       cal_fn, shapes, ncnn_tools_fn: Callable[[], NcnnTools] | None = None,
                       ncnn_method: str = "kl") -> object:
    """The artifact of ``fmt`` for a quantized ``precision``: ``float_art`` as given when the
    model arrived quantized or the format has no quantizer here (the adapter says what ran or
    why it cannot), else the quantized model. ``cal_fn()``: the Calibration (made only when
    needed); ``ncnn_tools_fn()``: ncnn's tools (built only when needed). Raises ConvertError
    (QuantizerUnavailable where the quantizer cannot be had)."""
    if precision not in QUANTIZED or not isinstance(float_art, Artifact):
        return float_art
    if onnx is None or is_quantized_onnx(onnx):
        # a native file or a quantized source: runs as given (the engine's count says int8)
        return dataclasses.replace(float_art, notes=float_art.notes + (
            "the model arrived as given (no quantizer run)",))
    if fmt == "mnn" and precision == "int8":
        return mnn_int8(float_art, cal_fn(), shapes)
    if fmt == "mnn" and precision == "int8-weight":
        return mnn_int8_weight(onnx)
    if fmt == "onnx" and precision == "int8":
        return ort_int8(onnx, cal_fn())
    if fmt == "ncnn" and precision == "int8":
        tools = ncnn_tools_fn() if ncnn_tools_fn else ncnn_tools(None)
        return ncnn_int8(float_art, cal_fn(), tools, ncnn_method)
    return float_art


def artifact_key(fmt: str, precision: str) -> str:
    """The key of a model's artifact for ``fmt`` at ``precision`` (PreparedModel.artifacts):
    the format itself for float precisions, ``fmt@precision`` for a quantized one."""
    return f"{fmt}@{precision}" if precision in QUANTIZED else fmt
