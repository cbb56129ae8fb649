"""The models the harness knows by name, and models named on the command line.

Built-ins: PP-OCR from the installed rapidocr package (read from the wheel, never copied into
the repository or downloaded at run time) and the generated micro-models (micromodels.py).
`harness run`, `harness diagnose` and `harness models stats` all resolve names here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import HarnessError
from . import micromodels
from .errors import ModelError
from .shapes import Shape, shape_entries


@dataclass(frozen=True)
class BuiltinModel:
    """A model known by name: where its ONNX file comes from and its default input shapes."""
    name: str
    shapes: tuple[Shape, ...]  # one per input, in the model's input order
    onnx: Callable[[], Path]  # the file; HarnessError when it cannot be had here
    packaged: bool  # read from an installed package (else generated into the cache)


def _rapidocr(name: str, filename: str) -> Callable[[], Path]:
    def locate() -> Path:
        spec = importlib.util.find_spec("rapidocr_onnxruntime")
        if spec is None or not spec.submodule_search_locations:
            raise HarnessError(f"built-in model {name}: the rapidocr_onnxruntime package is "
                               "not installed (pip install rapidocr_onnxruntime)")
        path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
        if not path.is_file():
            raise HarnessError(f"built-in model {name}: {path} is missing from the installed "
                               "rapidocr_onnxruntime package")
        return path
    return locate


_MODELS = (
    BuiltinModel("ppocr_det", ((1, 3, 640, 640),),
                 _rapidocr("ppocr_det", "ch_PP-OCRv4_det_infer.onnx"), True),
    BuiltinModel("ppocr_rec", ((1, 3, 48, 320),),
                 _rapidocr("ppocr_rec", "ch_PP-OCRv4_rec_infer.onnx"), True),
    BuiltinModel("ppocr_cls", ((1, 3, 48, 192),),
                 _rapidocr("ppocr_cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx"), True),
    BuiltinModel("convtranspose_upsampler", ((1, 64, 128, 128),),
                 micromodels.convtranspose_upsampler, False),
    BuiltinModel("reduction_sum_block", ((1, 8, 128, 128),),
                 micromodels.reduction_sum_block, False),
)
BUILTINS: dict[str, BuiltinModel] = {m.name: m for m in _MODELS}


def builtin_names() -> list[str]:
    return sorted(BUILTINS)


def builtin(name: str) -> BuiltinModel:
    """The built-in model called ``name``; ModelError naming the known ones otherwise."""
    if name not in BUILTINS:
        raise ModelError(f"model {name!r}", "is not a built-in name", ", ".join(builtin_names()))
    return BUILTINS[name]


def builtin_onnx(name: str) -> Path:
    """The ONNX file of a built-in model (generated on first use for micro-models)."""
    return builtin(name).onnx()


def default_inputs(name: str):
    """The InputSpecs of a built-in model at its default shapes."""
    from ..config.suite import InputSpec
    return tuple(InputSpec(shape=s) for s in builtin(name).shapes)


def builtin_for_file(path: Path) -> str | None:
    """The built-in name whose ONNX file this is (same content), so its default shapes apply.

    Only packaged files are matched: their inputs have dynamic dims, while the generated
    micro-models declare static ones."""
    from ..cache import sha256_file
    path = Path(path)
    if not path.is_file():
        return None
    for m in _MODELS:
        if not m.packaged:
            continue
        try:
            ref = m.onnx()
        except HarnessError:
            return None
        if ref.stat().st_size == path.stat().st_size and sha256_file(ref) == sha256_file(path):
            return m.name
    return None


def resolve_onnx(text: str) -> tuple[Path, str | None]:
    """A built-in name or an ONNX path -> (path, built-in name or None).

    A path to a copy of a packaged built-in is recognised, so it gets the default shapes."""
    if text in BUILTINS:
        return builtin_onnx(text), text
    path = Path(text)
    return path, builtin_for_file(path)


# -- models named on the command line -----------------------------------------------------------
def model_entry(text: str, shape: str | None = None, where: str = "--model") -> dict:
    """The suite data ([[models]] table) of a model given as a built-in name or a file path,
    with the input shapes of ``shape`` text (shapes.parse_shape grammar) when given.

    Raises InputError when the file is missing or its suffix is no known model format."""
    from .converters import model_suffixes, suite_entry_for_file
    entry: dict = {"name": Path(text).stem.replace(".ncnn", "") or "model"}
    if text in BUILTINS:
        entry["builtin"] = text
    else:
        p = Path(text).expanduser().resolve()
        if not p.is_file() and p.suffix in model_suffixes():
            raise ModelError(where, f"{str(p)!r} does not exist", "an existing model file")
        if not p.is_file():
            raise ModelError(where, f"{text!r} is neither a file nor a built-in model",
                             "a path ending in " + ", ".join(model_suffixes())
                             + " or one of " + ", ".join(builtin_names()))
        files = suite_entry_for_file(p)
        if files is None:
            raise ModelError(where, f"{text!r} has an unknown extension",
                             ", ".join(model_suffixes()))
        entry.update(files)
    if shape:
        entry["inputs"] = shape_entries(shape)
    return entry


def model_spec(text: str, engines: list[str], shape: str | None = None, inputs=None):
    """The validated ModelSpec of a model named on the command line, for ``engines``.

    ``inputs`` (InputSpecs, e.g. another spec's) replaces ``shape`` text when given. Raises
    InputError as a suite entry would."""
    from ..config.suite import parse_suite
    entry = model_entry(text, shape)
    if inputs is not None:
        entry["inputs"] = [_input_entry(s) for s in inputs]
    data = {"name": "command line", "engines": {e: ["installed"] for e in engines},
            "models": [entry]}
    return parse_suite(data, "command line", Path.cwd()).models[0]


def _input_entry(spec) -> dict:
    """An InputSpec back as suite data (an [[models.inputs]] table)."""
    entry: dict = {"shape": list(spec.shape)}
    for key in ("name", "dtype", "value"):
        if getattr(spec, key) is not None:
            entry[key] = getattr(spec, key)
    if spec.npy is not None:
        entry["npy"] = str(spec.npy)
    if spec.range is not None:
        entry["range"] = list(spec.range)
    if spec.seed:
        entry["seed"] = spec.seed
    return entry
