"""Experiment files: parsing (v2 and legacy v1), validation with positioned errors, variants.

Every public function raises ExperimentError and nothing else for a bad file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from .errors import ExperimentError, Problem
from .models import (
    AXES_KEYS,
    Agent,
    Environment,
    EnvVar,
    Experiment,
    ExperimentV1,
    ExperimentV2,
    FileEntry,
    Limits,
    McpServer,
    ModelSpec,
    Product,
    Prompt,
    SetupCheck,
    SetupStep,
    Tests,
    TestSpec,
    parse_experiment,
)
from .resolve import ResolvedStep, ResolvedVariant, resolve
from .schema import experiment_json_schema
from .yamlsource import MAX_FILE_BYTES, load_yaml, parse_yaml

_T = TypeVar("_T")


def _guarded(file: str, work: Callable[[], _T]) -> _T:
    # A last line of defence: a bug in a validator must still surface as a file problem,
    # never as a pydantic or yaml traceback.
    try:
        return work()
    except ExperimentError:
        raise
    except RecursionError:
        raise ExperimentError([Problem(file, 1, 1, "", "values nested too deeply")]) from None
    except (ValidationError, yaml.YAMLError, ValueError, TypeError, KeyError) as e:
        raise ExperimentError([Problem(file, 1, 1, "", f"invalid experiment: {e}")]) from None


def load_experiment(path: str | os.PathLike[str]) -> Experiment:
    """The validated v1 or v2 experiment; it keeps its source positions for later errors."""
    return _guarded(str(path), lambda: parse_experiment(load_yaml(path)))


def resolve_variants(exp: Experiment) -> list[ResolvedVariant]:
    """Every variant of a loaded experiment, in declaration order."""
    source = exp.source
    return _guarded(source.file, lambda: resolve(exp, source))


def load_and_resolve(path: str | os.PathLike[str]) -> list[ResolvedVariant]:
    return resolve_variants(load_experiment(path))


def is_experiment_document(data: object) -> bool:
    """A mapping with `schema_version` and at least one axis (or v1 matrix/flow)."""
    return isinstance(data, dict) and "schema_version" in data and any(k in data
                                                                       for k in AXES_KEYS)


def sniff_experiment(path: str | os.PathLike[str]) -> bool:
    """True when a file looks like an experiment. Cheap; never raises.

    A file with a top-level `schema_version:` that does not parse (bad YAML, bad bytes, too
    large) counts: pytest then collects it and reports the error, instead of skipping a
    broken experiment in silence."""
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_FILE_BYTES + 1)
    except OSError:
        return False
    if b"schema_version" not in head:
        return False
    try:
        if len(head) > MAX_FILE_BYTES:
            raise ValueError("too large")
        data: Any = yaml.safe_load(head.decode("utf-8"))
    except Exception:
        return (b"\n" + head).find(b"\nschema_version:") != -1
    return is_experiment_document(data)


__all__ = [
    "Agent",
    "EnvVar",
    "Environment",
    "Experiment",
    "ExperimentError",
    "ExperimentV1",
    "ExperimentV2",
    "FileEntry",
    "Limits",
    "McpServer",
    "ModelSpec",
    "Problem",
    "Product",
    "Prompt",
    "ResolvedStep",
    "ResolvedVariant",
    "SetupCheck",
    "SetupStep",
    "TestSpec",
    "Tests",
    "experiment_json_schema",
    "is_experiment_document",
    "load_and_resolve",
    "load_experiment",
    "parse_yaml",
    "resolve_variants",
    "sniff_experiment",
]
