"""Helpers shared by several test modules (test modules do not import each other)."""

from __future__ import annotations

from pathlib import Path


def toml_value(v) -> str:
    """v as a TOML value: inline table, boolean, integer or basic string."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_inventory(path: Path, entries: list[dict]) -> Path:
    """Write an inventory file with one [[hosts]] table per entry; returns path."""
    text = ""
    for e in entries:
        text += "[[hosts]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in e.items()) + "\n"
    path.write_text(text)
    return path
