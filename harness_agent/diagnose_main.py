"""Per-layer diagnosis on the device: python -m <agent>.diagnose_main JOB.json | - | --b64 BASE64

The job is a measurement job (engine, files, inputs, backend, precision, threads, options) plus
``mode``:

- ``dump``: run once, write every intermediate tensor to ``dump_path`` (.npz) and report
  per-layer statistics;
- ``compare``: run once and compare every intermediate with ``reference_npz`` on the device
  (``match_npz``, ``candidates``: how names are matched, see layers.CompareSink); per-layer
  statistics and errors come back, no tensor does (``dump_path`` optionally keeps them);
- ``outputs``: a plain whole-model run (the adapter's own run()), ``iterations`` times, comparing
  the final outputs with ``reference_npz[output_ref_keys[i]]``: used to verify a fix;
- ``profile``: per-layer times over ``iterations`` runs.

Prints exactly one result line, prefixed with the agent's result marker, on the real stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Dict, List

from . import PROTOCOL, RESULT_MARKER
from .runner import _Out

DIAGNOSE_PROTOCOL = 1
OUTPUT_PREFIX = "@output:"  # npz name of a final output in a dump


def _load(job: Dict[str, object]):
    import numpy as np

    from .engines import load_adapter

    adapter = load_adapter(str(job["engine"]))(job)
    inputs = [np.load(p) for p in job["inputs"]]
    adapter.load(dict(job["files"]), str(job["backend"]), str(job["precision"]),
                 int(job.get("threads", 1)), dict(job.get("options") or {}),
                 [list(s) for s in job.get("input_shapes") or [x.shape for x in inputs]])
    return adapter, inputs


def _final_outputs(job, adapter, outs, res) -> None:
    from . import layers
    from . import outputs as outm

    refs = None
    if job.get("reference_npz") and job.get("output_ref_keys"):
        refs = layers.NpzReader(str(job["reference_npz"]))
    keys = list(job.get("output_ref_keys") or [])
    descs = []
    for i, arr in enumerate(outs):
        d = outm.describe(arr)
        d["name"] = adapter.output_names[i] if i < len(adapter.output_names) else str(i)
        if refs is not None and i < len(keys) and keys[i] in refs:
            d["ref_name"] = keys[i]
            d.update(outm.compare(arr, refs.get(keys[i])))
        descs.append(d)
    res["outputs"] = descs
    res.update(outm.summarize(descs))


def run(job: Dict[str, object]) -> Dict[str, object]:
    from . import layers

    mode = str(job.get("mode", "compare"))
    res: Dict[str, object] = {"protocol": PROTOCOL, "diagnose_protocol": DIAGNOSE_PROTOCOL,
                              "mode": mode, "status": "error", "phase": "import",
                              "started_at": time.time()}
    adapter = None
    writer = None
    try:
        from .engines.base import Unsupported
        try:
            res["phase"] = "load"
            adapter, inputs = _load(job)
        except Unsupported as e:
            res["status"], res["error"] = "unsupported", str(e)
            return res
        res["engine_version"] = adapter.version()
        res["backend"], res["precision"] = adapter.effective_backend, adapter.effective_precision
        res["input_names"] = list(getattr(adapter, "input_names", []))
        res["output_names"] = list(adapter.output_names)
        res["phase"] = "run"
        t0 = time.perf_counter()
        if mode in ("dump", "compare"):
            if job.get("dump_path"):
                writer = layers.NpzWriter(str(job["dump_path"]))
            if mode == "dump":
                sink = layers.DumpSink(writer)
            else:
                ref = layers.NpzReader(str(job["reference_npz"]))
                match = layers.NpzReader(str(job["match_npz"])) if job.get("match_npz") else None
                sink = layers.CompareSink(ref, match, job.get("candidates"), writer)
            res["layers"], finals = adapter.walk(inputs, sink)
            _final_outputs(job, adapter, finals, res)
            if writer is not None:
                # the final outputs under their own names too (an MNN output is written by an
                # op of another name, e.g. a layout Raster)
                for name, arr in zip(res["output_names"], finals):
                    writer.add(OUTPUT_PREFIX + name, arr)
                writer.close()
                writer = None
                res["dump_path"] = str(job["dump_path"])
        elif mode == "outputs":
            iters = max(1, int(job.get("iterations", 1)))
            lat: List[float] = []
            outs = None
            for _ in range(iters):
                t1 = time.perf_counter()
                outs = adapter.run(inputs)
                lat.append((time.perf_counter() - t1) * 1e3)
            res["latency_ms"] = lat
            res["phase"] = "outputs"
            _final_outputs(job, adapter, outs, res)
        elif mode == "profile":
            res["layers"] = adapter.layer_times(inputs, max(1, int(job.get("iterations", 5))))
            res["timing"] = adapter.LAYER_TIMES
        else:
            raise ValueError("unknown diagnose mode %r" % mode)
        res["elapsed_s"] = time.perf_counter() - t0
        fell_back = (adapter.effective_backend != job["backend"]
                     or adapter.effective_precision != job["precision"])
        res["status"] = "fallback" if fell_back else "ok"
        res["phase"] = "done"
    except MemoryError:
        res["status"], res["error"] = "oom", "MemoryError in phase %s" % res["phase"]
    except Exception as e:  # the result must say what failed; the traceback goes to stderr
        traceback.print_exc()
        res["status"], res["error"] = "error", "%s in phase %s: %s" % (
            type(e).__name__, res["phase"], e)
    finally:
        if writer is not None:
            writer.abort()
        if adapter is not None:
            res["notes"] = adapter.notes
            res.update(adapter.details)
        res["ended_at"] = time.time()
    return res


def main(argv: List[str]) -> int:
    out = _Out()
    try:
        if len(argv) == 2 and argv[0] == "--b64":
            import base64
            text = base64.b64decode(argv[1]).decode()
        elif len(argv) == 1:
            text = sys.stdin.read() if argv[0] == "-" else open(argv[0]).read()
        else:
            sys.stderr.write("usage: python -m harness_agent.diagnose_main JOB.json|-|--b64 B64\n")
            return 2
        job = json.loads(text)
    except (OSError, ValueError) as e:
        out.line(RESULT_MARKER, {"protocol": PROTOCOL, "status": "error",
                                 "error": "bad job: %s" % e})
        return 2
    res = run(job)
    out.line(RESULT_MARKER, res)
    if job.get("cleanup"):
        for p in job["cleanup"]:
            try:
                os.unlink(str(p))
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
