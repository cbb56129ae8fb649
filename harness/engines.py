"""Coordinator-side view of the engines: what each adapter declares, without importing engines."""

from __future__ import annotations

from harness_agent.engines import ADAPTERS, load_adapter


def known_engines() -> list[str]:
    return sorted(ADAPTERS)


def adapter_class(engine: str):
    return load_adapter(engine)
