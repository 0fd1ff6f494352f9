"""The JSON schema of experiment files (v2, or legacy v1), generated from the models."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from .models import ExperimentV1, ExperimentV2


def experiment_json_schema() -> dict[str, Any]:
    # "validation" mode: the shapes a file may be written in, shorthands included.
    refs, schema = models_json_schema([(ExperimentV2, "validation"), (ExperimentV1, "validation")],
                                      ref_template="#/$defs/{model}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "AXP experiment (schema v2, or legacy v1)",
        "oneOf": [refs[(ExperimentV2, "validation")], refs[(ExperimentV1, "validation")]],
        "$defs": schema.get("$defs", {}),
    }
