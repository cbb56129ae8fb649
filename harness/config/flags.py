"""One-off suites from command-line flags (`harness run --model ...`), and saving them.

The flags become TOML-shaped suite data that goes through the same validation as a suite file,
so a flag and a suite key are checked once, with the same messages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .suite import Suite, parse_suite


@dataclass(frozen=True)
class SuiteFlags:
    """What `harness run --model ...` was given, as flag text (None: not given).

    model: an .onnx/.mnn/.param path or a built-in model name; shape: '1x3x224x224' or
    'NAME:1x3x224x224,...'; engine: 'mnn,ncnn' or 'mnn==3.6.1'; threads, precision, backend:
    comma-separated lists; cores: a list of cores values (all, big, little, "0-3"; the flag
    repeats, since a CPU list has commas); iterations, seconds (s), processes, warmup,
    timeout (s): numbers; calibration: int8 calibration, a folder of .npy/.npz samples or
    images, or a count of seeded random samples."""

    model: str
    shape: str | None = None
    engine: str | None = None
    threads: str | None = None
    precision: str | None = None
    backend: str | None = None
    cores: list[str] | None = None
    iterations: int | None = None
    seconds: float | None = None
    processes: int | None = None
    warmup: int | None = None
    timeout: float | None = None
    calibration: str | None = None


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


def suite_dict(flags: SuiteFlags) -> dict:
    """The suite (as TOML data) that the flags describe; InputError names the bad flag."""
    from ..models.converters import converted_engines
    from ..models.registry import model_entry
    engines: dict[str, list[str]] = {}
    # without --engine: every engine whose models are converted from ONNX
    for e in _csv(flags.engine) or converted_engines():
        name, _, ver = e.partition("==")
        engines.setdefault(name.strip(), []).append(ver.strip() or "installed")
    model = model_entry(flags.model, flags.shape)
    if flags.calibration is not None:
        text = flags.calibration.strip()
        if text.isdigit():  # a count of random samples; the suite check wants it >= 1
            model["calibration_samples"] = int(text)
        else:
            model["calibration"] = str(Path(text).expanduser().resolve())
    data: dict = {"name": "adhoc", "engines": engines, "models": [model]}
    for key, val in (("threads", _ints("--threads", flags.threads)),
                     ("precisions", _csv(flags.precision)), ("backends", _csv(flags.backend))):
        if val:
            data[key] = val
    if flags.cores:
        data["cores"] = list(flags.cores)
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
    from ..store.atomic import atomic_write_bytes
    atomic_write_bytes(Path(path), tomli_w.dumps(data).encode())
