"""Experiment errors: exact file:line:column, field path and plain message."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_axp.experiment import (
    ExperimentError,
    Problem,
    experiment_json_schema,
    is_experiment_document,
    load_and_resolve,
    load_experiment,
    sniff_experiment,
)
from pytest_axp.experiment.yamlsource import MAX_FILE_BYTES

HEAD = "schema_version: 2\nid: exp\nname: Experiment\n"
OK_REST = "agents: claude\nprompts: go\ntests: {}\nlimits: {}\n"


def first_problem(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "exp.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ExperimentError) as err:
        load_and_resolve(path)
    return str(err.value.problems[0]).replace(str(tmp_path) + "/", "")


@pytest.mark.parametrize("text, expected", [
    (HEAD + OK_REST + "agnets: [claude]\n",
     "exp.yaml:8:1: agnets: unknown field (did you mean 'agents'?)"),
    (HEAD + OK_REST + "zzz: 1\n",
     "exp.yaml:8:1: zzz: unknown field"),
    (HEAD + "agents:\n  - name: claude\n    modle: sonnet\nprompts: go\ntests: {}\nlimits: {}\n",
     "exp.yaml:6:5: agents[0].modle: unknown field (did you mean 'model'?)"),
    (HEAD + "agents: {name: claude, modle: x}\nprompts: go\ntests: {}\nlimits: {}\n",
     "exp.yaml:4:24: agents[0].modle: unknown field (did you mean 'model'?)"),
    (HEAD + "agents: claude\nprompts: go\ntests:\n  application:\n"
            "    - name: t\n      scirpt: x\nlimits: {}\n",
     "exp.yaml:9:7: tests.application[0].scirpt: unknown field (did you mean 'script'?)"),
    (HEAD + "agents: claude\nprompts: go\ntests: {}\nlimits: {max_turns: abc}\n",
     "exp.yaml:7:21: limits.max_turns: expected an integer, got 'abc'"),
    (HEAD + "agents: claude\nprompts: go\ntests: {}\nlimits: {max_turns: 0}\n",
     "exp.yaml:7:21: limits.max_turns: must be greater than 0, got 0"),
    (HEAD + "agents: claude\nprompts: go\ntests: {}\n",
     "exp.yaml:1:1: limits: field required"),
    (HEAD + "agents: [{model: sonnet}]\nprompts: go\ntests: {}\nlimits: {}\n",
     "exp.yaml:4:10: agents[0].name: field required"),
    (HEAD + OK_REST + "files: [{name: a, dest: ../x}]\n",
     "exp.yaml:8:25: files[0].dest: dest escapes /workspace"),
    (HEAD + OK_REST + "files:\n  - source: s\n    dest: /etc\n",
     "exp.yaml:10:11: files[0].dest: dest escapes /workspace"),
    (HEAD + OK_REST + "files: [{dest: x}]\n",
     "exp.yaml:8:9: files[0]: an entry without a source is a slot and needs a 'name' "
     "(bound at run time with --file NAME=PATH)"),
    (HEAD + OK_REST + "files: [{source: s, dest: x, sha256: abc}]\n",
     "exp.yaml:8:38: files[0].sha256: sha256 must be 64 hexadecimal characters"),
    (HEAD + OK_REST + "environment_variables: [{name: A, value: 'axp://vault/x'}]\n",
     "exp.yaml:8:42: environment_variables[0].value: values starting with axp:// are "
     "reserved; only axp://secrets/<name> is valid"),
    (HEAD.replace("id: exp", "id: My_Exp") + OK_REST,
     "exp.yaml:2:5: id: must be kebab-case: lowercase letters and digits joined by '-'"),
    (HEAD.replace("2", "3", 1) + OK_REST,
     "exp.yaml:1:17: schema_version: unsupported schema_version 3: use 2 (or 1 for legacy "
     "files)"),
    ("id: exp\nagents: claude\n",
     "exp.yaml:1:1: schema_version: field required (2, or 1 for legacy files)"),
    (HEAD + "agents: claude\nprompts: go\nlimits: {}\ntests:\n  application:\n"
            "    - {name: t, script: a}\n    - {name: t, script: b}\n",
     "exp.yaml:10:14: tests.application[1].name: duplicate test name 't' "
     "(also tests.application[0])"),
    (HEAD + "agents: claude\nprompts: go\nlimits: {}\ntests:\n  introspection:\n"
            "    - {name: a/b, script: a}\n",
     "exp.yaml:9:14: tests.introspection[0].name: test names may use letters, digits, '.', "
     "'_' and '-', starting with a letter or digit (they name log files)"),
    (HEAD + "agents: [{name: claude, model: [x]}]\nprompts: go\ntests: {}\nlimits: {}\n",
     "exp.yaml:4:32: agents[0].model: expected a mapping, got a list"),
    (HEAD + "agents: claude\nprompts: [{id: p, prompt: 5}]\ntests: {}\nlimits: {}\n",
     "exp.yaml:5:27: prompts[0].prompt: expected a string, got 5"),
])
def test_validation_messages(tmp_path, text, expected):
    assert first_problem(tmp_path, text) == expected


@pytest.mark.parametrize("text, expected", [
    (HEAD + "agents: [claude\n",
     "exp.yaml:5:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"),
    (HEAD + "agents: claude\n  bad: indent\n",
     "exp.yaml:5:6: YAML syntax error: mapping values are not allowed here"),
    (HEAD + "a: &loop [*loop]\n" + OK_REST,
     "exp.yaml:4:4: a[0]: recursive alias: a value contains itself"),
    (HEAD + OK_REST + "id: again\n",
     "exp.yaml:8:1: duplicate key 'id'"),
    ("- just\n- a list\n",
     "exp.yaml:1:1: the top level must be a mapping of fields"),
    ("",
     "exp.yaml:1:1: the top level must be a mapping of fields"),
    (b"schema_version: 2\nname: caf\xe9\n",
     "exp.yaml:2:10: not valid UTF-8 (byte 0xe9 at offset 27): save the file as UTF-8"),
    (HEAD + "name2: \x07\n",
     "exp.yaml:4:8: character #x0007 is not allowed in YAML"),
])
def test_broken_files(tmp_path, text, expected):
    assert first_problem(tmp_path, text) == expected


def test_alias_bomb_and_huge_file(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    assert "too many values once aliases are expanded" in first_problem(
        tmp_path, HEAD + "\n".join(lines) + "\n")
    big = HEAD + "description: " + "x" * MAX_FILE_BYTES + "\n"
    assert first_problem(tmp_path, big) == (
        f"exp.yaml:1:1: file too large (the limit is {MAX_FILE_BYTES} bytes)")


def test_missing_file_is_an_experiment_error(tmp_path):
    with pytest.raises(ExperimentError, match="cannot read file"):
        load_experiment(tmp_path / "absent.yaml")


def test_several_problems_in_file_order(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(HEAD + "agents: [{name: claude, modle: x}]\nprompts: go\ntests: {}\n"
                    "limits: {max_turns: x}\ncolour: red\n")
    with pytest.raises(ExperimentError) as err:
        load_experiment(path)
    probs = err.value.problems
    assert [(p.line, p.path) for p in probs] == [(4, "agents[0].modle"), (7, "limits.max_turns"),
                                                 (8, "colour")]
    assert str(err.value).endswith(" (+2 more)")


def test_problem_format():
    assert str(Problem("f.yaml", 3, 5, "a.b", "bad")) == "f.yaml:3:5: a.b: bad"
    assert str(Problem("f.yaml", 3, 5, "", "bad")) == "f.yaml:3:5: bad"
    assert str(ExperimentError([Problem("f", 1, 1, "", "x")])) == "f:1:1: x"


def test_dest_normalized_to_workspace_relative(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(HEAD + OK_REST + "files:\n  - {source: a, dest: /workspace}\n"
                    "  - {source: b, dest: ./x/../y/}\n  - {source: c, dest: /workspace/z/w}\n")
    (v,) = load_and_resolve(path)
    assert [f.dest for f in v.files] == [".", "y", "z/w"]


def test_sniff_and_is_experiment_document(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(HEAD + OK_REST)
    other = tmp_path / "other.yaml"
    other.write_text("schema_version: 2\nservices: {}\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("schema_version: 2\nagents: [\n")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"schema_version: \xff\xfe\n")
    assert sniff_experiment(good)
    assert not sniff_experiment(other)
    # Broken files with a top-level schema_version are collected, so pytest reports them.
    assert sniff_experiment(broken)
    assert sniff_experiment(binary)
    assert not sniff_experiment(tmp_path / "absent.yaml")
    assert is_experiment_document({"schema_version": 1, "flow": {}})
    assert not is_experiment_document({"agents": []})
    assert not is_experiment_document(["schema_version"])


def test_json_schema_covers_both_versions():
    schema = experiment_json_schema()
    assert len(schema["oneOf"]) == 2
    assert {"ExperimentV1", "ExperimentV2", "Agent", "ModelSpec"} <= set(schema["$defs"])
    agents = schema["$defs"]["ExperimentV2"]["properties"]["agents"]
    assert "string" in str(agents)  # the bare-string shorthand is allowed
    assert schema["$defs"]["ExperimentV2"]["additionalProperties"] is False


@pytest.mark.parametrize("text, expected", [
    (HEAD + OK_REST + "1: x\n", "exp.yaml:8:1: mapping keys must be plain text (quote it)"),
    (HEAD + OK_REST + "secrets: [OK_NAME, bad-name]\n",
     "exp.yaml:8:20: secrets[1]: secret 'bad-name' is not a valid environment variable name"),
    (HEAD + OK_REST + "extensions: [{id: a.b}]\n",
     "exp.yaml:8:19: extensions[0].id: extension ids may use letters, digits, '_' and '-', "
     "starting with a letter or digit"),
    (HEAD + OK_REST + "extensions: [{id: a, agent: claude}]\n",
     "exp.yaml:8:22: extensions[0].agent: unknown field (did you mean 'agents'?)"),
    (HEAD + OK_REST + "products: [{name: p, setup: [{name: s}]}]\n",
     "exp.yaml:8:30: products[0].setup[0].script: field required"),
])
def test_more_validation_messages(tmp_path, text, expected):
    assert first_problem(tmp_path, text) == expected


def test_null_means_absent_for_optional_fields(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(HEAD + OK_REST + "secrets:\ndescription:\nfiles:\n")
    (v,) = load_and_resolve(path)
    assert v.secrets == [] and v.files == [] and v.experiment_description is None
