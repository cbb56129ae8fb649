"""Engine adapters: one module per engine, each defining ``Adapter`` (see base.Adapter).

A module here is an engine: its file name is the engine's name in suites and rows, so adding an
engine is one new file and nothing else (the coordinator and the agent both discover it).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import List

_NOT_ENGINES = {"base"}


def adapter_names() -> List[str]:
    """Names of every engine adapter module in this package, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if not m.name.startswith("_") and m.name not in _NOT_ENGINES)


def load_adapter(engine: str):
    """The Adapter class of ``engine`` (imports the adapter module, not the engine itself).

    Raises ValueError for an unknown engine."""
    names = adapter_names()
    if engine not in names:
        raise ValueError("unknown engine %r (known: %s)" % (engine, ", ".join(names)))
    return importlib.import_module("." + engine, __name__).Adapter
