"""Coordinator-side view of the engines: what each adapter declares, without importing engines.

The adapters (harness_agent/engines/, one file per engine) are the only place that knows an
engine; the rest of the coordinator asks them through these functions.
"""

from __future__ import annotations

from harness_agent.engines import adapter_names, load_adapter


def known_engines() -> list[str]:
    """Every engine with an adapter, sorted."""
    return adapter_names()


def adapter_class(engine: str):
    """The Adapter class of ``engine`` (its declared capabilities; the engine is not imported).

    Raises ValueError for an unknown engine."""
    return load_adapter(engine)


def engines_with(capability: str) -> list[str]:
    """Engines whose adapter declares a truthy ``capability`` (e.g. "LAYER_OUTPUTS")."""
    return [e for e in adapter_names() if getattr(load_adapter(e), capability, None)]
