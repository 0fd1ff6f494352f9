"""Experiment errors: every problem names file:line:column, the field path and a plain message."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ExperimentError(Exception):
    """An experiment file is invalid; `problems` lists what was found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid experiment"
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first + more)


def format_path(loc: tuple[Any, ...]) -> str:
    """('agents', 0, 'model') -> 'agents[0].model'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


# Where a problem points: at the offending key, at the value, or at the mapping lacking a field.
Locate = Callable[[tuple[Any, ...], str], tuple[int, int]]


def problems_from_validation(file: str, model: type[BaseModel], err: ValidationError,
                             locate: Locate) -> list[Problem]:
    """pydantic's errors as positioned, plain-language problems, one per place, in file order."""
    found: dict[tuple[int, int, str], Problem] = {}
    errors = err.errors(include_url=False)
    # A misspelt field is one mistake: "unknown field (did you mean 'x'?)" says it, so the
    # "x: field required" it also causes is left out.
    suggested = {(*tuple(e["loc"][:-1]), _suggestion(model, tuple(e["loc"])))
                 for e in errors if e["type"] == "extra_forbidden"}
    for e in errors:
        loc = tuple(e["loc"])
        kind = e["type"]
        if kind == "missing" and loc in suggested:
            continue
        if kind == "extra_forbidden":
            line, col = locate(loc, "key")
            message = unknown_field_message(model, loc)
        elif kind == "missing":
            line, col = locate(loc, "parent")
            message = "field required"
        else:
            line, col = locate(loc, "value")
            message = plain_message(e)
        path = format_path(loc)
        # Shorthands can make pydantic report one place twice; the first message is enough.
        found.setdefault((line, col, path), Problem(file, line, col, path, message))
    return sorted(found.values(), key=lambda p: (p.line, p.column))


def _suggestion(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """The valid field name closest to the unknown one at `loc`, if any is close."""
    owner = model_at(model, loc[:-1])
    if owner is None or not loc:
        return None
    names = [f.alias or n for n, f in owner.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_field_message(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    close = _suggestion(model, loc)
    return f"unknown field (did you mean '{close}'?)" if close else "unknown field"


def model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that validates the value at `loc` (list indexes are skipped)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) or next(
            (f for f in current.model_fields.values() if f.alias == part), None)
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


_EXPECTED = {
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
}


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (str, bool, int, float)):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if type(value) is dict:
        return "a mapping"
    if type(value) is list:
        return "a list"
    return type(value).__name__


def plain_message(e: Any) -> str:
    kind = e["type"]
    ctx = e.get("ctx") or {}
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {_shown(e.get('input'))}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(ctx.values()), "?")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        words = {"greater_than": "greater than", "greater_than_equal": "at least",
                 "less_than": "less than", "less_than_equal": "at most"}[kind]
        return f"must be {words} {bound}, got {_shown(e.get('input'))}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'one of the allowed values')}, " \
               f"got {_shown(e.get('input'))}"
    msg = str(e.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg[:1].lower() + msg[1:]
