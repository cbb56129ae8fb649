"""Reading TOML files and checking their tables, with one-line errors that name the key path.

Validation is strict: an unknown key is an error, not ignored, so a typo never silently drops a
setting. Every error names the file (or other source), the key path and what was expected, for
example ``suite.toml: models[0].threads: got [0] (expected a non-empty list of integers >= 1)``.
Suites, inventories and compare thresholds are all checked through `Table`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, NoReturn

from ..errors import InputError


def type_name(v: Any) -> str:
    """The TOML name of a value's type, for messages: 'a table', 'a list', 'an integer', ..."""
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


class Table:
    """Typed accessors over one TOML table.

    ``where`` names the source (a file path, "command line"), ``path`` the table's key path
    inside it ("" for the top level, "models[0]", "measure"). Every accessor raises InputError
    (exit code 2) with the full key path on a wrong type, a missing required key or a value
    outside its choices.
    """

    def __init__(self, where: str, table: Any, path: str = ""):
        self.where, self.path = where, path
        if not isinstance(table, dict):
            self.fail("", "a table", type_name(table))
        self.t = table

    def __contains__(self, key: str) -> bool:
        return key in self.t

    def fail(self, key: str, expected: str, got: Any = None) -> NoReturn:
        """Raise InputError for `key` of this table: 'got <got>' (or 'bad value'), expected."""
        kp = f"{self.path}.{key}" if self.path and key else (key or self.path or "(top level)")
        what = f"{kp}: bad value" if got is None else f"{kp}: got {got}"
        raise InputError(self.where, what, expected)

    def keys(self, allowed: tuple[str, ...] | list[str]) -> None:
        """Refuse any key not in `allowed`."""
        for k in self.t:
            if k not in allowed:
                kp = f"{self.path}.{k}" if self.path else k
                raise InputError(self.where, f"{kp}: unknown key",
                                 "one of " + ", ".join(allowed))

    def get(self, key: str, kind: type, default: Any = None, required: bool = False) -> Any:
        """The value of `key` checked to be `kind` (int, float, str; an int is a float, a bool
        is neither); `default` when absent, or an error when `required`."""
        if key not in self.t:
            if required:
                self.fail(key, f"a required {kind.__name__ if isinstance(kind, type) else kind}",
                          "nothing")
            return default
        v = self.t[key]
        if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
            self.fail(key, "an integer", repr(v))
        if kind is float and (isinstance(v, bool) or not isinstance(v, (int, float))):
            self.fail(key, "a number", repr(v))
        if kind is str and not isinstance(v, str):
            self.fail(key, "a string", repr(v))
        return float(v) if kind is float else v

    def str_list(self, key: str, choices=None, default=None) -> tuple[str, ...] | None:
        """A non-empty list of strings (a single string counts as a list of one), each in
        `choices` when given; `default` when absent."""
        if key not in self.t:
            return default
        v = self.t[key]
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            self.fail(key, "a non-empty list of strings", repr(v))
        if choices is not None:
            for x in v:
                if x not in choices:
                    self.fail(key, "one of " + ", ".join(choices), repr(x))
        return tuple(v)

    def int_list(self, key: str, default=None, minimum: int = 1) -> tuple[int, ...] | None:
        """A non-empty list of integers >= `minimum` (a single integer counts as a list of
        one); `default` when absent."""
        if key not in self.t:
            return default
        v = self.t[key]
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if (not isinstance(v, list) or not v
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= minimum
                           for x in v)):
            self.fail(key, f"a non-empty list of integers >= {minimum}", repr(v))
        return tuple(v)

    def sub(self, key: str) -> "Table":
        """The sub-table at `key` (an error if it is not a table)."""
        return Table(self.where, self.t[key], f"{self.path}.{key}" if self.path else key)

    def item(self, key: str, index: int) -> "Table":
        """The `index`-th table of the array of tables at `key` ("key[index]" in messages)."""
        prefix = f"{self.path}.{key}" if self.path else key
        return Table(self.where, self.t[key][index], f"{prefix}[{index}]")


def read_toml(path: str | Path, what: str) -> dict:
    """A TOML file's data, or one clear InputError (missing, not text, not TOML).

    `what` names the kind of file in messages ("suite", "inventory")."""
    p = Path(path)
    if not p.is_file():
        raise InputError(str(path), f"{what} file not found", f"a TOML {what} file")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise InputError(str(path), f"not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise InputError(str(path), "not a text file", f"a TOML {what} file") from None
