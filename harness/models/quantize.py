"""Quantized models: calibration data and each format's quantizer, cached by content.

A quantized model is a converted artifact like the others: the coordinator makes it from the
float artifact of a format (``.mnn``) or from the ONNX source, with the engine's own tool:

  mnn  int8         MNN's offline quantization tool (``mnnquant``, the wheel's ``_tools``
                    extension called directly), calibrated: weights and activations in int8
  mnn  int8-weight  MNN's converter with ``--weightQuantBits 8``: int8 weights only
  onnx int8         ``onnxruntime.quantization.quantize_static``: static QDQ, calibrated

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
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness_agent.engines.base import QUANTIZED
from ..cache import cache_root, sha256_file, sha256_text
from ..store.atomic import atomic_write_bytes
from .calibration_images import ImageError, Preprocess, image_files, image_sample
from .converters import (Artifact, ConvertError, _cached, _run, _tail, _version, onnx_io_names)
from .inputs import _load_array, _npy_bytes, bind_inputs, make_input, onnx_inputs

DEFAULT_SAMPLES = 16
RANDOM_NOTE = "calibrated on random inputs, which are not representative: int8 accuracy " \
              "here says little of accuracy on real data"
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


def needs_calibration(fmt: str, precision: str) -> bool:
    """Whether quantizing ``fmt`` for ``precision`` reads calibration data."""
    return precision == "int8" and fmt in ("mnn", "onnx")


def quantized_artifact(fmt: str, precision: str, onnx: Path | None, float_art,
                       cal_fn, shapes) -> object:
    """The artifact of ``fmt`` for a quantized ``precision``: ``float_art`` as given when the
    model arrived quantized or the format has no quantizer here (the adapter says what ran or
    why it cannot), else the quantized model. ``cal_fn()``: the Calibration (made only when
    needed). Raises ConvertError."""
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
    return float_art


def artifact_key(fmt: str, precision: str) -> str:
    """The key of a model's artifact for ``fmt`` at ``precision`` (PreparedModel.artifacts):
    the format itself for float precisions, ``fmt@precision`` for a quantized one."""
    return f"{fmt}@{precision}" if precision in QUANTIZED else fmt
