"""The job a device agent runs: one configuration with every path it needs."""

from __future__ import annotations

from harness_agent import PROTOCOL
from .cache import sha256_file
from .engines import adapter_class
from .plan import Config
from .config.suite import Suite
from .models.prepare import PreparedModel


def job_input_names(art, inputs) -> list[str]:
    """The engine's name of each input file, in the files' order (matched by name through the
    artifact); [] when neither knows names (the agent then takes the engine's order)."""
    if art.input_names:
        return art.blobs_for(inputs.names)
    return list(inputs.names) if inputs.named else []


def build_job(suite: Suite, cfg: Config, pm: PreparedModel,
              start_temp_c: float | None = None) -> dict:
    """The measurement job of ``cfg``, with coordinator paths (the executor pushes the files
    and maps the paths to what the agent sees). ``start_temp_c``: the host's hottest thermal
    zone at the sweep's start (its probe), what ``cooldown_to_c`` is relative to."""
    art = pm.artifact(adapter_class(cfg.engine).MODEL_FORMAT, cfg.precision)
    m = suite.measure
    files = [*art.files.values(), *pm.inputs.inputs, *pm.inputs.references]
    return {
        "protocol": PROTOCOL,
        "engine": cfg.engine,
        "version": cfg.version,
        "files": {k: str(v) for k, v in art.files.items()},
        "inputs": [str(p) for p in pm.inputs.inputs],
        "input_shapes": [list(s) for s in pm.inputs.shapes],
        "input_names": job_input_names(art, pm.inputs),
        "references": [str(p) for p in pm.inputs.references],
        # the model's dtypes: an adapter notes where its engine holds another (int64 -> int32)
        "input_dtypes": list(pm.inputs.dtypes),
        "output_dtypes": list(pm.inputs.output_dtypes),
        "output_names": list(art.output_names),
        "feed": dict(art.feed),
        # the quantized ops the coordinator counted in the model ({} where it did not), and
        # whether the file runs as given (neither converted nor quantized here: it may
        # arrive quantized, which the engine's adapter then reads)
        "quant": {**art.quant, "as_given": not (art.converter or art.quantizer)},
        "backend": cfg.backend,
        "precision": cfg.precision,
        "threads": cfg.threads,
        "options": dict(suite.engine_options.get(cfg.engine, {})),
        "warmup": m.warmup,
        "min_iterations": m.min_iterations,
        "min_seconds": m.min_seconds,
        "max_iterations": m.max_iterations,
        "memory_limit_mb": m.memory_limit_mb,
        "cores": cfg.cores,
        "cooldown": {"pause_s": m.cooldown_s, "to_c": m.cooldown_to_c,
                     "max_s": m.cooldown_max_s, "baseline_c": start_temp_c},
        "sustained_s": m.sustained_s,
        # checked by the agent before loading: a file damaged on the device is never measured
        "sha256": {str(p): sha256_file(p) for p in files},
    }
