"""One-off suites from command-line flags (`harness run --model ...`), and saving them.

The flags become TOML-shaped suite data that goes through the same validation as a suite file,
so a flag and a suite key are checked once, with the same messages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .suite import Suite, parse_suite


@dataclass(frozen=True)
class SuiteFlags:
    """What `harness run --model ...` was given, as flag text (None: not given).

    model: an .onnx/.mnn/.param path or a built-in model name; shape: '1x3x224x224' or
    'NAME:1x3x224x224,...'; engine: 'mnn,ncnn' or 'mnn==3.6.1'; threads, precision, backend:
    comma-separated lists; iterations, seconds (s), processes, warmup, timeout (s): numbers."""

    model: str
    shape: str | None = None
    engine: str | None = None
    threads: str | None = None
    precision: str | None = None
    backend: str | None = None
    iterations: int | None = None
    seconds: float | None = None
    processes: int | None = None
    warmup: int | None = None
    timeout: float | None = None


def _csv(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def _ints(flag: str, text: str | None) -> list[int] | None:
    items = _csv(text)
    if items is None:
        return None
    try:
        return [int(t) for t in items]
    except ValueError:
        raise InputError(flag, f"got {text!r}", "comma-separated integers such as 1,2,4") from None


def parse_shape_flag(text: str) -> list[dict]:
    """'1x3x48x192' or 'x:1x3x48x192,mask:1x48' -> [{'name':..., 'shape': [...]}, ...]."""
    out = []
    for part in text.split(","):
        name, _, dims = part.rpartition(":")
        if not re.fullmatch(r"\d+(x\d+)*", dims.strip()):
            raise InputError("--shape", f"got {text!r}", "dims joined by x, e.g. 1x3x224x224, "
                             "optionally NAME:dims, comma-separated per input")
        entry = {"shape": [int(d) for d in dims.strip().split("x")]}
        if name:
            entry["name"] = name.strip()
        out.append(entry)
    return out


def suite_dict(flags: SuiteFlags) -> dict:
    """The suite (as TOML data) that the flags describe; InputError names the bad flag."""
    from ..builtin import builtin_names
    engines: dict[str, list[str]] = {}
    for e in _csv(flags.engine) or ["mnn", "ncnn"]:
        name, _, ver = e.partition("==")
        engines.setdefault(name.strip(), []).append(ver.strip() or "installed")
    model: dict = {"name": Path(flags.model).stem.replace(".ncnn", "") or "model"}
    m = flags.model
    if m in builtin_names():
        model["builtin"] = m
    else:
        p = Path(m).expanduser().resolve()
        if not p.is_file():
            raise InputError("--model", f"{m!r} is neither a file nor a built-in model",
                             "an .onnx/.mnn/.param path or one of " + ", ".join(builtin_names()))
        if p.suffix == ".onnx":
            model["onnx"] = str(p)
        elif p.suffix == ".mnn":
            model["mnn"] = str(p)
        elif p.suffix == ".param":
            model["ncnn_param"], model["ncnn_bin"] = str(p), str(p.with_suffix(".bin"))
        else:
            raise InputError("--model", f"{m!r} has an unknown extension", ".onnx, .mnn or .param")
    if flags.shape:
        model["inputs"] = parse_shape_flag(flags.shape)
    data: dict = {"name": "adhoc", "engines": engines, "models": [model]}
    for key, val in (("threads", _ints("--threads", flags.threads)),
                     ("precisions", _csv(flags.precision)), ("backends", _csv(flags.backend))):
        if val:
            data[key] = val
    measure = {}
    for key, val in (("min_iterations", flags.iterations), ("min_seconds", flags.seconds),
                     ("processes", flags.processes), ("warmup", flags.warmup),
                     ("timeout_s", flags.timeout)):
        if val is not None:
            measure[key] = val
    if measure:
        data["measure"] = measure
    return data


def suite_from_flags(flags: SuiteFlags) -> tuple[Suite, dict]:
    """The validated suite the flags describe, and its TOML data (for `save_suite`)."""
    data = suite_dict(flags)
    return parse_suite(data, "command line", Path.cwd()), data


def save_suite(data: dict, path: str | Path) -> None:
    """Write suite data as a TOML suite file (atomically)."""
    import tomli_w
    from ..cache import atomic_write_bytes
    atomic_write_bytes(Path(path), tomli_w.dumps(data).encode())
