"""Input-shape text, the one grammar of every command, and matching shapes to model inputs.

Grammar: one input is dimensions joined by ``x`` (or ``X``): ``1x3x640x640``; ``scalar`` is a
0-d input. Several inputs are comma-separated and each is named: ``x:1x3x640x640,mask:1x48``.
A single input may be named or not. Every dimension is a positive integer. Each input may end
in a dtype (``ids:1x16:int64``, ``1x16:int64``; one of config.suite.DTYPES), which overrides the
dtype the model declares. A name may itself hold ``:`` (``input:0:1x3``): the text is read
from the right. The formatter writes the dims back (``name:1x3x640x640,...``), which is the
``input_shape`` of rows and of the models table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple, Optional, Union

from ..config.suite import DTYPES
from .errors import ModelError

Shape = tuple[int, ...]
ShapeArg = Union[Shape, Sequence[int], Mapping[str, Sequence[int]]]

_DIMS = re.compile(r"^\d+(?:[xX]\d+)*$")
_NAME = re.compile(r"^[^\s,]+$")
_EXPECTED = ("positive integers joined by 'x', e.g. 1x3x640x640, or name:1x3x640x640,other:1x4"
             " (a dtype may follow: ids:1x16:int64)")
SCALAR = "scalar"  # the dims text of a 0-d input


class InputText(NamedTuple):
    """One input of shape text: its name (None: unnamed), dims and dtype (None: the model's)."""
    name: Optional[str]
    shape: Shape
    dtype: Optional[str]


def _parse_dims(text: str, original: str, where: str) -> Shape:
    text = text.strip()
    if text == SCALAR:
        return ()
    if not _DIMS.match(text):
        raise ModelError(where, f"cannot read dimensions {text!r} in {original!r}", _EXPECTED)
    dims = tuple(int(d) for d in re.split(r"[xX]", text))
    if any(d <= 0 for d in dims):
        raise ModelError(where, f"a dimension is 0 in {original!r}", "every dimension >= 1")
    return dims


def _parse_part(part: str, original: str, where: str) -> InputText:
    """'[name:]dims[:dtype]', read from the right (a name may hold ':')."""
    pieces = part.split(":")
    dtype = None
    if len(pieces) > 1 and pieces[-1].strip() in DTYPES:
        dtype = pieces.pop().strip()
    elif len(pieces) > 2:
        raise ModelError(where, f"unknown dtype {pieces[-1].strip()!r} in {original!r}",
                         "one of " + ", ".join(DTYPES))
    dims = _parse_dims(pieces.pop(), original, where)
    name = ":".join(pieces).strip() if pieces else None
    if name is not None and not _NAME.match(name):
        raise ModelError(where, f"cannot read input name {name!r} in {original!r}", _EXPECTED)
    return InputText(name, dims, dtype)


def parse_inputs(text: str, where: str = "--shape") -> list[InputText]:
    """'ids:1x16:int64,x:1x3' -> [InputText('ids', (1, 16), 'int64'), InputText('x', ...)].

    ``where`` names the flag or key in error messages. Raises ModelError (one line) for empty
    text, unreadable or zero dimensions, an unknown dtype, unnamed parts among several, and
    repeated names."""
    if not isinstance(text, str) or not text.strip():
        raise ModelError(where, "empty shape text", "e.g. 1x3x640x640 or x:1x3x640x640")
    parts = [_parse_part(p.strip(), text, where) for p in text.strip().split(",")]
    named = [p.name is not None for p in parts]
    if not any(named):
        if len(parts) > 1:
            raise ModelError(
                where, f"{text!r}: commas separate inputs, so each part needs a name",
                "'x:1x3x640x640,y:1x4' (dimensions are joined with 'x', not ',')")
        return parts
    if not all(named):
        raise ModelError(where, f"{text!r} mixes named and unnamed parts",
                         "name:dims for every input")
    seen: set[str] = set()
    for p in parts:
        if p.name in seen:
            raise ModelError(where, f"input {p.name!r} given twice in {text!r}",
                             "each input once")
        seen.add(str(p.name))
    return parts


def parse_shape(text: str, where: str = "--shape") -> Shape | dict[str, Shape]:
    """'1x3x640x640' -> (1, 3, 640, 640); 'x:1x3x640x640,y:1x4' -> {'x': (...), 'y': (1, 4)}.

    The shapes of ``parse_inputs`` (dtypes dropped); the same errors."""
    parts = parse_inputs(text, where)
    if parts[0].name is None:
        return parts[0].shape
    return {str(p.name): p.shape for p in parts}


def shape_entries(text: str, where: str = "--shape") -> list[dict]:
    """Shape text as suite data: [{'shape': [...]}] or [{'name': ..., 'shape': [...]}, ...],
    with 'dtype' where the text gives one."""
    out = []
    for p in parse_inputs(text, where):
        entry: dict = {"name": p.name} if p.name is not None else {}
        entry["shape"] = list(p.shape)
        if p.dtype:
            entry["dtype"] = p.dtype
        out.append(entry)
    return out


def format_shapes(shapes: Mapping[str, Sequence[int]] | Iterable[tuple[str, Sequence[int]]]
                  ) -> str:
    """{'x': (1, 3, 640, 640)} (or pairs in model input order) -> 'x:1x3x640x640'."""
    pairs = shapes.items() if isinstance(shapes, Mapping) else shapes
    return ",".join(f"{name}:{'x'.join(str(d) for d in dims) if len(dims) else SCALAR}"
                    for name, dims in pairs)


def bind_shapes(given: ShapeArg | str | None,
                declared: Mapping[str, Sequence[int | None] | None], where: str
                ) -> dict[str, Shape]:
    """Match user shapes to the model's inputs, in the model's input order.

    `declared` maps each real input to its declared dims (a None dim is symbolic; None instead
    of dims means unknown rank). An input the user left out must be fully static in the model.
    A bare shape needs a single input. Raises ModelError naming the input at fault.
    """
    if isinstance(given, str):
        given = parse_shape(given)
    if given is None:
        given_map: dict[str, Sequence[int]] = {}
    elif isinstance(given, Mapping):
        given_map = dict(given)
    else:
        if len(declared) != 1:
            raise ModelError(
                where, f"one shape given but the model has {len(declared)} inputs "
                f"({', '.join(declared)})",
                "name:dims for each input, e.g. " + ",".join(f"{n}:1x..." for n in declared))
        given_map = {next(iter(declared)): given}
    unknown = [n for n in given_map if n not in declared]
    if unknown:
        raise ModelError(where, f"no model input named {', '.join(unknown)}",
                         f"one of {', '.join(declared)}")
    bound: dict[str, Shape] = {}
    for name, dims in declared.items():
        if name not in given_map:
            if dims is None or any(d is None for d in dims):
                shown = ("x".join("?" if d is None else str(d) for d in dims)
                         if dims is not None else "(unknown rank)")
                raise ModelError(where, f"input {name!r} has dynamic shape {shown}",
                                 "--shape with concrete dimensions")
            bound[name] = tuple(int(d) for d in dims)  # type: ignore[arg-type]
            continue
        shape = tuple(int(d) for d in given_map[name])
        if any(d <= 0 for d in shape):
            raise ModelError(where, f"input {name!r} shape {shape} has a dimension <= 0",
                             "positive dims")
        if dims is None:
            bound[name] = shape
            continue
        if len(shape) != len(dims):
            raise ModelError(
                where, f"input {name!r} has rank {len(dims)} but the shape given has rank "
                f"{len(shape)}", f"{len(dims)} dimensions")
        for i, (want, got) in enumerate(zip(dims, shape)):
            if want is not None and want != got:
                raise ModelError(
                    where, f"input {name!r} dimension {i} is fixed to {want} in the model, "
                    f"{got} given", f"{want}")
        bound[name] = shape
    return bound
