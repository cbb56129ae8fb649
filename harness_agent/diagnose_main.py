"""The per-layer modes of the agent (``python -m harness_agent MODE JOB``).

The job is a measurement job (engine, files, inputs, backend, precision, threads, options) plus
what the mode needs:

- ``dump``: run once, write every intermediate tensor to ``dump_path`` (.npz) and report
  per-layer statistics;
- ``compare``: run once and compare every intermediate with ``reference_npz`` on the device
  (``match_npz``, ``candidates``: how names are matched, see layers.CompareSink); per-layer
  statistics and errors come back, no tensor does (``dump_path`` optionally keeps them);
- ``outputs``: a plain whole-model run (the adapter's own run()), ``iterations`` times, comparing
  the final outputs with ``reference_npz[output_ref_keys[i]]``: used to verify a fix;
- ``profile``: per-layer times over ``iterations`` runs.
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional

from .protocol import OUTPUT_PREFIX, Channel
from .status import Status

LAYER_MODES = ("dump", "compare", "outputs", "profile")


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
            d.update(outm.check_output(arr, refs.get(keys[i])))
        descs.append(d)
    res["outputs"] = descs
    res.update(outm.summarize(descs, len(keys) if refs is not None else 0))


def run(mode: str, job: Dict[str, object], res: Dict[str, object],
        out: Optional[Channel] = None) -> None:
    """Run ``job`` in one of LAYER_MODES and fill ``res``. With ``out``, each layer of a
    dump/compare walk is announced as it starts ({"running": "layer NAME (TYPE)"}), so an agent
    that dies in it is reported in that layer.

    Raises what the run raised (``Unsupported``, ``MemoryError``, any engine error) after
    recording what it knew; the caller turns it into a status.
    """
    from . import layers

    adapter = None
    writer = None
    try:
        res["phase"] = "load"
        adapter, inputs = _load(job)
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
            def on_layer(name: str, kind: str) -> None:
                if out is not None:
                    out.progress({"running": "layer %s (%s)" % (name, kind)})

            res["layers"], finals = adapter.walk(inputs, sink, on_layer)
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
            raise ValueError("unknown layer mode %r" % mode)
        res["elapsed_s"] = time.perf_counter() - t0
        fell_back = (adapter.effective_backend != job["backend"]
                     or adapter.effective_precision != job["precision"])
        res["status"] = Status.FALLBACK if fell_back else Status.OK
        res["phase"] = "done"
    finally:
        if writer is not None:
            writer.abort()
        if adapter is not None:
            res["notes"] = adapter.notes
            res.update(adapter.details)
        res["ended_at"] = time.time()
