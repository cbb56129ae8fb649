"""fp32 against int8 on every engine: latency ratio with its CI and accuracy, as a table.

    python benchmarks/int8_table.py [--threads 1] [--processes 3] [--iterations 20]
                                    [--ncnn-tools PATH] [--data DIR]

Models: PP-OCRv4 det (the rapidocr wheel's) on a rendered text line, calibrated on 12 other
rendered text images (seeded; PaddleOCR's preprocessing: BGR, mean 0.485/0.456/0.406, std
0.229/0.224/0.225), and squeezenet (the onnx package's backend test model, seeded weights,
opset 13) on a random input with 8 random calibration samples. Engines: MNN (mnnquant),
onnxruntime (static QDQ) and ncnn (ncnn2table + ncnn2int8 built from --ncnn-tools, default
../shared/engine-src/ncnn-20260526.tar.xz). Prints `harness compare --dimension precision`'s
table and a summary line per model x engine. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def text_image(path: Path, rng: np.random.Generator, size=(320, 320)) -> None:
    """A light page with a few dark lines of seeded pseudo-text (PIL's default font)."""
    from PIL import Image, ImageDraw
    im = Image.new("RGB", size, tuple(int(v) for v in rng.integers(200, 256, 3)))
    d = ImageDraw.Draw(im)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    for line in range(int(rng.integers(3, 7))):
        text = "".join(rng.choice(list(letters), int(rng.integers(8, 30))))
        y = 20 + line * 45 + int(rng.integers(0, 10))
        d.text((int(rng.integers(5, 40)), y), text, fill=tuple(int(v) for v in
                                                                 rng.integers(0, 80, 3)))
    im = im.resize((size[0] * 2, size[1] * 2)).resize(size)  # thicker, smoother strokes
    im.save(path)


def main(argv=None) -> int:
    from harness.compare import compare
    from harness.config.suite import load_suite
    from harness.coordinator import run_suite
    from harness.models.calibration_images import Preprocess, image_sample
    from harness.results import load
    from tests.classic_cnn import materialize

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--ncnn-tools", default=str(ROOT.parent / "shared" / "engine-src"
                                                / "ncnn-20260526.tar.xz"))
    ap.add_argument("--data", default=None)
    args = ap.parse_args(argv)

    d = Path(args.data or tempfile.mkdtemp(prefix="int8-"))
    rng = np.random.default_rng(7)
    (d / "pages").mkdir(parents=True, exist_ok=True)
    for i in range(13):
        text_image(d / "pages" / f"p{i:02d}.png", rng)
    pre = Preprocess(mean=MEAN, std=STD, channels="BGR")
    np.save(d / "page.npy", image_sample(d / "pages" / "p12.png", (1, 3, 320, 320), pre))
    (d / "pages" / "p12.png").unlink()  # the measured page is not a calibration sample
    materialize("squeezenet", d, opset=13)
    (d / "suite.toml").write_text(f"""
name = "int8-table"
engines = {{ mnn = "installed", ncnn = "installed", onnxruntime = "installed" }}
precisions = ["fp32", "int8"]
threads = [{args.threads}]
[quantize]
ncnn_tools = "{args.ncnn_tools}"
[measure]
warmup = 2
min_iterations = {args.iterations}
min_seconds = 0.0
processes = {args.processes}
timeout_s = 900
[[models]]
name = "ppocr_det"
builtin = "ppocr_det"
inputs = [{{ name = "x", shape = [1, 3, 320, 320], npy = "page.npy" }}]
calibration = "pages"
[models.preprocess]
mean = {list(MEAN)}
std = {list(STD)}
channels = "BGR"
[[models]]
name = "squeezenet"
onnx = "squeezenet.onnx"
calibration_samples = 8
""")
    rep = run_suite(load_suite(d / "suite.toml"), d / "results", progress=False)
    bad = [r for r in rep.rows if r["status"] not in ("ok", "fallback")]
    for r in bad:
        print(f"{r['model']} {r['engine']} {r['precision_requested']}: {r['status']} "
              f"{(r.get('error') or '')[:200]}")
    df = load(d / "results", run_id=[rep.run_id])
    res = compare(df, "precision", "fp32", "int8")
    print(res.to_table())
    for (model, engine), g in df.groupby(["model", "engine"], observed=True):
        f32 = g[g.precision_requested == "fp32"]
        i8 = g[g.precision_requested == "int8"]
        if not len(f32) or not len(i8):
            continue
        ops = i8["int8_ops"].iloc[0], i8["ops_total"].iloc[0]
        print(f"{model:11s} {engine:11s} fp32 {f32.median_ms.median():8.2f} ms  int8 "
              f"{i8.median_ms.median():8.2f} ms  int8 cosine {i8.out_cosine.min():.4f} "
              f"(fp32 {f32.out_cosine.min():.6f})  int8 ops {ops[0]}/{ops[1]}  "
              f"{i8.precision.iloc[0]}  verdict {i8.verdict.iloc[0]}")
    print(f"dataset {d / 'results'}; run {rep.run_id} in {rep.wall_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
