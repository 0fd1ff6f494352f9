"""Experiment variants: cross product, extensions, ids, tags, fingerprints, resolved YAML."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from pytest_axp.experiment import (
    ExperimentError,
    ExperimentV2,
    ResolvedVariant,
    load_and_resolve,
    load_experiment,
    resolve_variants,
)

BASE = """\
schema_version: 2
id: exp
name: Experiment
tests: {}
limits: {}
"""


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def resolve(tmp_path: Path, body: str) -> list[ResolvedVariant]:
    return load_and_resolve(write(tmp_path, BASE + body))


def error(tmp_path: Path, body: str) -> str:
    with pytest.raises(ExperimentError) as err:
        resolve(tmp_path, body)
    return str(err.value.problems[0]).replace(str(tmp_path) + "/", "")


def test_two_agents_by_two_prompts(tmp_path):
    got = resolve(tmp_path, """
agents:
  - {name: claude, model: claude-sonnet-4-5}
  - {name: claude, model: {name: claude-opus-4-1, effort: high}}
prompts: [{id: short, prompt: a}, {id: long, prompt: b}]
environments: [{name: Clean Slate, setup: "echo env"}]
""")
    assert [v.id for v in got] == [
        "claude-claude-sonnet-4-5.short", "claude-claude-sonnet-4-5.long",
        "claude-claude-opus-4-1.short", "claude-claude-opus-4-1.long"]
    assert [v.tag for v in got][:2] == ["claude claude-sonnet-4-5 / short",
                                        "claude claude-sonnet-4-5 / long"]
    first = got[0]
    assert first.matrix == {"agent": "claude", "model": "claude-sonnet-4-5", "prompt": "short",
                            "environment": "Clean Slate"}
    assert got[2].agent.model.effort == "high"
    assert [(s.phase, s.name, s.script) for s in first.setup] == [
        ("environment", "setup", "echo env")]
    assert first.schema_version == 2 and first.source_file == str(tmp_path / "exp.yaml")
    assert first.extension_path == [] and first.product is None


def test_single_variant_is_default_with_shorthands(tmp_path):
    (v,) = resolve(tmp_path, "agents: claude\nprompts: Do it.\n")
    assert (v.id, v.tag) == ("default", "default")
    assert v.agent.name == "claude" and v.agent.model is None
    assert (v.prompt.id, v.prompt.prompt) == ("prompt-1", "Do it.")
    assert v.matrix == {"agent": "claude", "prompt": "prompt-1"}


def test_shorthand_lists_and_model_string(tmp_path):
    got = resolve(tmp_path, """
agents: [claude, {name: claude, model: opus}]
prompts: [first, {id: named, prompt: second}, third]
products: [{name: App, setup: "make"}]
""")
    assert [v.prompt.id for v in got[:3]] == ["prompt-1", "named", "prompt-3"]
    assert got[3].agent.model.name == "opus"
    assert got[0].id == "claude.prompt-1" and got[3].id == "claude-opus.prompt-1"
    assert [(s.phase, s.name) for s in got[0].setup] == [("product", "setup")]


def test_environment_then_product_setup_and_collected_lists(tmp_path):
    (v,) = resolve(tmp_path, """
agents: claude
prompts: go
secrets: [TOP_KEY]
environment_variables: [{name: MODE, value: 1}]
files: [{name: data, dest: data}]
environments:
  - name: env
    setup:
      - name: install
        script: apt-get install x
        secrets: [ENV_KEY, TOP_KEY]
        files: [{source: a.txt, dest: /workspace/a/../b.txt}]
        environment_variables: [{name: KEY, value: "axp://secrets/ENV_KEY"}]
        setup_checks: [{name: has-x, script: which x}]
        mcp_servers: [{name: fs, command: mcp-fs, args: [--root, 1]}]
products:
  - name: prod
    setup: [{name: build, script: make, setup_checks: [{name: built, script: test -f a}]}]
""")
    assert [(s.phase, s.name) for s in v.setup] == [("environment", "install"),
                                                    ("product", "build")]
    assert [c.name for c in v.setup_checks] == ["has-x", "built"]
    assert [f.dest for f in v.files] == ["data", "b.txt"]
    assert v.files[1].where.endswith("exp.yaml:18:17")
    assert [e.name for e in v.environment_variables] == ["MODE", "KEY"]
    assert v.environment_variables[0].value == "1"
    assert v.secrets == ["TOP_KEY", "ENV_KEY"]
    assert v.mcp_servers[0].args == ["--root", "1"]


def test_extensions_nested_inherited_and_replaced(tmp_path):
    got = resolve(tmp_path, """
agents: [{name: command, script: "true"}]
prompts: [{id: p1, prompt: one}, {id: p2, prompt: two}]
environments: [{name: base-env, tags: [base]}]
extensions:
  - id: plain
    tags: [baseline]
  - id: docs
    tags: [docs]
    environments: [{name: With Docs, setup: "echo docs", tags: [env-tag]}]
    extensions:
      - id: only-p2
        prompts: [{id: p2, prompt: two, tags: [p-tag, docs]}]
      - id: two-agents
        agents: [{name: command, script: a}, {name: claude, model: sonnet}]
        prompts: [{id: p3, prompt: three}]
""")
    assert [v.id for v in got] == ["plain.p1", "plain.p2", "docs.only-p2",
                                   "docs.two-agents.command", "docs.two-agents.claude-sonnet"]
    assert [v.tag for v in got] == ["plain / p1", "plain / p2", "docs / only-p2",
                                    "docs / two-agents / command",
                                    "docs / two-agents / claude sonnet"]
    plain, _, nested, ext_agent, _ = got
    assert plain.environment.name == "base-env" and plain.tags == ["base", "baseline"]
    assert nested.extension_path == ["docs", "only-p2"]
    assert nested.environment.name == "With Docs"  # inherited from the parent extension
    assert nested.tags == ["p-tag", "docs", "env-tag"]
    assert [(s.phase, s.script) for s in nested.setup] == [("environment", "echo docs")]
    assert ext_agent.prompt.id == "p3" and ext_agent.agent.script == "a"


def test_only_leaves_are_variants(tmp_path):
    got = resolve(tmp_path, """
agents: claude
prompts: go
extensions:
  - id: a
    extensions: [{id: b}, {id: c}]
""")
    assert [v.id for v in got] == ["a.b", "a.c"]


def test_variant_without_agent_names_it(tmp_path):
    assert error(tmp_path, """
prompts: go
extensions:
  - id: ok
    agents: claude
  - id: bare
""") == ("exp.yaml:11:5: extensions[1]: variant bare has no agent: give 'agents' at the top "
         "level or in its extension")
    assert error(tmp_path, "agents: claude\n") == (
        "exp.yaml:1:1: variant default has no prompt: give 'prompts' at the top level or in "
        "its extension")


def test_duplicate_variant_ids_name_both(tmp_path):
    msg = error(tmp_path, """
agents: [{name: command, script: a}, {name: command, script: b}]
prompts: [go]
""")
    assert msg == ("exp.yaml:7:38: agents[1]: two variants resolve to the id 'command' "
                   "(agents[0], prompts[0]; and agents[1], prompts[0]): give their axis values "
                   "distinct names, models or ids")


def test_duplicate_ids_across_slug_collisions(tmp_path):
    msg = error(tmp_path, """
agents: claude
prompts: go
environments: [{name: Big Box}, {name: big-box}]
""")
    assert "two variants resolve to the id 'big-box'" in msg
    assert msg.startswith("exp.yaml:9:33: environments[1]:")


def test_unsafe_variant_id(tmp_path):
    msg = error(tmp_path, "agents: claude\nprompts: go\nenvironments: [{name: a}, {name: '!!'}]\n")
    assert "not safe as a file name" in msg


def test_load_then_resolve_keeps_positions(tmp_path):
    exp = load_experiment(write(tmp_path, BASE + "agents: claude\nprompts: go\n"
                                "files: [{source: x, dest: y}]\n"))
    assert isinstance(exp, ExperimentV2)
    (v,) = resolve_variants(exp)
    assert v.files[0].where == f"{tmp_path}/exp.yaml:8:9"


def test_fingerprint_stable_and_sensitive(tmp_path):
    one = resolve(tmp_path, """
agents: [{name: claude, model: {name: m, effort: low}}]
prompts: [{id: p, prompt: text, description: first}]
""")[0]
    reordered = load_and_resolve(write(tmp_path, """\
limits: {}
prompts: [{description: second, prompt: text, id: p}]
tests: {}
agents: [{model: {effort: low, name: m}, name: claude}]
name: Another name
id: exp
schema_version: 2
""", "other.yaml"))[0]
    assert len(one.fingerprint) == 64
    assert one.fingerprint == reordered.fingerprint
    changed = load_and_resolve(write(tmp_path, BASE + """
agents: [{name: claude, model: {name: m, effort: low}}]
prompts: [{id: p, prompt: other text}]
""", "changed.yaml"))[0]
    assert changed.fingerprint != one.fingerprint


def test_resolved_yaml_round_trips_with_secret_names_only(tmp_path, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "very-secret-value")
    (v,) = resolve(tmp_path, """
agents: claude
prompts: go
secrets: [API_TOKEN]
environment_variables: [{name: TOKEN, value: "axp://secrets/API_TOKEN"}]
""")
    text = v.resolved_yaml()
    assert "very-secret-value" not in text
    data = yaml.safe_load(text)
    assert data["secrets"] == ["API_TOKEN"]
    assert data["id"] == "default" and "experiment_description" not in data
    assert ResolvedVariant.model_validate(data) == v


def test_resolved_variant_is_frozen(tmp_path):
    (v,) = resolve(tmp_path, "agents: claude\nprompts: go\n")
    with pytest.raises(ValidationError):
        v.id = "other"  # type: ignore[misc]
