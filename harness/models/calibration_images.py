"""Calibration from a folder of images: decoding and the preprocessing a suite names.

An image becomes one input sample the way classification and OCR pipelines prepare theirs
(torchvision's ``Resize`` + ``ToTensor`` + ``Normalize``; PaddleOCR's ``NormalizeImage``):

  1. decode (Pillow), convert to 3-channel RGB (grey and palette images too, alpha dropped);
  2. resize to ``size`` = [height, width] (bilinear, the aspect ratio not kept; default: the
     model input's own H and W);
  3. reorder channels to ``channels`` ("RGB" or "BGR": OpenCV-trained models take BGR);
  4. value = (pixel / 255 - mean[c]) / std[c], mean and std on the 0..1 scale, per channel;
  5. lay out as the input's NCHW (or NHWC: a last dimension of 3) shape, batch 1.

Suite keys (a model's ``[models.preprocess]`` table): size, mean, std, channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config.toml import Table

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
CHANNEL_ORDERS = ("RGB", "BGR")


class ImageError(ValueError):
    """An image that cannot be decoded or does not fit the model input (message: one line)."""


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input. size: (height, width) in pixels or None (the
    input's); mean/std: per channel, on the 0..1 scale, in ``channels`` order."""
    size: tuple[int, int] | None = None
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channels: str = "RGB"

    def describe(self) -> str:
        """The settings in one line, for the row's ``calibration`` column and cache keys."""
        size = "input" if self.size is None else f"{self.size[0]}x{self.size[1]}"
        return (f"size={size} mean={','.join(f'{m:g}' for m in self.mean)} "
                f"std={','.join(f'{s:g}' for s in self.std)} {self.channels}")


def parse_preprocess(v: Table) -> Preprocess:
    """A ``[models.preprocess]`` table; InputError (one line, naming the key) on a bad one."""
    v.keys(("size", "mean", "std", "channels"))
    size = v.int_list("size")
    if size is not None and len(size) != 2:
        v.fail("size", "[height, width] in pixels", repr(list(size)))

    def triple(key: str, default):
        if key not in v:
            return default
        raw = v.t[key]
        if (not isinstance(raw, list) or len(raw) != 3
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw)):
            v.fail(key, "three numbers, one per channel (0..1 scale)", repr(raw))
        return tuple(float(x) for x in raw)
    std = triple("std", (1.0, 1.0, 1.0))
    if any(s <= 0 for s in std):
        v.fail("std", "positive numbers", repr(list(std)))
    channels = v.get("channels", str, "RGB")
    if channels not in CHANNEL_ORDERS:
        v.fail("channels", " or ".join(CHANNEL_ORDERS), repr(channels))
    return Preprocess(size=None if size is None else (size[0], size[1]),
                      mean=triple("mean", (0.0, 0.0, 0.0)), std=std, channels=channels)


def image_files(folder: Path) -> list[Path]:
    """The image files of a calibration folder (by suffix, case-insensitive), sorted."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def image_layout(shape: tuple[int, ...]) -> str:
    """"NCHW" or "NHWC" for a 4-d image input with 3 channels; ImageError otherwise."""
    if len(shape) == 4 and shape[1] == 3:
        return "NCHW"
    if len(shape) == 4 and shape[3] == 3:
        return "NHWC"
    raise ImageError(f"an image sample needs a 3-channel input of 4 dimensions (NCHW or "
                     f"NHWC), the model's is {'x'.join(map(str, shape))}")


def image_sample(path: Path, shape: tuple[int, ...], pre: Preprocess,
                 dtype: str = "float32") -> np.ndarray:
    """One image as an array of the input's ``shape`` (batch 1), preprocessed by ``pre``.
    ImageError when it cannot be decoded, or the size does not give the input's H and W."""
    from PIL import Image, UnidentifiedImageError

    layout = image_layout(tuple(shape))
    if shape[0] != 1:
        raise ImageError(f"an image is one sample: the input's batch must be 1, not {shape[0]}")
    h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    size = pre.size or (h, w)
    if tuple(size) != (h, w):
        raise ImageError(f"preprocess size {size[0]}x{size[1]} is not the model input's "
                         f"{h}x{w} (height x width)")
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB").resize((w, h), Image.BILINEAR)
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"not a readable image ({e})") from None
    x = np.asarray(rgb, dtype=np.float32) / 255.0                 # H, W, 3 in RGB
    if pre.channels == "BGR":
        x = x[:, :, ::-1]
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    x = x.transpose(2, 0, 1) if layout == "NCHW" else x
    return np.ascontiguousarray(x[None]).astype(dtype, copy=False)
