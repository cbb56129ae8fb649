"""Peak memory of `models stats` (static analysis) on a large model, against the file's size.

    python benchmarks/analysis_memory.py [--keep DIR]

Builds a VGG-19 with seeded random float32 weights (143.7 M parameters, about 575 MB; its
first classifier weight is stored 4-D behind a Reshape, as Caffe-era exports write it),
analyses it in a fresh process and prints that process's peak resident memory (VmHWM) next
to the file size, and the same for a process that only imports the analysis (the baseline of
Python, onnx and onnxruntime). Target: the peak stays within about 1.5x the file size.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"]

PROBE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from harness.analysis import analyze_onnx
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
t = time.perf_counter()
out = {"import_hwm": hwm()}
if sys.argv[2]:
    s = analyze_onnx(sys.argv[2])
    out.update(params=s.params, macs=s.macs, naive=s.naive_activation_bytes,
               plan=s.greedy_plan_bytes, notes=s.notes)
out.update(hwm=hwm(), seconds=time.perf_counter() - t)
print(json.dumps(out))
"""


def build_vgg19(path: Path, seed: int = 0) -> int:
    """Write a seeded VGG-19 to `path`; returns its parameter count."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, count = [], [], 0

    def weight(name: str, shape: tuple[int, ...]) -> str:
        nonlocal count
        arr = rng.standard_normal(shape, dtype=np.float32)
        arr *= np.float32(0.01)
        inits.append(numpy_helper.from_array(arr, name))
        count += arr.size
        return name

    x, cin = "x", 3
    for i, v in enumerate(VGG19):
        if v == "M":
            nodes.append(helper.make_node("MaxPool", [x], [f"p{i}"], kernel_shape=[2, 2],
                                          strides=[2, 2]))
            x = f"p{i}"
            continue
        w, b = weight(f"conv{i}_w", (v, cin, 3, 3)), weight(f"conv{i}_b", (v,))
        nodes.append(helper.make_node("Conv", [x, w, b], [f"c{i}"], kernel_shape=[3, 3],
                                      pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        x, cin = f"r{i}", v
    nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
    w4d = weight("fc6_w4d", (4096, 512, 7, 7))
    inits.append(numpy_helper.from_array(np.array([4096, 25088], np.int64), "fc6_shape"))
    nodes.append(helper.make_node("Reshape", [w4d, "fc6_shape"], ["fc6_w"]))
    x = "flat"
    for name, n_in, n_out in (("fc6", 25088, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)):
        w = "fc6_w" if name == "fc6" else weight(f"{name}_w", (n_out, n_in))
        b = weight(f"{name}_b", (n_out,))
        nodes.append(helper.make_node("Gemm", [x, w, b], [name], transB=1))
        if name != "fc8":
            nodes.append(helper.make_node("Relu", [name], [f"{name}_r"]))
            x = f"{name}_r"
    graph = helper.make_graph(
        nodes, "vgg19", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("fc8", TensorProto.FLOAT, [1, 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return count


def probe(model: Path | None) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT), str(model or "")],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", metavar="DIR",
                    help="write (or reuse) the model in DIR instead of a temp dir")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "vgg19_seeded.onnx"
        if not path.is_file():
            t = time.perf_counter()
            n = build_vgg19(path)
            print(f"built {path} ({n:,} params) in {time.perf_counter() - t:.1f} s")
        size = path.stat().st_size
        base = probe(None)
        run = probe(path)
        mib = 1 << 20
        print(f"file size            {size / mib:8.1f} MiB")
        print(f"import-only VmHWM    {base['hwm'] / mib:8.1f} MiB")
        print(f"analysis VmHWM       {run['hwm'] / mib:8.1f} MiB"
              f"  = {run['hwm'] / size:.2f} x file size"
              f"  ({(run['hwm'] - base['hwm']) / size:.2f} x above the import baseline)")
        print(f"analysis time        {run['seconds']:8.1f} s")
        print(f"params {run['params']:,}  MACs {run['macs']:,}"
              f"  activations naive {run['naive']:,} B"
              f"  plan {run['plan']:,} B")
        for note in run["notes"]:
            print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
