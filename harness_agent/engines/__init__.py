"""Engine adapters: one module per engine, each defining ``Adapter`` (see base.Adapter).

Adding an engine is one new module here plus its name in ADAPTERS.
"""

from __future__ import annotations

import importlib

ADAPTERS = {"mnn": "mnn", "ncnn": "ncnn", "onnxruntime": "onnxruntime"}


def load_adapter(engine: str):
    if engine not in ADAPTERS:
        raise ValueError("unknown engine %r (known: %s)" % (engine, ", ".join(sorted(ADAPTERS))))
    mod = importlib.import_module("." + ADAPTERS[engine], __name__)
    return mod.Adapter
