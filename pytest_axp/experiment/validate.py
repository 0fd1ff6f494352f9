"""From parsed YAML to a validated model, with pydantic's errors made plain and positioned."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import ExperimentError, Problem, format_path
from .models import ExperimentV1, ExperimentV2
from .yamlsource import YamlSource

_AXES = ("agents", "prompts", "environments", "products", "extensions", "matrix", "flow")


def is_experiment_document(data: object) -> bool:
    return isinstance(data, dict) and "schema_version" in data and any(k in data for k in _AXES)


def validate(source: YamlSource) -> ExperimentV1 | ExperimentV2:
    data = source.data
    if not isinstance(data, dict):
        raise ExperimentError([source.problem((), "the top level must be a mapping of fields",
                                              path="")])
    version = data.get("schema_version")
    if "schema_version" not in data:
        raise ExperimentError([source.problem(("schema_version",), "field required (2, or 1 "
                                              "for legacy files)", path="schema_version")])
    model = {1: ExperimentV1, 2: ExperimentV2}.get(version) if type(version) is int else None
    if model is None:
        raise ExperimentError([source.problem(("schema_version",), f"unsupported schema_version "
                                              f"{version!r}: use 2 (or 1 for legacy files)")])
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ExperimentError(_problems(source, model, e)) from None
    except RecursionError:
        raise ExperimentError([source.problem((), "values nested too deeply", path="")]) from None


def _problems(source: YamlSource, model: type[BaseModel], err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        kind = e["type"]
        if kind == "extra_forbidden":
            problems.append(source.problem(loc, _unknown_field(model, loc), at="key"))
        elif kind == "missing":
            problems.append(source.problem(loc, "field required", at="parent"))
        else:
            problems.append(source.problem(loc, _message(e)))
    # One problem per place: pydantic can report a field twice through shorthands.
    unique = {(p.line, p.column, p.path, p.message): p for p in problems}
    return sorted(unique.values(), key=lambda p: (p.line, p.column))


def _unknown_field(model: type[BaseModel], loc: tuple) -> str:
    owner = _model_at(model, loc[:-1])
    if owner is not None:
        names = [f.alias or n for n, f in owner.model_fields.items()]
        close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
        if close:
            return f"unknown field (did you mean '{close[0]}'?)"
    return "unknown field"


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
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
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


_PLAIN = {
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


def _message(e: dict[str, Any]) -> str:
    kind = e["type"]
    if kind in _PLAIN:
        got = e.get("input")
        shown = repr(got) if isinstance(got, (str, int, float, bool)) or got is None else \
            type(got).__name__
        return f"{_PLAIN[kind]}, got {shown}"
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    elif msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, "):]
    return msg[:1].lower() + msg[1:]


__all__ = ["is_experiment_document", "validate", "format_path"]
