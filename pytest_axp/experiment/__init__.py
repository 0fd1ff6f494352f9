"""Experiment files: parsing (v2 and legacy v1), validation with positioned errors, variants."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ExperimentError, Problem
from .models import (
    Agent, Environment, EnvVar, ExperimentV1, ExperimentV2, FileEntry, Limits, McpServer,
    ModelSpec, Product, Prompt, SetupCheck, SetupStep, Tests, TestSpec,
)
from .resolve import ResolvedStep, ResolvedVariant, resolve
from .schema import experiment_json_schema
from .validate import is_experiment_document, validate
from .yamlsource import MAX_FILE_BYTES, load_yaml

Experiment = ExperimentV1 | ExperimentV2


def load_experiment(path: str | os.PathLike) -> tuple[Experiment, "object"]:
    """The validated experiment and its source (for positions). Raises ExperimentError."""
    source = load_yaml(path)
    return validate(source), source


def load_and_resolve(path: str | os.PathLike) -> list[ResolvedVariant]:
    """Every variant of an experiment file, in declaration order. Raises ExperimentError."""
    source = load_yaml(Path(path).resolve())
    source.file = str(path)
    variants = resolve(validate(source), source)
    # Sources resolve against the file's folder, wherever the caller stands.
    absolute = str(Path(path).resolve())
    return [v.model_copy(update={"source_file": absolute}) for v in variants]


def sniff_experiment(path: str | os.PathLike) -> bool:
    """True when a YAML file looks like an AXP experiment. Cheap, and never raises."""
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_FILE_BYTES + 1)
    except OSError:
        return False
    if b"schema_version" not in head:
        return False
    import yaml

    try:
        data = yaml.safe_load(head)
    except Exception:
        # Broken YAML with a top-level schema_version is most likely a broken experiment:
        # collect it, so the user sees the error instead of silence.
        return (b"\n" + head).find(b"\nschema_version:") != -1
    return is_experiment_document(data)


__all__ = [
    "Agent", "Environment", "EnvVar", "Experiment", "ExperimentError", "ExperimentV1",
    "ExperimentV2", "FileEntry", "Limits", "McpServer", "ModelSpec", "Problem", "Product",
    "Prompt", "ResolvedStep", "ResolvedVariant", "SetupCheck", "SetupStep", "TestSpec", "Tests",
    "experiment_json_schema", "is_experiment_document", "load_and_resolve", "load_experiment",
    "sniff_experiment",
]
