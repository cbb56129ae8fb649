"""Built-in model names -> ONNX files shipped in the rapidocr_onnxruntime wheel.

A stop-gap resolver local to the analysis package (the lead may replace it with a shared one).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import AnalysisError

BUILTIN_FILES = {
    "ppocr_det": "ch_PP-OCRv4_det_infer.onnx",
    "ppocr_rec": "ch_PP-OCRv4_rec_infer.onnx",
    "ppocr_cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
}
DEFAULT_SHAPES = {
    "ppocr_det": (1, 3, 640, 640),
    "ppocr_rec": (1, 3, 48, 320),
    "ppocr_cls": (1, 3, 48, 192),
}


def _models_dir() -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise AnalysisError("built-in models", "package rapidocr_onnxruntime is not installed",
                            "pip package rapidocr_onnxruntime")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def builtin_path(name: str) -> Path:
    if name not in BUILTIN_FILES:
        raise AnalysisError(f"model {name!r}", "is not a built-in name", ", ".join(BUILTIN_FILES))
    path = _models_dir() / BUILTIN_FILES[name]
    if not path.is_file():
        raise AnalysisError(f"model {name!r}", f"file {path} is missing", "the rapidocr_onnxruntime model files")
    return path


def resolve_model(spec: str) -> tuple[Path, str | None]:
    """A built-in name or a path -> (path, built-in name or None).

    A path to one of the built-in files is recognised too, so it gets the default shape.
    """
    if spec in BUILTIN_FILES:
        return builtin_path(spec), spec
    path = Path(spec)
    try:
        resolved = path.resolve()
        for name, filename in BUILTIN_FILES.items():
            if resolved.name == filename and resolved == (_models_dir() / filename).resolve():
                return path, name
    except AnalysisError:
        pass
    return path, None
