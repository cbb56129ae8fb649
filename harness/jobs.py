"""The job a device agent runs: one configuration with every path it needs."""

from __future__ import annotations

from typing import Callable

from harness_agent import PROTOCOL
from .cache import sha256_file
from .convert import Artifact
from .engines import adapter_class
from .plan import Config
from .prepare import PreparedModel
from .config.suite import Suite


def build_job(suite: Suite, cfg: Config, pm: PreparedModel,
              where: Callable[[object], str] = str) -> dict:
    """``where`` maps a coordinator path to the path the agent will see (identity locally)."""
    art = pm.artifacts[adapter_class(cfg.engine).MODEL_FORMAT]
    assert isinstance(art, Artifact)
    m = suite.measure
    files = [*art.files.values(), *pm.inputs.inputs, *pm.inputs.references]
    return {
        "protocol": PROTOCOL,
        "engine": cfg.engine,
        "version": cfg.version,
        "files": {k: where(v) for k, v in art.files.items()},
        "inputs": [where(p) for p in pm.inputs.inputs],
        "input_shapes": [list(s) for s in pm.inputs.shapes],
        "input_names": list(art.input_names),
        "references": [where(p) for p in pm.inputs.references],
        "output_names": list(art.output_names),
        "backend": cfg.backend,
        "precision": cfg.precision,
        "threads": cfg.threads,
        "options": dict(suite.engine_options.get(cfg.engine, {})),
        "warmup": m.warmup,
        "min_iterations": m.min_iterations,
        "min_seconds": m.min_seconds,
        "max_iterations": m.max_iterations,
        "memory_limit_mb": m.memory_limit_mb,
        # checked by the agent before loading: a file damaged on the device is never measured
        "sha256": {where(p): sha256_file(p) for p in files},
    }
