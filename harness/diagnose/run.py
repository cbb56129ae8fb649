"""The diagnose and profile API.

    from harness.diagnose import Config, diagnose, profile
    d = diagnose("reduction_sum_block", "ncnn", Config("vulkan", "fp16", 1))
    d.culprit.name, d.inheritors, d.fix.chosen.mask, d.files

A diagnosis runs the model under a suspect configuration and under a reference (the same
engine on the same host, CPU fp32 1 thread by default; or onnxruntime with every intermediate
exposed), compares every intermediate tensor in topological order and names the first layer
whose output diverges. For ncnn it then searches a verified per-layer feature mask (search.py)
and measures the original and patched param side by side through the normal measurement path;
for MNN, which has no per-layer switch, it checks whether precision=high fixes the output.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from harness_agent import PROTOCOL
from harness_agent.diagnose_main import OUTPUT_PREFIX
from ..cache import cache_root
from ..convert import Artifact
from ..errors import HarnessError, InputError
from ..stats import latency_stats
from ..status import MEASURED
from ..verdict import output_verdict, tolerance_for
from . import compare as cmp
from . import ncnn_param
from .device import DeviceRunner
from .search import Attempt, FixResult, classify, search

ORT = "onnxruntime"
ENGINES = ("ncnn", "mnn")


@dataclass(frozen=True)
class Config:
    backend: str = "cpu"
    precision: str = "fp32"
    threads: int = 1

    def label(self) -> str:
        return f"{self.backend}/{self.precision}/{self.threads}t"


REFERENCE = Config()


def parse_reference(text: str | None) -> Config | str:
    """'cpu,fp32,1' -> Config; 'onnxruntime' (or 'ort') -> ORT; None -> the default."""
    if text is None:
        return REFERENCE
    t = text.strip().lower()
    if t in (ORT, "ort"):
        return ORT
    parts = [p.strip() for p in t.split(",")]
    if len(parts) not in (2, 3) or not all(parts):
        raise InputError("--reference", f"got {text!r}",
                         "BACKEND,PRECISION[,THREADS] such as cpu,fp32,1, or onnxruntime")
    threads = 1
    if len(parts) == 3:
        try:
            threads = int(parts[2])
        except ValueError:
            raise InputError("--reference", f"thread count {parts[2]!r}", "an integer") from None
    return Config(parts[0], parts[1], threads)


# -- models ---------------------------------------------------------------------------------------
@dataclass
class Model:
    name: str
    pm: object  # harness.prepare.PreparedModel
    artifact: Artifact
    onnx: Path | None

    @property
    def inputs(self) -> list[Path]:
        return list(self.pm.inputs.inputs)

    @property
    def shapes(self) -> list[list[int]]:
        return [list(s) for s in self.pm.inputs.shapes]


def resolve_model(model: str | Path, engine: str, shape: str | None = None,
                  onnx: str | Path | None = None) -> Model:
    """An .onnx path, an engine-native file (.mnn, .param) or a built-in name -> prepared.

    ``onnx``: the ONNX source of an engine-native file (for an onnxruntime reference)."""
    from ..config.flags import SuiteFlags, suite_dict
    from ..config.suite import parse_suite
    from ..prepare import prepare_model
    if engine not in ENGINES:
        raise InputError("--engine", f"got {engine!r}", "ncnn or mnn (engines with per-layer "
                         "outputs)")
    def spec_of(path: str, shp: str | None):
        flags = SuiteFlags(model=path, shape=shp, engine=engine)
        return parse_suite(suite_dict(flags), "command line", Path.cwd()).models[0]

    if onnx is not None:
        onnx = Path(onnx).expanduser().resolve()
        if onnx.suffix != ".onnx" or not onnx.is_file():
            raise InputError("--onnx", f"{str(onnx)!r} is not an .onnx file",
                             "the model's ONNX source")
    if shape is None and onnx is not None and Path(str(model)).suffix in (".mnn", ".param"):
        # an engine-native file has no shapes of its own: take its ONNX source's
        shape = ",".join("x".join(map(str, s.shape)) for s in spec_of(str(onnx), None).inputs)
    if shape is None and Path(str(model)).suffix in (".mnn", ".param"):
        raise InputError("--shape", f"{model} is an engine-native file with no input shapes",
                         "--shape such as 1x3x224x224 (or --onnx with its ONNX source)")
    spec = spec_of(str(model), shape)
    pm = prepare_model(spec, [engine])
    fmt = "ncnn" if engine == "ncnn" else "mnn"
    art = pm.artifacts.get(fmt)
    if not isinstance(art, Artifact):
        raise InputError("--model", str(art), f"a model {engine} can load")
    src = pm.onnx
    if onnx is not None:
        src = onnx
        from ..convert import onnx_io_names
        if len(onnx_io_names(src)[0]) != len(pm.inputs.inputs):
            raise InputError("--onnx", f"{onnx} has {len(onnx_io_names(src)[0])} input(s), the "
                             f"model {len(pm.inputs.inputs)}", "the model's ONNX source")
    return Model(spec.name, pm, art, src)


def _check_config(engine: str, cfg: Config, where: str) -> None:
    from ..engines import adapter_class
    cls = adapter_class(engine)
    if cfg.backend not in cls.BACKENDS:
        raise InputError(where, f"backend {cfg.backend!r}", "one of " + ", ".join(cls.BACKENDS))
    if cfg.precision not in cls.PRECISIONS:
        raise InputError(where, f"precision {cfg.precision!r}",
                         "one of " + ", ".join(cls.PRECISIONS))
    if cfg.threads < 1:
        raise InputError(where, f"threads {cfg.threads}", "at least 1")


def _job(m: Model, engine: str, cfg: Config, files: dict | None = None,
         options: dict | None = None, **extra) -> dict:
    art = m.artifact
    job = {
        "protocol": PROTOCOL, "engine": engine, "version": "installed",
        "files": {k: str(v) for k, v in (files or art.files).items()},
        "inputs": [str(p) for p in m.inputs], "input_shapes": m.shapes,
        "input_names": list(art.input_names), "output_names": list(art.output_names),
        "backend": cfg.backend, "precision": cfg.precision, "threads": int(cfg.threads),
        "options": dict(options or {}),
    }
    job.update(extra)
    return job


def _need_ok(res: dict, what: str) -> dict:
    if res.get("status") not in MEASURED:
        raise HarnessError(f"{what} failed: {res.get('status')}: "
                           f"{' '.join(str(res.get('error') or '').split())[:400]}")
    return res


# -- results ----------------------------------------------------------------------------------
@dataclass
class Diagnosis:
    diagnosis_id: str
    created_at: float
    host: str
    model: str
    model_sha256: str
    artifact_sha256: str
    engine: str
    engine_version: str
    suspect: Config
    ran_as: tuple[str, str]  # effective (backend, precision)
    reference: str
    analysis: cmp.Analysis
    final: dict  # outputs, ok, detail
    fix: FixResult | None = None
    patched_param: Path | None = None
    high_precision: dict | None = None  # MNN: does precision=high fix the outputs?
    side_by_side: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    workdir: Path | None = None

    @property
    def culprit(self) -> cmp.LayerCheck | None:
        return self.analysis.culprit

    @property
    def inheritors(self) -> list[str]:
        return [lay.name for lay in self.analysis.inheritors]

    @property
    def diverged(self) -> bool:
        return self.culprit is not None or not self.final.get("ok", True)

    def rows(self) -> list[dict]:
        return diagnosis_rows(self)


def _final(res: dict, precision: str | None) -> dict:
    outs = res.get("outputs") or []
    status, detail, worst = classify(res, tolerance_for(precision))
    return {"ok": status == "ok", "status": status, "detail": detail, "outputs": outs, **worst}


# -- diagnose -------------------------------------------------------------------------------------
def diagnose(model: str | Path, engine: str, suspect: Config,
             reference: Config | str | None = None, *, shape: str | None = None,
             executor=None, out_dir: Path | str | None = None, fix: bool = True,
             side_by_side: bool = True, options: dict | None = None, timeout_s: float = 300,
             workdir: Path | str | None = None, onnx: str | Path | None = None,
             keep_tensors: bool = False,
             log: Callable[[str], None] | None = None) -> Diagnosis:
    """``onnx``: the ONNX source of an engine-native model (for reference=ORT).
    ``keep_tensors``: keep the dumped .npz files in the diagnosis directory."""
    say = log or (lambda _m: None)
    reference = REFERENCE if reference is None else reference
    m = resolve_model(model, engine, shape, onnx)
    _check_config(engine, suspect, "suspect configuration")
    if isinstance(reference, Config):
        _check_config(engine, reference, "--reference")
    elif reference != ORT:
        raise InputError("--reference", f"got {reference!r}", "a Config or 'onnxruntime'")
    elif m.onnx is None:
        raise InputError("--reference", "onnxruntime needs the model's ONNX source",
                         "an .onnx model, a built-in model, or --onnx with a native file")
    created = datetime.now(timezone.utc)
    did = f"{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    work = Path(workdir) if workdir else cache_root() / "diagnose" / did
    dev = DeviceRunner(executor, work, did)
    reason = dev.unsupported(engine)
    if reason:
        raise HarnessError(f"{dev.host}: {reason}")
    keep: list[Path] = []  # the patched param, when it lives in the diagnosis directory
    try:
        notes: list[str] = []

        # 1. the reference tensors
        local_refs: tuple[str, ...] = ()
        match_npz = None
        candidates: object = None
        if reference == ORT:
            from ..convert import onnx_io_names
            from .onnx_ref import dump_all, fusion_candidates
            say("onnxruntime: every intermediate tensor")
            names = list(onnx_io_names(m.onnx)[0])
            dump = dump_all(m.onnx, names, [np.load(p) for p in m.inputs], work / "onnxruntime.npz")
            ref_npz, local_refs = str(dump.path), ("reference_npz",)
            out_keys = list(dump.outputs)
            candidates = fusion_candidates(m.onnx) if engine == "mnn" else "*"
            ref_label = "onnxruntime cpu/fp32/1t"
            if (suspect.backend, suspect.precision) != ("cpu", "fp32"):
                say(f"{engine} cpu/fp32: a run to match tensor names by value")
                res = _need_ok(dev.run(_job(m, engine, REFERENCE, options=options, mode="dump",
                                            dump_path=dev.device_path("match.npz")), timeout_s),
                               f"the {engine} cpu/fp32 matching run")
                match_npz = res["dump_path"]
            notes.append("tensors matched to ONNX names: " + (
                "MNN op names with fused element-wise successors, chosen by value"
                if engine == "mnn" else "pnnx blob names by value and graph order (see onnx_ref)"))
        else:
            say(f"reference {engine} {reference.label()}: dump every layer")
            res = _need_ok(dev.run(_job(m, engine, reference, options=options, mode="dump",
                                        dump_path=dev.device_path("reference.npz")), timeout_s),
                           f"the reference run ({reference.label()})")
            ref_npz = res["dump_path"]
            out_keys = [OUTPUT_PREFIX + n for n in res.get("output_names") or []]
            ref_label = f"{engine} {reference.label()} ({res.get('backend')}/{res.get('precision')})"
            if res.get("status") == "fallback":
                notes.append(f"the reference ran as {res.get('backend')}/{res.get('precision')}")

        # 2. the suspect, compared layer by layer on the device
        say(f"suspect {engine} {suspect.label()}: compare every layer")
        sus = _need_ok(dev.run(_job(m, engine, suspect, options=options, mode="compare",
                                    reference_npz=ref_npz, match_npz=match_npz,
                                    candidates=candidates, output_ref_keys=out_keys),
                               timeout_s, local_refs), f"the suspect run ({suspect.label()})")
        ran_as = (str(sus.get("backend")), str(sus.get("precision")))
        if sus.get("status") == "fallback":
            notes.append(f"the suspect ran as {ran_as[0]}/{ran_as[1]}, not {suspect.backend}/"
                         f"{suspect.precision}")
        notes.extend(str(n) for n in sus.get("notes") or [] if len(str(n)) < 300)
        params = {}
        pf = None
        if engine == "ncnn":
            pf = ncnn_param.parse(m.artifact.files["param"])
            params = {lay.name: lay.params_text() for lay in pf.layers}
        final = _final(sus, ran_as[1])
        analysis = cmp.analyse(sus.get("layers") or [], ran_as[1], params, final["ok"])
        d = Diagnosis(did, created.timestamp(), dev.host, m.name, m.pm.source_sha,
                      m.artifact.sha256, engine, str(sus.get("engine_version")), suspect, ran_as,
                      ref_label, analysis, final, notes=notes, workdir=work)
        if analysis.culprit is None and not final["ok"]:
            notes.append("the final outputs diverge but no single layer exceeds the tolerance: "
                         "error accumulates over layers")

        # 3. a verified fix
        tol = tolerance_for(ran_as[1])
        if fix and final["ok"] and analysis.culprit is not None:
            notes.append("the final outputs are within tolerance: no fix searched")
        if fix and not final["ok"] and engine == "ncnn" and analysis.culprit is not None:
            src = Path(m.artifact.files["param"])
            counter = [0]

            def try_masks(masks: dict[str, int]) -> Attempt:
                counter[0] += 1
                mask = next(iter(masks.values()))
                dst = work / f"try{counter[0]}-31_{mask}.param"
                patched = ncnn_param.write_patched(src, masks, dst)
                say(f"try 31={mask} on {', '.join(masks)}")
                files = {"param": dst, "bin": m.artifact.files["bin"]}
                r = dev.run(_job(m, engine, suspect, files=files, options=options, mode="outputs",
                                 iterations=3, reference_npz=ref_npz, output_ref_keys=out_keys),
                            timeout_s, local_refs)
                status, detail, worst = classify(r, tol)
                lat = r.get("latency_ms") or []
                return Attempt(mask, list(masks), status, detail, _num(worst.get("rel_err")),
                               _num(worst.get("cosine")), _num(worst.get("max_abs_err")),
                               latency_stats(lat[1:] or lat).get("median_ms"), patched, dst)

            d.fix = search(try_masks, analysis.culprit.name, d.inheritors)
            if d.fix.chosen is not None:
                dest_dir = (Path(out_dir) / "_diagnoses" / "_patched" / did) if out_dir else work
                dest_dir.mkdir(parents=True, exist_ok=True)
                d.patched_param = dest_dir / (src.name.replace(".param", "") + ".fixed.param")
                shutil.copyfile(d.fix.chosen.param_path, d.patched_param)
                if side_by_side:
                    d.side_by_side = _side_by_side(dev, m, engine, suspect, d.patched_param,
                                                   options, timeout_s, ref_npz if dev.is_local and
                                                   reference != ORT else None, out_keys, work, say)
        elif fix and not final["ok"] and engine == "mnn":
            hi = Config(suspect.backend, "fp32", suspect.threads)
            say(f"MNN {hi.label()} (precision=high)")
            r = dev.run(_job(m, engine, hi, options=options, mode="outputs", iterations=1,
                             reference_npz=ref_npz, output_ref_keys=out_keys), timeout_s, local_refs)
            status, detail, worst = classify(r, tolerance_for(str(r.get("precision") or "fp32")))
            d.high_precision = {"fixes": status == "ok", "status": status, "detail": detail,
                                "ran_as": f"{r.get('backend')}/{r.get('precision')}", **worst}
            if ran_as[1] == "fp32":
                d.high_precision["note"] = ("the suspect already computed in fp32, so "
                                            "precision=high cannot change its result")

        if out_dir is not None:
            d.files.append(write_rows(Path(out_dir), d))
        if d.patched_param is not None:
            keep.append(d.patched_param)
    finally:
        dev.cleanup()
        removed = False
        if not keep_tensors:
            for p in work.glob("*.npz"):
                p.unlink()
            if workdir is None and not any(work in k.parents for k in keep):
                shutil.rmtree(work, ignore_errors=True)
                removed = True
    if removed:
        d.workdir = None
    return d


def _num(x) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def _side_by_side(dev: DeviceRunner, m: Model, engine: str, cfg: Config, patched: Path,
                  options, timeout_s, ref_dump: str | None, out_keys: list[str], work: Path,
                  say) -> list[dict]:
    """Original and patched param through the normal measurement path (runner, run_job)."""
    refs = [str(p) for p in m.pm.inputs.references]
    ref_from = "onnxruntime" if refs else ""
    if ref_dump:  # the reference configuration's own outputs, as the runner's .npy files
        from harness_agent.layers import NpzReader
        rd = NpzReader(ref_dump)
        if all(k in rd for k in out_keys):
            refs = []
            for i, k in enumerate(out_keys):
                p = work / f"reference-out{i}.npy"
                np.save(p, rd.get(k))
                refs.append(str(p))
            ref_from = "reference configuration"
    rows = []
    for label, files in (("original", m.artifact.files),
                         ("patched", {"param": patched, "bin": m.artifact.files["bin"]})):
        say(f"measure {label} param")
        job = _job(m, engine, cfg, files=files, options=options, references=refs, warmup=2,
                   min_iterations=10, min_seconds=0.2, max_iterations=1000)
        r = dev.measure(job, timeout_s)
        lat = r.get("latency_ms") or []
        stats = latency_stats(lat)
        row = {"param": label, "status": r.get("status"), "backend": r.get("backend"),
               "precision": r.get("precision"), "iterations": len(lat),
               "median_ms": stats.get("median_ms"), "p90_ms": stats.get("p90_ms"), "load_ms": r.get("load_ms"), "out_nan": r.get("out_nan"),
               "out_inf": r.get("out_inf"), "out_rel_err": r.get("out_rel_err"),
               "out_cosine": r.get("out_cosine"), "reference": ref_from,
               "error": r.get("error")}
        row["verdict"] = output_verdict({**r, "has_reference": r.get("has_reference")})
        rows.append(row)
    return rows


# -- rows -----------------------------------------------------------------------------------------
def _role(d: Diagnosis, lay: cmp.LayerCheck, t: cmp.TensorCheck) -> str:
    if t.diverged is None:
        return "unmatched"
    if d.culprit is not None and lay.name == d.culprit.name:
        return "culprit"
    if lay.name in set(d.inheritors):
        return "inheritor"
    return "divergent" if t.diverged else "ok"


def diagnosis_rows(d: Diagnosis) -> list[dict]:
    tol = d.analysis.tolerance
    fix = d.fix
    base = {
        "diagnosis_id": d.diagnosis_id, "created_at": d.created_at, "host": d.host,
        "model": d.model, "model_sha256": d.model_sha256, "artifact_sha256": d.artifact_sha256,
        "engine": d.engine, "engine_version": d.engine_version,
        "backend_requested": d.suspect.backend, "backend": d.ran_as[0],
        "precision_requested": d.suspect.precision, "precision": d.ran_as[1],
        "threads": d.suspect.threads, "reference": d.reference,
        "tol_rel_err": tol.rel_err, "tol_cosine": tol.cosine,
        "culprit": d.culprit.name if d.culprit else None, "final_ok": bool(d.final.get("ok")),
        "fix_mask": fix.mask if fix else None,
        "fix_verified": fix.verified if fix else None,
        "fix_layers": ",".join(fix.chosen.layers) if fix and fix.chosen else None,
        "high_precision_fixes": (d.high_precision or {}).get("fixes"),
    }
    rows = []
    for lay in d.analysis.layers:
        for t in lay.outputs:
            r = dict(base)
            r.update({
                "layer_index": lay.index, "layer_name": lay.name, "layer_type": lay.type,
                "layer_params": lay.params, "tensor": t.tensor, "ref_tensor": t.ref_tensor,
                "match": t.match, "shape": "x".join(str(s) for s in t.shape),
                "compared": t.diverged is not None, "diverged": t.diverged, "reason": t.reason,
                "role": _role(d, lay, t), "max_abs_err": t.max_abs_err, "rel_err": t.rel_err,
                "cosine": t.cosine,
            })
            for k in cmp.STAT_KEYS:
                r[k] = t.stats.get(k)
                r["ref_" + k] = t.ref_stats.get(k)
            rows.append(r)
    return rows


def _schema():
    import pyarrow as pa
    S, I, F, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
    cols = [("diagnosis_id", S), ("created_at", pa.timestamp("us", tz="UTC")), ("host", S),
            ("model", S), ("model_sha256", S), ("artifact_sha256", S), ("engine", S),
            ("engine_version", S), ("backend_requested", S), ("backend", S),
            ("precision_requested", S), ("precision", S), ("threads", I), ("reference", S),
            ("tol_rel_err", F), ("tol_cosine", F), ("culprit", S), ("final_ok", B),
            ("fix_mask", I), ("fix_verified", B), ("fix_layers", S),
            ("high_precision_fixes", B), ("layer_index", I), ("layer_name", S),
            ("layer_type", S), ("layer_params", S), ("tensor", S), ("ref_tensor", S),
            ("match", S), ("shape", S), ("compared", B), ("diverged", B), ("reason", S),
            ("role", S), ("max_abs_err", F), ("rel_err", F), ("cosine", F)]
    cols += [(k, I if k in ("nan", "inf") else F) for k in cmp.STAT_KEYS]
    cols += [("ref_" + k, I if k in ("nan", "inf") else F) for k in cmp.STAT_KEYS]
    return pa.schema(cols)


def write_rows(out_dir: Path, d: Diagnosis) -> Path:
    """DIR/_diagnoses/date=YYYY-MM-DD/part-<diagnosis_id>.parquet, written atomically ("_": not
    part of the measurement dataset that pandas.read_parquet(DIR) reads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    schema = _schema()
    rows = diagnosis_rows(d)
    cols = {}
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if f.name == "created_at":
            vals = [datetime.fromtimestamp(v, timezone.utc) for v in vals]
        elif pa.types.is_floating(f.type):
            vals = [None if v is None else float(v) for v in vals]
        cols[f.name] = pa.array(vals, type=f.type)
    table = pa.table(cols, schema=schema)
    date = datetime.fromtimestamp(d.created_at, timezone.utc).strftime("%Y-%m-%d")
    path = Path(out_dir) / "_diagnoses" / f"date={date}" / f"part-{d.diagnosis_id}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# -- profile --------------------------------------------------------------------------------------
NCNN_TIMING_NOTE = (
    "the ncnn Python binding exposes no per-layer timing (ncnn times layers only in builds "
    "with NCNN_BENCHMARK, which the PyPI wheel is not). The times below are extract deltas: "
    "each layer's blobs extracted in order, every earlier blob already computed; each extract "
    "waits for its blob (and downloads it from the GPU on Vulkan), so they are approximate")


@dataclass
class Profile:
    model: str
    engine: str
    engine_version: str
    config: Config
    ran_as: tuple[str, str]
    timing: str  # mnn-callback, ncnn-extract-delta
    layers: list[dict]  # index, name, type, ms, mflops; execution order
    iterations: int
    note: str = ""

    @property
    def total_ms(self) -> float:
        return sum(lay["ms"] or 0.0 for lay in self.layers)

    def top(self, n: int = 10) -> list[dict]:
        return sorted(self.layers, key=lambda lay: -(lay["ms"] or 0.0))[:n]


def profile(model: str | Path, engine: str, config: Config = REFERENCE, *,
            shape: str | None = None, executor=None, iterations: int = 10,
            options: dict | None = None, timeout_s: float = 300) -> Profile:
    if iterations < 1:
        raise InputError("--iterations", f"got {iterations}", "at least 1")
    m = resolve_model(model, engine, shape)
    _check_config(engine, config, "profile configuration")
    did = f"profile-{secrets.token_hex(4)}"
    work = cache_root() / "diagnose" / did
    dev = DeviceRunner(executor, work, did)
    try:
        r = _need_ok(dev.run(_job(m, engine, config, options=options, mode="profile",
                                  iterations=iterations), timeout_s), "the profile run")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    note = NCNN_TIMING_NOTE if engine == "ncnn" else (
        "time between MNN's before and after callbacks of each op (the callbacks add a little "
        "per op)")
    return Profile(m.name, engine, str(r.get("engine_version")), config,
                   (str(r.get("backend")), str(r.get("precision"))), str(r.get("timing")),
                   list(r.get("layers") or []), iterations, note)
