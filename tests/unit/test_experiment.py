"""Experiment files: parsing, positioned errors and variant resolution (no Docker)."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_axp.experiment import (
    ExperimentError,
    experiment_json_schema,
    load_and_resolve,
    sniff_experiment,
)

BASE = """\
schema_version: 2
id: exp
name: Experiment
tests: {}
limits: {}
"""


def write(tmp_path, text: str, name: str = "exp.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problem(tmp_path, text: str) -> str:
    with pytest.raises(ExperimentError) as err:
        load_and_resolve(write(tmp_path, text))
    return str(err.value.problems[0]).replace(str(tmp_path) + "/", "")


def ids(tmp_path, text: str) -> list[str]:
    return [v.id for v in load_and_resolve(write(tmp_path, text))]


def test_cross_product_ids_in_axis_order(tmp_path):
    got = load_and_resolve(write(tmp_path, BASE + """
agents:
  - {name: claude, model: claude-sonnet-4-5}
  - {name: claude, model: claude-opus-4-1}
prompts: [{id: short, prompt: a}, {id: long, prompt: b}]
environments: [{name: Clean Slate}]
"""))
    assert [v.id for v in got] == [
        "claude-claude-sonnet-4-5.short", "claude-claude-sonnet-4-5.long",
        "claude-claude-opus-4-1.short", "claude-claude-opus-4-1.long"]
    assert got[0].matrix == {"agent": "claude", "model": "claude-sonnet-4-5", "prompt": "short",
                             "environment": "Clean Slate"}
    assert got[0].tag == "claude claude-sonnet-4-5 / short"


def test_single_variant_is_default_and_shorthands(tmp_path):
    got = load_and_resolve(write(tmp_path, BASE + "agents: claude\nprompts: Do it.\n"))
    assert [v.id for v in got] == ["default"]
    assert got[0].agent.name == "claude" and got[0].prompt.id == "prompt-1"
    assert got[0].prompt.prompt == "Do it."


def test_extensions_replace_and_inherit_axes(tmp_path):
    got = load_and_resolve(write(tmp_path, BASE + """
agents: [{name: command, script: "true"}]
prompts: [{id: p1, prompt: one}, {id: p2, prompt: two}]
extensions:
  - id: plain
    tags: [baseline]
  - id: docs
    tags: [docs]
    environments: [{name: with-docs, setup: "echo docs", tags: [env-tag]}]
    extensions:
      - id: only-p2
        prompts: [{id: p2, prompt: two, tags: [p-tag]}]
      - id: both
"""))
    assert [v.id for v in got] == ["plain.p1", "plain.p2", "docs.only-p2", "docs.both.p1",
                                   "docs.both.p2"]
    nested = got[2]
    assert nested.extension_path == ["docs", "only-p2"]
    assert nested.environment.name == "with-docs"
    assert [(s.phase, s.name, s.script) for s in nested.setup] == [
        ("environment", "setup", "echo docs")]
    assert nested.tags == ["p-tag", "env-tag", "docs"]
    assert got[0].setup == []


def test_two_variants_with_one_id_are_an_error(tmp_path):
    # EXPERIMENT.md §1: variants that would share an id are a validation error; extensions
    # are how two agents of one name are told apart.
    msg = problem(tmp_path, BASE + """
agents: [{name: command, script: a}, {name: command, script: b}]
prompts: [go]
""")
    assert msg.startswith("exp.yaml:7:38: agents[1]: ")
    assert "two variants resolve to the id 'command'" in msg


def test_variant_without_prompt_is_an_error(tmp_path):
    msg = problem(tmp_path, BASE + "agents: [claude]\n")
    assert "variant default has no prompt" in msg


def test_v1_matrix_overrides(tmp_path):
    got = load_and_resolve(write(tmp_path, """\
schema_version: 1
id: legacy
name: Legacy
flow: {prompt: base prompt}
model: claude-sonnet-4-5
secrets: [A]
files: [{source: x, dest: x}]
setup: echo base
matrix:
  variant:
    - id: one
      tag: One
    - id: two
      tag: Two
      overrides:
        prompt: other prompt
        agent: {name: command, script: "true"}
        setup: echo two
        secrets: [B]
        files: [{source: y, dest: y}]
tests: {}
limits: {max_turns: 3}
"""))
    one, two = got
    assert (one.id, one.tag, two.id, two.tag) == ("one", "One", "two", "Two")
    assert one.agent.name == "claude" and one.agent.model.name == "claude-sonnet-4-5"
    assert one.prompt.prompt == "base prompt" and two.prompt.prompt == "other prompt"
    assert two.agent.name == "command"
    assert [s.script for s in one.setup] == ["echo base"]
    assert [s.script for s in two.setup] == ["echo two"]
    assert one.secrets == ["A"] and two.secrets == ["A", "B"]
    assert [f.dest for f in two.files] == ["x", "y"]
    assert two.files[1].where.endswith("exp.yaml:20:17")


def test_v1_duplicate_variant_ids(tmp_path):
    assert problem(tmp_path, """\
schema_version: 1
id: legacy
name: Legacy
flow: {prompt: p}
matrix:
  variant:
    - id: same
    - id: same
tests: {}
limits: {}
""") == "exp.yaml:8:11: matrix.variant[1].id: duplicate variant id 'same'"


@pytest.mark.parametrize("body, expected", [
    ("agents:\n  - name: command\n    modle: x\nprompts: [go]\n",
     "exp.yaml:8:5: agents[0].modle: unknown field (did you mean 'model'?)"),
    ("agents: [claude]\nprompts: [go]\ntestz: 1\n",
     "exp.yaml:8:1: testz: unknown field (did you mean 'tests'?)"),
    ("agents: [claude]\nprompts: [go]\nzzz: 1\n", "exp.yaml:8:1: zzz: unknown field"),
    ("agents: [claude]\nprompts: [{id: x}]\n", "exp.yaml:7:11: prompts[0].prompt: field required"),
    ("agents: [claude]\nprompts: [go]\nfiles: [{source: a, dest: ../up}]\n",
     "exp.yaml:8:27: files[0].dest: dest escapes /workspace"),
    ("agents: [claude]\nprompts: [go]\nfiles: [{source: a, dest: /etc}]\n",
     "exp.yaml:8:27: files[0].dest: dest escapes /workspace"),
    ("agents: [claude]\nprompts: [go]\nenvironment_variables: [{name: A, value: 'axp://x'}]\n",
     "exp.yaml:8:42: environment_variables[0].value: values starting with axp:// are "
     "reserved; only axp://secrets/<name> is valid"),
])
def test_errors_name_file_line_column_and_path(tmp_path, body, expected):
    assert problem(tmp_path, BASE + body) == expected


def test_wrong_type_inside_tests_and_limits(tmp_path):
    text = BASE.replace("tests: {}", "tests:\n  application:\n    - name: t\n      scrpt: x") \
        .replace("limits: {}", "limits:\n  max_turns: lots")
    with pytest.raises(ExperimentError) as err:
        load_and_resolve(write(tmp_path, text + "agents: [claude]\nprompts: [go]\n"))
    got = [str(p).replace(str(tmp_path) + "/", "") for p in err.value.problems]
    # The misspelling is reported once: not also as a missing `script`.
    assert got == [
        "exp.yaml:7:7: tests.application[0].scrpt: unknown field (did you mean 'script'?)",
        "exp.yaml:9:14: limits.max_turns: expected an integer, got 'lots'",
    ]
    assert str(err.value).endswith("(+1 more)")


@pytest.mark.parametrize("raw, expected", [
    (b"schema_version: 2\nid: [unclosed\n", "exp.yaml:3:1: YAML syntax error"),
    (b"schema_version: 2\nname: caf\xe9\n", "exp.yaml:2:10: not valid UTF-8 (byte 0xe9"),
    (b"schema_version: 2\nid: a\nid: b\n", "exp.yaml:3:1: duplicate key 'id'"),
    (b"a: &x [*x]\nschema_version: 2\n", "recursive alias"),
    (b"- just\n- a list\n", "exp.yaml:1:1: the top level must be a mapping"),
    (b"schema_version: 3\nid: a\n", "exp.yaml:1:17: schema_version: unsupported schema_version 3"),
    (b"schema_version: 2\nname: a\x01b\n", "exp.yaml:2:8: character #x0001 is not allowed"),
])
def test_broken_files(tmp_path, raw, expected):
    (tmp_path / "exp.yaml").write_bytes(raw)
    with pytest.raises(ExperimentError) as err:
        load_and_resolve(tmp_path / "exp.yaml")
    assert expected in str(err.value).replace(str(tmp_path) + "/", "")


def test_alias_bomb_and_huge_file(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefg", "bcdefgh", strict=True))
    (tmp_path / "exp.yaml").write_text("schema_version: 2\n" + bomb)
    with pytest.raises(ExperimentError, match="too many values"):
        load_and_resolve(tmp_path / "exp.yaml")
    (tmp_path / "big.yaml").write_bytes(b"#" * (6 * 1024 * 1024))
    with pytest.raises(ExperimentError, match="file too large"):
        load_and_resolve(tmp_path / "big.yaml")


def test_fingerprint_ignores_order_and_names_but_not_behaviour(tmp_path):
    a = load_and_resolve(write(tmp_path, BASE + "agents: [claude]\nprompts: [{id: x, prompt: p}]\n",
                               "a.yaml"))[0]
    b = load_and_resolve(write(tmp_path, "prompts: [{prompt: p, id: x}]\nagents: [claude]\n"
                               + BASE.replace("name: Experiment", "name: Other"), "b.yaml"))[0]
    c = load_and_resolve(write(tmp_path, BASE + "agents: [claude]\nprompts: [{id: x, prompt: q}]\n",
                               "c.yaml"))[0]
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert len(a.fingerprint) == 64


def test_resolved_yaml_keeps_secret_names_only(tmp_path):
    v = load_and_resolve(
        write(tmp_path, BASE + "agents: [claude]\nprompts: [go]\nsecrets: [API_TOKEN]\n")
    )[0]
    data = yaml.safe_load(v.resolved_yaml())
    assert data["secrets"] == ["API_TOKEN"] and data["id"] == "default"
    assert data["prompt"]["prompt"] == "go"


def test_sniff_and_schema(tmp_path):
    assert sniff_experiment(write(tmp_path, BASE + "agents: [claude]\n"))
    assert not sniff_experiment(write(tmp_path, "services: {db: {}}\n", "compose.yaml"))
    assert not sniff_experiment(write(tmp_path, "schema_version: 1\nother: x\n", "other.yaml"))
    assert not sniff_experiment(tmp_path / "absent.yaml")
    schema = experiment_json_schema()
    assert len(schema["oneOf"]) == 2 and "Agent" in schema["$defs"]


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                     st.text(max_size=20))
_keys = st.sampled_from(["schema_version", "id", "name", "agents", "prompts", "tests", "limits",
                         "files", "dest", "source", "script", "extensions", "matrix", "variant",
                         "model", "setup", "environments", "x"])
_docs = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=6)), max_leaves=30)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=st.dictionaries(_keys, _docs, max_size=8), version=st.sampled_from([1, 2, 3, "2"]))
def test_parser_never_crashes_on_random_documents(tmp_path, doc, version):
    doc["schema_version"] = version
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_and_resolve(path)
    except ExperimentError as e:
        assert e.problems and all(p.line >= 1 and p.column >= 1 for p in e.problems)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=300))
def test_parser_never_crashes_on_random_bytes(tmp_path, raw):
    path = tmp_path / "bytes.yaml"
    path.write_bytes(b"schema_version: 2\n" + raw)
    try:
        load_and_resolve(path)
    except ExperimentError:
        pass
