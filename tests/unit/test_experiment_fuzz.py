"""Property tests: whatever the file holds, loading raises ExperimentError or nothing else."""

from __future__ import annotations

import uuid

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_axp.experiment import ExperimentError, load_and_resolve, sniff_experiment

_KEYS = st.sampled_from([
    "schema_version", "id", "name", "agents", "prompts", "environments", "products",
    "extensions", "tests", "limits", "files", "setup", "model", "script", "dest", "source",
    "application", "max_turns", "matrix", "variant", "overrides", "flow", "prompt", "secrets",
    "environment_variables", "value", "tags", "x",
])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                     st.text(max_size=12), st.sampled_from(["command", "claude", "../x", "/etc"]))
_DOCS = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=6)), max_leaves=30)
_SETTINGS = settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load(tmp_path, raw: bytes) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.yaml"
    path.write_bytes(raw)
    try:
        load_and_resolve(path)
    except ExperimentError as e:
        assert e.problems and all(p.line >= 1 and p.column >= 1 for p in e.problems)
    assert sniff_experiment(path) in (True, False)


@_SETTINGS
@given(doc=st.dictionaries(_KEYS, _DOCS, max_size=8), version=st.sampled_from([1, 2, "2", None]))
def test_random_documents_only_raise_experiment_error(tmp_path, doc, version):
    if version is not None:
        doc["schema_version"] = version
    _load(tmp_path, yaml.safe_dump(doc).encode())


@_SETTINGS
@given(raw=st.binary(max_size=300))
def test_random_bytes_only_raise_experiment_error(tmp_path, raw):
    _load(tmp_path, raw)


@_SETTINGS
@given(text=st.text(max_size=300))
def test_random_text_only_raises_experiment_error(tmp_path, text):
    _load(tmp_path, ("schema_version: 2\n" + text).encode("utf-8", "surrogatepass"))
