"""Input-shape text ("1x3x640x640", "x:1x3x640x640,y:1x4") and matching shapes to model inputs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .errors import AnalysisError

Shape = tuple[int, ...]
ShapeArg = Shape | Sequence[int] | Mapping[str, Sequence[int]]

_DIMS = re.compile(r"^\d+(?:[xX]\d+)*$")
_NAMED = re.compile(r"^(?P<name>[^:\s]+):(?P<dims>.+)$")


def _parse_dims(text: str, original: str) -> Shape:
    text = text.strip()
    if not _DIMS.match(text):
        raise AnalysisError(
            f"shape {original!r}", f"cannot read dimensions {text!r}",
            "positive integers joined by 'x', e.g. 1x3x640x640, or name:1x3x640x640,other:1x4",
        )
    dims = tuple(int(d) for d in re.split(r"[xX]", text))
    if any(d <= 0 for d in dims):
        raise AnalysisError(f"shape {original!r}", "a dimension is 0", "every dimension >= 1")
    return dims


def parse_shape(text: str) -> Shape | dict[str, Shape]:
    """'1x3x640x640' -> (1, 3, 640, 640); 'x:1x3x640x640,y:1x4' -> {'x': (...), 'y': (1, 4)}."""
    if not isinstance(text, str) or not text.strip():
        raise AnalysisError("shape", "empty shape text", "e.g. 1x3x640x640 or x:1x3x640x640")
    parts = [p.strip() for p in text.strip().split(",")]
    named = [_NAMED.match(p) for p in parts]
    if not any(named):
        if len(parts) > 1:
            raise AnalysisError(
                f"shape {text!r}", "commas separate inputs, so each part needs a name",
                "'x:1x3x640x640,y:1x4' (dimensions are joined with 'x', not ',')",
            )
        return _parse_dims(parts[0], text)
    if not all(named):
        raise AnalysisError(f"shape {text!r}", "mixes named and unnamed parts", "name:dims for every input")
    shapes: dict[str, Shape] = {}
    for match in named:
        assert match is not None
        name = match["name"]
        if name in shapes:
            raise AnalysisError(f"shape {text!r}", f"input {name!r} given twice", "each input once")
        shapes[name] = _parse_dims(match["dims"], text)
    return shapes


def format_shapes(shapes: Mapping[str, Sequence[int]]) -> str:
    """{'x': (1, 3, 640, 640)} -> 'x:1x3x640x640' (model input order is kept by the caller)."""
    return ",".join(f"{name}:{'x'.join(str(d) for d in dims)}" for name, dims in shapes.items())


def bind_shapes(
    given: ShapeArg | None, declared: Mapping[str, Sequence[int | None] | None], where: str
) -> dict[str, Shape]:
    """Match user shapes to the model's inputs, in the model's input order.

    `declared` maps each real input to its declared dims (a None dim is symbolic; None instead
    of dims means unknown rank). An input the user left out must be fully static in the model.
    A bare shape needs a single input.
    """
    if isinstance(given, str):
        given = parse_shape(given)
    if given is None:
        given_map: dict[str, Sequence[int]] = {}
    elif isinstance(given, Mapping):
        given_map = dict(given)
    else:
        if len(declared) != 1:
            raise AnalysisError(
                where, f"one shape given but the model has {len(declared)} inputs ({', '.join(declared)})",
                "name:dims for each input, e.g. " + ",".join(f"{n}:1x..." for n in declared),
            )
        given_map = {next(iter(declared)): given}
    unknown = [n for n in given_map if n not in declared]
    if unknown:
        raise AnalysisError(where, f"no model input named {', '.join(unknown)}", f"one of {', '.join(declared)}")
    bound: dict[str, Shape] = {}
    for name, dims in declared.items():
        if name not in given_map:
            if dims is None or any(d is None for d in dims):
                shown = "x".join("?" if d is None else str(d) for d in dims) if dims is not None else "(unknown rank)"
                raise AnalysisError(
                    where, f"input {name!r} has dynamic shape {shown}", "--shape with concrete dimensions"
                )
            bound[name] = tuple(int(d) for d in dims)  # type: ignore[arg-type]
            continue
        shape = tuple(int(d) for d in given_map[name])
        if any(d <= 0 for d in shape):
            raise AnalysisError(where, f"input {name!r} shape {shape} has a dimension <= 0", "positive dims")
        if dims is None:
            bound[name] = shape
            continue
        if len(shape) != len(dims):
            raise AnalysisError(
                where, f"input {name!r} has rank {len(dims)} but the shape given has rank {len(shape)}",
                f"{len(dims)} dimensions",
            )
        for i, (want, got) in enumerate(zip(dims, shape)):
            if want is not None and want != got:
                raise AnalysisError(
                    where, f"input {name!r} dimension {i} is fixed to {want} in the model, {got} given",
                    f"{want}",
                )
        bound[name] = shape
    return bound
