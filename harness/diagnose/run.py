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

import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from harness_agent import PROTOCOL
from harness_agent.engines.base import QUANTIZED
from harness_agent.protocol import OUTPUT_PREFIX
from ..cache import cache_root
from ..engines import adapter_class, engines_with
from ..jobs import job_input_names
from ..models.converters import Artifact
from ..models.prepare import PreparedModel
from ..errors import HarnessError, InputError
from ..executors.base import Executor, NoRuntime, crash_signal
from ..executors.local import LocalExecutor
from ..stats import latency_stats
from ..status import MEASURED
from ..verdict import output_verdict, tolerance_for
from . import compare as cmp
from . import ncnn_param
from .search import Attempt, FixResult, classify, search

ORT = "onnxruntime"


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
    """The model a diagnosis runs: prepared inputs and references, the engine's artifact, and
    the ONNX source (None for an engine-native file given without one)."""
    name: str
    pm: PreparedModel
    artifact: Artifact
    onnx: Path | None

    @property
    def inputs(self) -> list[Path]:
        return list(self.pm.inputs.inputs)

    @property
    def shapes(self) -> list[list[int]]:
        return [list(s) for s in self.pm.inputs.shapes]


def input_specs(files: list[str]) -> tuple:
    """InputSpecs from ``--input`` values: NAME=file.npy (that input), file.npz (one input per
    array, by array name) or file.npy (a model's only input); shapes and dtypes are the
    arrays'. Raises InputError for a file that is missing or not an array file."""
    import numpy as np

    from ..config.suite import InputSpec
    from ..models.inputs import npy_shape
    out = []
    for text in files:
        name, _, path = text.rpartition("=") if "=" in text else ("", "", text)
        p = Path(path).expanduser().resolve()
        if not p.is_file():
            raise InputError("--input", f"{text!r}: no such file",
                             "NAME=file.npy, file.npz or file.npy")
        if p.suffix == ".npz" and not name:
            try:
                with np.load(p, allow_pickle=False) as z:
                    names = list(z.keys())
            except Exception as e:  # noqa: BLE001 - one line whatever np.load raised
                raise InputError(str(p), f"is not a NumPy .npz file ({e})",
                                 "arrays written by numpy.savez") from None
            out += [InputSpec(shape=npy_shape(p, n), name=n, npy=p) for n in names]
        else:
            out.append(InputSpec(shape=npy_shape(p, name or None), name=name or None, npy=p))
    return tuple(out)


def resolve_model(model: str | Path, engine: str, shape: str | None = None,
                  onnx: str | Path | None = None, input_files: list[str] | None = None
                  ) -> Model:
    """An .onnx path, an engine-native file (.mnn, .param) or a built-in name -> prepared.

    ``shape``: input shapes in the harness.models.shapes grammar; ``input_files``: real inputs
    (see input_specs), instead of ``shape``. ``onnx``: the ONNX source of an engine-native file
    (for an onnxruntime reference; its input shapes serve when neither is given, else those the
    native file declares). Raises InputError for a model, shape or source that cannot be used."""
    from ..models.converters import native_suffixes
    from ..models.inputs import onnx_io_names
    from ..models.prepare import prepare_model
    from ..models.registry import model_spec
    layered = engines_with("LAYER_OUTPUTS")
    if engine not in layered:
        raise InputError("--engine", f"got {engine!r}",
                         f"{' or '.join(layered)} (engines with per-layer outputs)")
    if onnx is not None:
        onnx = Path(onnx).expanduser().resolve()
        if onnx.suffix != ".onnx" or not onnx.is_file():
            raise InputError("--onnx", f"{str(onnx)!r} is not an .onnx file",
                             "the model's ONNX source")
    native = Path(str(model)).suffix in native_suffixes()
    inputs = None
    if input_files:
        if shape is not None:
            raise InputError("--input", "given with --shape", "one of them (inputs have shapes)")
        inputs = input_specs(input_files)
    elif shape is None and native and onnx is not None:
        # the ONNX source's shapes (the native file's own, where it declares them, otherwise)
        inputs = model_spec(str(onnx), [engine]).inputs
    spec = model_spec(str(model), [engine], shape, inputs)
    pm = prepare_model(spec, [engine])
    fmt = adapter_class(engine).MODEL_FORMAT
    art = pm.artifacts.get(fmt)
    if not isinstance(art, Artifact):
        reason = art.reason if art is not None else f"no {fmt} model"
        raise InputError("--model", reason, f"a model {engine} can load")
    src = pm.onnx
    if onnx is not None:
        src = onnx
        n_in = len(onnx_io_names(src)[0])
        if n_in != len(pm.inputs.inputs):
            raise InputError("--onnx", f"{onnx} has {n_in} input(s), the model "
                             f"{len(pm.inputs.inputs)}", "the model's ONNX source")
    return Model(spec.name, pm, art, src)


def _check_config(engine: str, cfg: Config, where: str) -> None:
    cls = adapter_class(engine)
    if cfg.backend not in cls.BACKENDS:
        raise InputError(where, f"backend {cfg.backend!r}", "one of " + ", ".join(cls.BACKENDS))
    # the quantized precisions load another model (harness.models.quantize), which the
    # layer-by-layer comparison does not prepare
    floats = [p for p in cls.PRECISIONS if p not in QUANTIZED]
    if cfg.precision not in floats:
        raise InputError(where, f"precision {cfg.precision!r}"
                         + (" (quantized models are not diagnosed)"
                            if cfg.precision in QUANTIZED else ""),
                         "one of " + ", ".join(floats))
    if cfg.threads < 1:
        raise InputError(where, f"threads {cfg.threads}", "at least 1")


def _job(m: Model, engine: str, cfg: Config, files: dict | None = None,
         options: dict | None = None, **extra) -> dict:
    art = m.artifact
    job = {
        "protocol": PROTOCOL, "engine": engine, "version": "installed",
        "files": {k: str(v) for k, v in (files or art.files).items()},
        "inputs": [str(p) for p in m.inputs], "input_shapes": m.shapes,
        "input_names": job_input_names(art, m.pm.inputs),
        "output_names": list(art.output_names), "feed": dict(art.feed),
        "input_dtypes": list(m.pm.inputs.dtypes),
        "output_dtypes": list(m.pm.inputs.output_dtypes),
        "backend": cfg.backend, "precision": cfg.precision, "threads": int(cfg.threads),
        "options": dict(options or {}),
    }
    job.update(extra)
    return job


def _on_device(ex: Executor, job: dict, timeout_s: float, local_paths: tuple[str, ...] = ()
               ) -> dict:
    """Run a per-layer job through the executor: its ``mode`` key names the agent's mode;
    files, inputs and the keys in ``local_paths`` hold coordinator files, which are pushed."""
    job = dict(job)
    return ex.submit(job.pop("mode"), job, timeout_s, local_paths)


def crash_of(res: dict) -> tuple[str, str] | None:
    """(signal, where) of an agent that a signal killed (see executors.base.crash_signal),
    else None."""
    return crash_signal(str(res.get("error") or "")) if res.get("status") == "error" else None


def _locate_crash(ex: Executor, m: Model, engine: str, cfg: Config, options, timeout_s,
                  say) -> list[str]:
    """Run ``cfg`` as a measurement does (plain runs, light mode): if a signal kills it, run
    it again layer by layer to name the layer it dies in. Raises HarnessError naming the layer
    when the layer-by-layer run dies too; returns notes when only the plain run dies."""
    say(f"suspect {engine} {cfg.label()}: a plain run, as a measurement runs it")
    plain = _on_device(ex, _job(m, engine, cfg, options=options, mode="outputs",
                                iterations=1), timeout_s)
    crash = crash_of(plain)
    if crash is None:
        return []
    say(f"the plain run died with {crash[0]}: run it layer by layer to find where")
    walk = _on_device(ex, _job(m, engine, cfg, options=options, mode="dump"), timeout_s)
    where = crash_of(walk)
    if where is not None and where[1].startswith("layer "):
        raise HarnessError(f"{engine} {cfg.label()} crashes: the process dies with {where[0]} "
                           f"in {where[1]} (the first layer it reaches that does not complete, "
                           "run layer by layer)")
    return [f"a plain run dies with {crash[0]}, a layer-by-layer run (every blob kept, no "
            "in-place reuse) does not: the crash depends on how the engine reuses buffers"]


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
             inputs: list[str] | None = None,
             keep_tensors: bool = False,
             log: Callable[[str], None] | None = None) -> Diagnosis:
    """``onnx``: the ONNX source of an engine-native model (for reference=ORT). ``inputs``:
    real input files (NAME=file.npy, file.npz; see input_specs) instead of seeded ones.
    ``keep_tensors``: keep the dumped .npz files (in the diagnosis directory and in the
    device's directory for this diagnosis)."""
    say = log or (lambda _m: None)
    reference = REFERENCE if reference is None else reference
    m = resolve_model(model, engine, shape, onnx, inputs)
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
    ex = executor if executor is not None else LocalExecutor()
    work.mkdir(parents=True, exist_ok=True)
    try:
        ex.runtime(engine, "installed")
    except NoRuntime as e:
        raise HarnessError(f"{ex.name}: {e}") from None
    keep: list[Path] = []  # the patched param, when it lives in the diagnosis directory
    try:
        notes: list[str] = _locate_crash(ex, m, engine, suspect, options, timeout_s, say)

        # 1. the reference tensors
        local_refs: tuple[str, ...] = ()
        match_npz = None
        candidates: object = None
        if reference == ORT:
            from ..models.inputs import onnx_io_names
            from .onnx_ref import dump_all, fusion_candidates
            say("onnxruntime: every intermediate tensor")
            names = list(onnx_io_names(m.onnx)[0])
            dump = dump_all(m.onnx, names, [np.load(p) for p in m.inputs], work / "onnxruntime.npz")
            ref_npz, local_refs = str(dump.path), ("reference_npz",)
            out_keys = list(dump.outputs)
            fused = adapter_class(engine).ONNX_NAME_MATCH == "fused-ops"
            candidates = fusion_candidates(m.onnx) if fused else "*"
            ref_label = "onnxruntime cpu/fp32/1t"
            if (suspect.backend, suspect.precision) != ("cpu", "fp32"):
                say(f"{engine} cpu/fp32: a run to match tensor names by value")
                res = _need_ok(_on_device(ex, _job(m, engine, REFERENCE, options=options,
                                                   mode="dump", dump_path=ex.device_dir(did) +
                                                   "/match.npz"), timeout_s),
                               f"the {engine} cpu/fp32 matching run")
                match_npz = res["dump_path"]
            notes.append("tensors matched to ONNX names: " + (
                f"{engine} op names with fused element-wise successors, chosen by value"
                if fused else f"{engine} tensor names by value and graph order (see onnx_ref)"))
        else:
            say(f"reference {engine} {reference.label()}: dump every layer")
            res = _need_ok(_on_device(ex, _job(m, engine, reference, options=options,
                                               mode="dump", dump_path=ex.device_dir(did) +
                                               "/reference.npz"), timeout_s),
                           f"the reference run ({reference.label()})")
            ref_npz = res["dump_path"]
            out_keys = [OUTPUT_PREFIX + n for n in res.get("output_names") or []]
            ref_label = f"{engine} {reference.label()} ({res.get('backend')}/{res.get('precision')})"
            if res.get("status") == "fallback":
                notes.append(f"the reference ran as {res.get('backend')}/{res.get('precision')}")

        # 2. the suspect, compared layer by layer on the device
        say(f"suspect {engine} {suspect.label()}: compare every layer")
        sus = _need_ok(_on_device(ex, _job(m, engine, suspect, options=options, mode="compare",
                                    reference_npz=ref_npz, match_npz=match_npz,
                                    candidates=candidates, output_ref_keys=out_keys),
                               timeout_s, local_refs), f"the suspect run ({suspect.label()})")
        ran_as = (str(sus.get("backend")), str(sus.get("precision")))
        if sus.get("status") == "fallback":
            notes.append(f"the suspect ran as {ran_as[0]}/{ran_as[1]}, not {suspect.backend}/"
                         f"{suspect.precision}")
        notes.extend(str(n) for n in sus.get("notes") or [] if len(str(n)) < 300)
        strategy = adapter_class(engine).FIX_STRATEGY
        params = {}
        if strategy == "featmask":  # the layers' params are what a feature mask patches
            pf = ncnn_param.parse(m.artifact.files["param"])
            params = {lay.name: lay.params_text() for lay in pf.layers}
        final = _final(sus, ran_as[1])
        analysis = cmp.analyse(sus.get("layers") or [], ran_as[1], params, final["ok"])
        d = Diagnosis(did, created.timestamp(), ex.name, m.name, m.pm.source_sha,
                      m.artifact.sha256, engine, str(sus.get("engine_version")), suspect, ran_as,
                      ref_label, analysis, final, notes=notes, workdir=work)
        if analysis.culprit is None and not final["ok"]:
            notes.append("the final outputs diverge but no single layer exceeds the tolerance: "
                         "error accumulates over layers")

        # 3. a verified fix
        tol = tolerance_for(ran_as[1])
        if fix and final["ok"] and analysis.culprit is not None:
            notes.append("the final outputs are within tolerance: no fix searched")
        if fix and not final["ok"] and strategy == "featmask" and analysis.culprit is not None:
            src = Path(m.artifact.files["param"])
            counter = [0]

            def try_masks(masks: dict[str, int]) -> Attempt:
                counter[0] += 1
                mask = next(iter(masks.values()))
                dst = work / f"try{counter[0]}-31_{mask}.param"
                patched = ncnn_param.write_patched(src, masks, dst)
                say(f"try 31={mask} on {', '.join(masks)}")
                files = {"param": dst, "bin": m.artifact.files["bin"]}
                r = _on_device(ex, _job(m, engine, suspect, files=files, options=options,
                                        mode="outputs", iterations=3, reference_npz=ref_npz,
                                        output_ref_keys=out_keys), timeout_s, local_refs)
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
                    d.side_by_side = _side_by_side(ex, m, engine, suspect, d.patched_param,
                                                   options, timeout_s, ref_npz if ex.local and
                                                   reference != ORT else None, out_keys, work, say)
        elif fix and not final["ok"] and strategy == "precision_high":
            hi = Config(suspect.backend, "fp32", suspect.threads)
            say(f"{engine} {hi.label()} (high precision)")
            r = _on_device(ex, _job(m, engine, hi, options=options, mode="outputs", iterations=1,
                                    reference_npz=ref_npz, output_ref_keys=out_keys), timeout_s,
                           local_refs)
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
        removed = False
        if not keep_tensors:
            ex.remove_device_dir(did)
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


def _side_by_side(ex: Executor, m: Model, engine: str, cfg: Config, patched: Path,
                  options, timeout_s, ref_dump: str | None, out_keys: list[str], work: Path,
                  say) -> list[dict]:
    """Original and patched param through the normal measurement path (Executor.measure)."""
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
        rows.append(side_by_side_row(label, ex.measure(job, timeout_s), ref_from))
    return rows


def side_by_side_row(label: str, r: dict, ref_from: str) -> dict:
    """One line of the side-by-side table from a measurement result (latency in ms)."""
    lat = r.get("latency_ms") or []
    stats = latency_stats(lat)
    return {"param": label, "status": r.get("status"), "backend": r.get("backend"),
            "precision": r.get("precision"), "iterations": len(lat),
            "median_ms": stats.get("median_ms"), "p90_ms": stats.get("p90_ms"),
            "load_ms": r.get("load_ms"), "out_nan": r.get("out_nan"),
            "out_inf": r.get("out_inf"), "out_rel_err": r.get("out_rel_err"),
            "out_cosine": r.get("out_cosine"), "reference": ref_from, "error": r.get("error"),
            "verdict": output_verdict({**r, "has_reference": r.get("has_reference")})}


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


def write_rows(out_dir: Path, d: Diagnosis) -> Path:
    """DIR/_diagnoses/date=YYYY-MM-DD/part-<diagnosis_id>.parquet, written atomically ("_": not
    part of the measurement dataset that pandas.read_parquet(DIR) reads)."""
    from ..store.tables import write_diagnosis_rows
    return write_diagnosis_rows(out_dir, d.diagnosis_id, d.created_at, diagnosis_rows(d))


# -- profile --------------------------------------------------------------------------------------
@dataclass
class Profile:
    model: str
    engine: str
    engine_version: str
    config: Config
    ran_as: tuple[str, str]
    timing: str  # mnn-callback, ncnn-extract-delta
    layers: list[dict]  # index, name, type, ms, flops, onnx_nodes; execution order
    iterations: int
    note: str = ""
    profile_id: str = ""
    created_at: float = 0.0  # epoch seconds
    host: str = "local"
    model_sha256: str | None = None
    artifact_sha256: str | None = None
    input_shape: str | None = None
    flops_source: str | None = None  # how FLOPs were matched to layers; None: no FLOPs
    model_flops: int | None = None  # the whole ONNX model's (static analysis)
    file: Path | None = None  # the stored _profiles file, once written

    @property
    def total_ms(self) -> float:
        return sum(lay["ms"] or 0.0 for lay in self.layers)

    def top(self, n: int = 10) -> list[dict]:
        return sorted(self.layers, key=lambda lay: -(lay["ms"] or 0.0))[:n]


def _layer_flops(m: Model, engine: str, version: str, layers: list[dict], ex, options,
                 timeout_s: float, say) -> tuple[str | None, int | None, list[str]]:
    """Attach static FLOPs to `layers` (see harness.diagnose.profiles); returns (how they were
    matched or None, the model's FLOPs, notes). A by-value engine needs a CPU fp32 compare run
    against onnxruntime's intermediates; a failure there leaves FLOPs out with a note."""
    from ..analysis.onnx_stats import analyze_onnx
    from ..models.inputs import onnx_io_names
    from .onnx_ref import dump_all, fusion_candidates
    from .profiles import add_flops, direct_by_name, direct_by_value
    if m.onnx is None:
        return None, None, ["no ONNX source: no FLOPs (give --onnx with an .mnn/.param model)"]
    names = list(onnx_io_names(m.onnx)[0])
    try:
        stats = analyze_onnx(m.onnx, dict(zip(names, (tuple(s) for s in m.shapes))))
    except HarnessError as e:  # a graph the analysis cannot cost: times without FLOPs
        return None, None, [f"no FLOPs: the static analysis failed ({e})"]
    chains = fusion_candidates(m.onnx)
    match = adapter_class(engine).ONNX_NAME_MATCH
    if match == "fused-ops":
        tensors = {o: i for i, s in enumerate(stats.layers) for o in s.outputs}
        nodes = {s.name: s.outputs[0] for s in stats.layers if s.name and s.outputs}
        direct = direct_by_name(layers, tensors, nodes)
    else:
        say(f"{engine} cpu/fp32: a compare run against onnxruntime to match layers to ONNX "
            "nodes by value")
        work = cache_root() / "profile" / secrets.token_hex(4)
        work.mkdir(parents=True, exist_ok=True)
        try:
            dump = dump_all(m.onnx, names, [np.load(p) for p in m.inputs],
                            work / "onnxruntime.npz")
            res = _on_device(ex, _job(m, engine, REFERENCE, options=options, mode="compare",
                                      reference_npz=str(dump.path), candidates="*",
                                      version=version), timeout_s, ("reference_npz",))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if res.get("status") not in MEASURED:
            return None, stats.flops, [f"no FLOPs: the matching run failed ({res.get('status')})"]
        direct = direct_by_value(layers, res.get("layers") or [])
    lost = add_flops(layers, stats.layers, chains, direct)
    notes = []
    if lost:
        notes.append(f"{lost / 1e6:.4g} MFLOPs of the ONNX graph matched no {engine} layer")
    return f"onnx static analysis, layers matched {match}", stats.flops, notes


def profile(model: str | Path, engine: str, config: Config = REFERENCE, *,
            shape: str | None = None, inputs: list[str] | None = None, executor=None,
            iterations: int = 10, onnx: str | Path | None = None, flops: bool = True,
            version: str = "installed", options: dict | None = None, timeout_s: float = 300,
            log: Callable[[str], None] | None = None) -> Profile:
    """Per-layer times of one configuration, with each layer's FLOPs from the static analysis
    of the ONNX source (``flops=False``: without). ``version``: the engine version to run
    ("installed", or one the executor provisions). Store it with ``write_profile``."""
    say = log or (lambda _m: None)
    if iterations < 1:
        raise InputError("--iterations", f"got {iterations}", "at least 1")
    m = resolve_model(model, engine, shape, onnx, input_files=inputs)
    _check_config(engine, config, "profile configuration")
    ex = executor if executor is not None else LocalExecutor()
    created = datetime.now(timezone.utc)
    say(f"{engine} {version} {config.label()}: time every layer over {iterations} runs")
    r = _need_ok(_on_device(ex, _job(m, engine, config, options=options, mode="profile",
                                     iterations=iterations, version=version), timeout_s),
                 "the profile run")
    note = adapter_class(engine).LAYER_TIMES_NOTE
    layers = list(r.get("layers") or [])
    how, model_flops, notes = (None, None, [])
    if flops:
        how, model_flops, notes = _layer_flops(m, engine, version, layers, ex, options,
                                               timeout_s, say)
    from ..models.inputs import onnx_io_names
    from ..models.shapes import format_shapes
    names = (list(onnx_io_names(m.onnx)[0]) if m.onnx is not None
             else job_input_names(m.artifact, m.pm.inputs))
    return Profile(m.name, engine, str(r.get("engine_version")), config,
                   (str(r.get("backend")), str(r.get("precision"))), str(r.get("timing")),
                   layers, iterations, "; ".join([note] + notes) if note else "; ".join(notes),
                   profile_id=f"{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}",
                   created_at=created.timestamp(), host=ex.name,
                   model_sha256=m.pm.source_sha, artifact_sha256=m.artifact.sha256,
                   input_shape=format_shapes(dict(zip(names, (tuple(s) for s in m.shapes)))),
                   flops_source=how, model_flops=model_flops)


def write_profile(out_dir: str | Path, p: Profile) -> Path:
    """DIR/_profiles/date=YYYY-MM-DD/part-<profile_id>.parquet (harness.store.tables), written
    atomically; also sets ``p.file``."""
    from ..store.tables import write_profile_rows
    from .profiles import profile_rows
    p.file = write_profile_rows(out_dir, p.profile_id, p.created_at, profile_rows(p))
    return p.file
