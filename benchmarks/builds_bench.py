"""Engines built from source: build times, and fidelity against the engines' own benchmarks.

    python benchmarks/builds_bench.py [--src DIR] [--cold] [--rounds 3] [--iters 50]

Build times: every build in the harness's build cache (build.json: seconds, and how many
compiler calls ccache answered), and the time a second request takes (a cache hit). With
``--cold``, ncnn and MNN are built once more for this machine in an empty cache (no build
cache, no ccache), then again with only ccache kept.

Fidelity: the harness's median latency over the tool's average, same source tree, same
model file, same threads (target <= 1.03):
  * ncnn: ``benchncnn`` loads the .param with zero weights (DataReaderFromEmpty) and fills
    its input with 0.01; the harness is given the same .param with an all-zero .bin of the
    same size and a constant 0.01 input, so both compute the same numbers.
  * MNN: ``benchmark.out`` loads the .mnn (real weights) with random inputs in [0, 1) at
    precision "high" (1), power high; the harness runs the same .mnn at fp32 ("high") with
    the engine option power = high.
Rounds alternate harness and tool so drift of the machine hits both alike. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.builds.build import build, build_root  # noqa: E402
from harness.builds.source import EngineSource  # noqa: E402
from harness.builds.target import this_python_target  # noqa: E402

SOURCES = {"ncnn": "ncnn-20260526.tar.xz", "mnn": "MNN-3.1.0.tar.xz"}


def _source(engine: str, src_dir: Path) -> EngineSource:
    return EngineSource(engine, str(src_dir / SOURCES[engine]), f"src:{engine}-bench")


def _build(source: EngineSource):
    t = this_python_target()
    return build(source, t.key(), lambda: t, progress=lambda m: None)


def build_times(src_dir: Path, cold: bool) -> None:
    for f in sorted(build_root().glob("*/build.json")):
        info = json.loads(f.read_text())
        cc = info.get("ccache") or {}
        print(f"build: {info['engine']} {info['name']} for {info['target']} "
              f"({','.join(info['options']['backends'])}): {info['seconds']:.0f} s"
              + (f", ccache {cc.get('hits', 0)} hits / {cc.get('misses', 0)} misses" if cc else ""))
    for engine in SOURCES:
        for attempt in ("first request", "second request"):
            t0 = time.perf_counter()
            b = _build(_source(engine, src_dir))
            print(f"build: {engine} (cpu) for {this_python_target().key()}, {attempt}: "
                  f"{time.perf_counter() - t0:.2f} s "
                  f"({'cache hit' if b.cache_hit else 'built'})")
    if not cold:
        return
    for engine in SOURCES:
        tmp = Path(tempfile.mkdtemp(prefix="bench-cold-"))
        old = os.environ.get("HARNESS_CACHE")
        os.environ["HARNESS_CACHE"] = str(tmp)
        try:
            src = _source(engine, src_dir)
            t0 = time.perf_counter()
            _build(src)
            cold_s = time.perf_counter() - t0
            shutil.rmtree(build_root() / next(p.name for p in build_root().iterdir()
                                              if (p / "build.json").exists()))
            t0 = time.perf_counter()
            _build(src)
            print(f"build: {engine} for {this_python_target().key()}: cold {cold_s:.0f} s, "
                  f"again with ccache only {time.perf_counter() - t0:.0f} s")
        finally:
            if old is None:
                os.environ.pop("HARNESS_CACHE", None)
            else:
                os.environ["HARNESS_CACHE"] = old
            shutil.rmtree(tmp, ignore_errors=True)


def _harness_median(source, engine, files, inputs, names, threads, iters) -> float:
    from harness.executors.local import LocalExecutor
    from harness_agent import PROTOCOL
    job = {"protocol": PROTOCOL, "engine": engine, "version": source.name,
           "files": {k: str(v) for k, v in files.items()}, "inputs": [str(p) for p in inputs],
           "input_shapes": [list(np.load(p).shape) for p in inputs],
           "input_names": names[0], "output_names": names[1], "references": [],
           "backend": "cpu", "precision": "fp32", "threads": threads, "warmup": 5,
           "min_iterations": iters, "max_iterations": iters, "min_seconds": 0,
           # benchmark.out's session: power high (its BackendConfig); benchncnn: powersave 0
           "options": {"power": "high"} if engine == "mnn" else {"powersave": 0}}
    res = LocalExecutor(sources={(engine, source.name): source}).measure(job, 900)
    if res.get("status") not in ("ok", "fallback"):
        raise SystemExit(f"harness run failed: {res.get('status')}: {res.get('error')}")
    return statistics.median(res["latency_ms"])


def _benchncnn(tool: Path, param: Path, shape_whc: list[int], threads: int, iters: int) -> float:
    p = subprocess.run([str(tool), str(iters), str(threads), "0", "-1", "0", f"param={param}",
                        "shape=[" + ",".join(map(str, shape_whc)) + "]"],
                       capture_output=True, text=True, timeout=900)
    m = re.search(r"avg =\s*([\d.]+)", p.stderr + p.stdout)
    if not m:
        raise SystemExit(f"benchncnn said: {(p.stderr + p.stdout)[-500:]}")
    return float(m.group(1))


def _benchmark_out(tool: Path, mnn: Path, threads: int, iters: int) -> float:
    d = Path(tempfile.mkdtemp(prefix="bench-mnn-"))
    try:
        shutil.copy(mnn, d / "model.mnn")
        env = dict(os.environ, LD_LIBRARY_PATH=str(tool.parent))
        # models_folder loop warmup forwardtype(0 CPU) threads precision(1 high)
        p = subprocess.run([str(tool), str(d), str(iters), "5", "0", str(threads), "1"],
                           capture_output=True, text=True, timeout=900, env=env)
        m = re.search(r"avg =\s*([\d.]+) ms", p.stdout + p.stderr)
        if not m:
            raise SystemExit(f"benchmark.out said: {(p.stdout + p.stderr)[-500:]}")
        return float(m.group(1))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def fidelity(src_dir: Path, model: str, rounds: int, iters: int,
             engines=("ncnn", "mnn")) -> None:
    from harness.config.suite import load_suite
    from harness.models.converters import engine_format
    from harness.models.prepare import prepare_model
    work = Path(tempfile.mkdtemp(prefix="bench-fidelity-"))
    if model == "squeezenet":  # the onnx package's classic CNN, with seeded weights
        from tests.classic_cnn import materialize
        entry = f'onnx = "{materialize("squeezenet", work, opset=13)}"'
    else:
        entry = f'builtin = "{model}"'
    (work / "s.toml").write_text(f'name = "f"\nengines = ["mnn", "ncnn"]\n'
                                 f'[[models]]\nname = "{model}"\n{entry}\n')
    pm = prepare_model(load_suite(work / "s.toml").models[0], ["mnn", "ncnn"])
    try:
        for engine in engines:
            source = _source(engine, src_dir)
            b = _build(source)
            art = pm.artifact(engine_format(engine))
            names = (list(art.input_names), list(art.output_names))
            files, inputs = dict(art.files), list(pm.inputs.inputs)
            if engine == "ncnn":
                zero_bin = work / "zero.bin"
                zero_bin.write_bytes(bytes(Path(art.files["bin"]).stat().st_size))
                files["bin"] = zero_bin
                shape = np.load(inputs[0]).shape  # NCHW; benchncnn takes [w,h,c]
                const = work / "const.npy"
                np.save(const, np.full(shape, 0.01, dtype=np.float32))
                inputs = [const]
            for threads in (1, 2):
                h, t = [], []
                for _ in range(rounds):
                    h.append(_harness_median(source, engine, files, inputs, names, threads, iters))
                    if engine == "ncnn":
                        t.append(_benchncnn(b.tools["benchncnn"], Path(files["param"]),
                                            [shape[3], shape[2], shape[1]], threads, iters))
                    else:
                        t.append(_benchmark_out(b.tools["benchmark.out"], Path(files["mnn"]),
                                                threads, iters))
                hm, tm = statistics.median(h), statistics.median(t)
                tool = "benchncnn avg" if engine == "ncnn" else "benchmark.out avg"
                print(f"fidelity: {model} {engine} {source.name} {threads}t harness median "
                      f"{hm:.2f} ms / {tool} {tm:.2f} ms = {hm / tm:.3f} (target <= 1.03; "
                      f"{rounds} alternating rounds x {iters} it)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=ROOT.parent / "shared" / "engine-src")
    ap.add_argument("--cold", action="store_true", help="also time builds in an empty cache")
    # PP-OCR's pnnx 20261020 .param files do not load in ncnn 20260526 (their Reshape
    # expressions: "expr divide by zero"); the onnx package's squeezenet does
    ap.add_argument("--model", default="squeezenet")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--skip-fidelity", action="store_true")
    ap.add_argument("--engines", default="ncnn,mnn")
    a = ap.parse_args()
    build_times(a.src, a.cold)
    if not a.skip_fidelity:
        fidelity(a.src, a.model, a.rounds, a.iters, tuple(a.engines.split(",")))


if __name__ == "__main__":
    main()
