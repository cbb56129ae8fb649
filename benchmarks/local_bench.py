"""Local-path benchmarks: per-configuration overhead, latency fidelity, peak-RSS fidelity.

    python benchmarks/local_bench.py [--skip-overhead] [--iters 30]

Prints figures; asserts nothing (targets: overhead <= 0.3 s/config, fidelity <= 1.03,
RSS within 2 %).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TIGHT = r'''
import json, sys, time
import numpy as np
eng, files, inp, threads, warm, iters = json.loads(sys.argv[1])
x = np.load(inp)
if eng == "mnn":
    import MNN
    it = MNN.Interpreter(files["mnn"])
    s = it.createSession({"backend": "CPU", "numThread": threads, "precision": "high"})
    t_in = it.getSessionInput(s)
    it.resizeTensor(t_in, x.shape); it.resizeSession(s)
    outs = list(it.getSessionOutputAll(s).values())
    hosts = [MNN.Tensor(tuple(o.getShape()), MNN.Halide_Type_Float, np.zeros(tuple(o.getShape()), np.float32), MNN.Tensor_DimensionType_Caffe) for o in outs]
    def run():
        t_in.copyFrom(MNN.Tensor(x.shape, MNN.Halide_Type_Float, x, MNN.Tensor_DimensionType_Caffe))
        it.runSession(s)
        for o, h in zip(outs, hosts):
            o.copyToHostTensor(h); np.array(h.getNumpyData(), copy=True)
else:
    import ncnn
    net = ncnn.Net(); net.opt.num_threads = threads
    for k in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, k, False)
    net.load_param(files["param"]); net.load_model(files["bin"])
    x3 = np.ascontiguousarray(x[0])
    def run():
        ex = net.create_extractor(); ex.input("in0", ncnn.Mat(x3))
        _, m = ex.extract("out0"); np.array(m, copy=True)
run()
for _ in range(warm): run()
samples = []
for _ in range(iters):
    t0 = time.perf_counter_ns(); run(); samples.append((time.perf_counter_ns() - t0) / 1e6)
print(json.dumps(samples))
'''


def overhead(suite: Path) -> None:
    import pandas as pd
    out = Path(tempfile.mkdtemp(prefix="bench-smoke-"))
    try:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--data", str(out),
                        "--no-progress"], check=True, capture_output=True)
        wall = time.perf_counter() - t0
        df = pd.read_parquet(out)
        measured = (df.load_ms.fillna(0).sum() + df.warmup_ms.fillna(0).sum()) / 1e3 \
            + df.timed_s.fillna(0).sum()
        n = len(df)
        print(f"overhead: smoke suite {n} configurations, wall {wall:.1f} s, "
              f"load+warmup+timed {measured:.1f} s -> {(wall - measured) / n:.3f} s/config "
              f"(target <= 0.3)")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _harness_median(eng, art, pm, threads, warm, iters) -> float:
    from harness.executors.local import LocalExecutor
    from harness_agent import PROTOCOL
    job = {"protocol": PROTOCOL, "engine": eng,
           "files": {k: str(v) for k, v in art.files.items()},
           "inputs": [str(p) for p in pm.inputs.inputs], "input_shapes": [list(s) for s in pm.inputs.shapes],
           "input_names": list(art.input_names), "output_names": list(art.output_names),
           "references": [], "backend": "cpu", "precision": "fp32", "threads": threads,
           "warmup": warm, "min_iterations": iters, "max_iterations": iters, "min_seconds": 0}
    res = LocalExecutor().measure(job, 600)
    return statistics.median(res["latency_ms"])


def _tight_median(eng, art, pm, threads, warm, iters) -> float:
    arg = json.dumps([eng, {k: str(v) for k, v in art.files.items()}, str(pm.inputs.inputs[0]),
                      threads, warm, iters])
    p = subprocess.run([sys.executable, "-c", TIGHT, arg], capture_output=True, text=True,
                       check=True)
    return statistics.median(json.loads(p.stdout.strip().splitlines()[-1]))


def fidelity(iters: int, rounds: int) -> None:
    from harness.models.converters import engine_format
    from harness.models.prepare import prepare_model
    from harness.config.suite import ModelSpec
    from harness.models.registry import default_inputs
    pm = prepare_model(ModelSpec(name="det", builtin="ppocr_det",
                                 inputs=default_inputs("ppocr_det")), ["mnn", "ncnn"])
    for eng in ("mnn", "ncnn"):
        art = pm.artifact(engine_format(eng))
        for threads in (1, 2):
            h, t = [], []
            for _ in range(rounds):  # alternate so host drift hits both sides alike
                h.append(_harness_median(eng, art, pm, threads, 3, iters))
                t.append(_tight_median(eng, art, pm, threads, 3, iters))
            hm, tm = statistics.median(h), statistics.median(t)
            print(f"fidelity: det {eng} {threads}t harness {hm:.2f} ms / tight loop {tm:.2f} ms"
                  f" = {hm / tm:.3f} (target <= 1.03; {rounds} alternating rounds x {iters} it)")


def rss_fidelity() -> None:
    from harness.models.converters import engine_format
    from harness.models.prepare import prepare_model
    from harness.config.suite import ModelSpec
    from harness.models.registry import default_inputs
    from harness.executors.base import parse_lines
    from harness_agent import PROTOCOL
    if not shutil.which("/usr/bin/time") and not os.path.exists("/usr/bin/time"):
        print("rss fidelity: /usr/bin/time missing (apt-get install time)")
        return
    for model in ("ppocr_det", "convtranspose_upsampler"):
        pm = prepare_model(ModelSpec(name=model, builtin=model, inputs=default_inputs(model)),
                           ["mnn", "ncnn"])
        for eng in ("mnn", "ncnn"):
            art = pm.artifact(engine_format(eng))
            job = {"protocol": PROTOCOL, "engine": eng,
                   "files": {k: str(v) for k, v in art.files.items()},
                   "inputs": [str(p) for p in pm.inputs.inputs],
                   "input_names": list(art.input_names), "output_names": list(art.output_names),
                   "references": [str(p) for p in pm.inputs.references], "backend": "cpu",
                   "precision": "fp32", "threads": 2, "warmup": 2, "min_iterations": 5,
                   "min_seconds": 0}
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump(job, f)
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            p = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "harness_agent",
                                "measure", f.name], capture_output=True, text=True, env=env)
            os.unlink(f.name)
            res, _ = parse_lines(p.stdout)
            tv = next(int(ln.split(":")[1]) for ln in p.stderr.splitlines()
                      if "Maximum resident set size" in ln)
            ours = res["rss_process_peak_kb"]
            print(f"rss fidelity: {model} {eng}: agent peak {ours} KiB, /usr/bin/time {tv} KiB,"
                  f" diff {100.0 * (ours - tv) / tv:+.2f} % (target within 2 %)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if not a.skip_overhead:
        overhead(ROOT / "suites" / "smoke.toml")
    fidelity(a.iters, a.rounds)
    rss_fidelity()


if __name__ == "__main__":
    main()
