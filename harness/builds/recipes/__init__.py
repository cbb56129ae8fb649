"""Build recipes, one file per engine: CMake flags, targets, and how the Python module and the
engine's own benchmark program are made from a source tree. ``recipe_for(engine)``."""

from __future__ import annotations

import importlib

from ..build import BuildFailed


def recipe_for(engine: str):
    """The recipe module of ``engine``. Raises BuildFailed when the engine has none."""
    try:
        return importlib.import_module(f"{__name__}.{engine}")
    except ModuleNotFoundError:
        raise BuildFailed(f"{engine}: no build recipe (source builds exist for "
                          f"{', '.join(known())})") from None


def known() -> list[str]:
    import pkgutil
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def recipe_text(engine: str) -> str:
    """The source text of ``engine``'s recipe ('' when it has none): part of a build's key."""
    from pathlib import Path
    p = Path(__file__).with_name(f"{engine}.py")
    return p.read_text() if p.is_file() else ""
