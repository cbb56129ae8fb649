"""Models that ship with the harness: PP-OCR from the installed rapidocr package, and micro-models.

The PP-OCR files are read from the installed wheel, never copied into the repository or
downloaded at run time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import HarnessError
from .config.suite import InputSpec

_PPOCR = {
    "ppocr_det": ("ch_PP-OCRv4_det_infer.onnx", (1, 3, 640, 640)),
    "ppocr_rec": ("ch_PP-OCRv4_rec_infer.onnx", (1, 3, 48, 320)),
    "ppocr_cls": ("ch_ppocr_mobile_v2.0_cls_infer.onnx", (1, 3, 48, 192)),
}
_MICRO = {
    "convtranspose_upsampler": (1, 64, 128, 128),
    "reduction_sum_block": (1, 8, 128, 128),
}


def builtin_names() -> list[str]:
    return sorted(list(_PPOCR) + list(_MICRO))


def default_inputs(name: str) -> tuple[InputSpec, ...]:
    shape = _PPOCR[name][1] if name in _PPOCR else _MICRO[name]
    return (InputSpec(shape=shape),)


def builtin_onnx(name: str) -> Path:
    if name in _PPOCR:
        spec = importlib.util.find_spec("rapidocr_onnxruntime")
        if spec is None or not spec.submodule_search_locations:
            raise HarnessError(f"built-in model {name}: the rapidocr_onnxruntime package is not "
                               "installed (pip install rapidocr_onnxruntime)")
        path = Path(spec.submodule_search_locations[0]) / "models" / _PPOCR[name][0]
        if not path.is_file():
            raise HarnessError(f"built-in model {name}: {path} is missing from the installed "
                               "rapidocr_onnxruntime package")
        return path
    from . import micromodels
    return getattr(micromodels, name)()


def builtin_for_file(path: Path) -> str | None:
    """The built-in name whose ONNX file this is (same content), so its default shapes apply."""
    from .cache import sha256_file
    for name in _PPOCR:
        try:
            ref = builtin_onnx(name)
        except HarnessError:
            return None
        if ref.stat().st_size == path.stat().st_size and sha256_file(ref) == sha256_file(path):
            return name
    return None
