"""Render the HTML report in headless Chromium and check the screenshot is not blank.

Skipped when neither `chromium` nor `chromium-browser` is on PATH. The PNG is decoded here
with zlib (no imaging library needed): 8-bit RGB/RGBA/grey, non-interlaced, all five filters.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from harness.compare import compare
from harness.compare.synthetic import frame, rows_for
from tests.helpers import chromium


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def decode_png(data: bytes) -> np.ndarray:
    """(height, width, channels) uint8 array from an 8-bit, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0, "only 8-bit non-interlaced PNGs"
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    stride = width * channels
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = [0] * stride
    for y in range(height):
        f, line = int(rows[y, 0]), rows[y, 1:]
        if f == 0:
            cur_arr = line
        elif f == 2:
            cur_arr = ((line.astype(np.int32) + np.asarray(prev, np.int32)) & 0xFF)
        elif f == 1:  # Sub: a running sum per channel
            px = line.reshape(width, channels).astype(np.int64)
            cur_arr = (np.cumsum(px, axis=0) & 0xFF).reshape(stride)
        elif f in (3, 4):  # Average / Paeth depend on the left pixel: plain Python loop
            ln, cur = line.tolist(), [0] * stride
            for x in range(stride):
                a = cur[x - channels] if x >= channels else 0
                b = prev[x]
                if f == 3:
                    pred = (a + b) >> 1
                else:
                    c = prev[x - channels] if x >= channels else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (ln[x] + pred) & 0xFF
            cur_arr = np.asarray(cur)
        else:
            raise AssertionError(f"bad PNG filter {f}")
        out[y] = cur_arr
        prev = out[y].astype(np.int32).tolist() if f in (0, 1, 2) else list(cur)
    return out.reshape(height, width, channels).astype(np.uint8)


@pytest.mark.unit
def test_png_decoder_roundtrip():
    """The decoder itself, on a PNG built here with filter 0 and 2 rows."""
    img = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    raw = b"".join(b"\x00" + img[0].tobytes() for _ in [0]) + b"\x02" + (
        (img[1].astype(int) - img[0].astype(int)) & 0xFF).astype(np.uint8).tobytes()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    np.testing.assert_array_equal(decode_png(png), img)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("chromium / chromium-browser is not on PATH")
    rng = np.random.default_rng(0)
    rows = []
    for th in (1, 2, 4):
        for v, f in (("3.4.0", 1.0), ("3.6.1", 1.1)):
            rows += rows_for(model="det", threads=th, engine_version=v,
                             engine_version_requested=v, median_ms=20 * f / th, rng=rng)
    html = compare(frame(rows), "engine_version", "3.4.0", "3.6.1", resamples=300).to_html()
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    png = tmp_path / "shot.png"
    if chromium(browser, tmp_path / "profile", f"--screenshot={png}", "--window-size=1200,1600",
                page.as_uri()) is None:
        pytest.skip("chromium did not finish within 90 s")
    if not png.exists():
        pytest.skip("chromium wrote no screenshot (headless mode unavailable here)")
    img = decode_png(Path(png).read_bytes())
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    rgb = img[..., :3].astype(int)
    non_white = (rgb < 240).any(axis=2).mean()
    assert non_white > 0.02, "screenshot is (almost) blank"
    assert rgb.std() > 10
    # the base and head series colours (blue #1f77b4, orange #ff7f0e) are drawn
    blue = ((abs(rgb[..., 0] - 0x1f) < 30) & (abs(rgb[..., 1] - 0x77) < 30)
            & (abs(rgb[..., 2] - 0xb4) < 30)).sum()
    orange = ((abs(rgb[..., 0] - 0xff) < 30) & (abs(rgb[..., 1] - 0x7f) < 30)
              & (abs(rgb[..., 2] - 0x0e) < 30)).sum()
    assert blue > 50 and orange > 50
