"""Legacy v1 experiments: one default variant, or an explicit matrix with overrides."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_axp.experiment import ExperimentError, ExperimentV1, load_and_resolve, load_experiment

V1 = """\
schema_version: 1
id: legacy
name: Legacy
flow: {prompt: Do the thing.}
model: claude-sonnet-4-5
secrets: [TOP]
files: [{name: top, source: top.txt, dest: top.txt}]
mcp_servers: [{name: top-mcp, type: http, url: "http://x"}]
setup_checks: [{name: top-check, script: "true"}]
setup: echo top
tests:
  application: [{name: works, script: "true"}]
limits: {max_turns: 3}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "legacy.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_no_matrix_is_one_default_variant(tmp_path):
    exp = load_experiment(write(tmp_path, V1))
    assert isinstance(exp, ExperimentV1)
    (v,) = load_and_resolve(write(tmp_path, V1))
    assert (v.id, v.tag, v.schema_version) == ("default", "default", 1)
    assert v.agent.name == "claude" and v.agent.model.name == "claude-sonnet-4-5"
    assert v.prompt.prompt == "Do the thing."
    assert [(s.phase, s.name, s.script) for s in v.setup] == [("environment", "setup", "echo top")]
    assert v.matrix == {"agent": "claude", "model": "claude-sonnet-4-5", "prompt": "prompt"}
    assert v.files[0].where.endswith("legacy.yaml:7:9")


def test_matrix_overrides_add_lists_and_replace_the_rest(tmp_path):
    got = load_and_resolve(write(tmp_path, V1 + """
matrix:
  variant:
    - id: baseline
      tag: Baseline
    - id: scripted
      tag: Scripted agent
      overrides:
        agent: {name: command, script: "echo hi > out.txt"}
        prompt: Another prompt.
        setup: [{name: other, script: echo other}]
        secrets: [EXTRA, TOP]
        files: [{source: extra.txt, dest: /workspace/extra.txt}]
        mcp_servers: [{name: extra-mcp, command: mcp}]
        setup_checks: [{name: extra-check, script: "true"}]
    - id: opus
      tag: Opus
      overrides:
        model: {name: claude-opus-4-1, effort: high}
        agent: claude
"""))
    base, scripted, opus = got
    assert [(v.id, v.tag) for v in got] == [("baseline", "Baseline"),
                                           ("scripted", "Scripted agent"), ("opus", "Opus")]
    assert base.secrets == ["TOP"] and [s.name for s in base.setup] == ["setup"]
    assert scripted.agent.name == "command" and scripted.agent.script == "echo hi > out.txt"
    assert scripted.prompt.prompt == "Another prompt."
    assert [s.name for s in scripted.setup] == ["other"]
    assert scripted.secrets == ["TOP", "EXTRA"]
    assert [f.dest for f in scripted.files] == ["top.txt", "extra.txt"]
    assert [m.name for m in scripted.mcp_servers] == ["top-mcp", "extra-mcp"]
    assert [c.name for c in scripted.setup_checks] == ["top-check", "extra-check"]
    assert opus.agent.model.name == "claude-opus-4-1" and opus.agent.model.effort == "high"
    assert opus.prompt.prompt == "Do the thing."
    assert len({v.fingerprint for v in got}) == 3


def test_duplicate_v1_variant_id_points_at_the_second(tmp_path):
    with pytest.raises(ExperimentError) as err:
        load_and_resolve(write(tmp_path, V1 + """
matrix:
  variant:
    - {id: a, tag: A}
    - {id: a, tag: B}
"""))
    assert str(err.value).replace(str(tmp_path) + "/", "") == (
        "legacy.yaml:18:12: matrix.variant[1].id: duplicate variant id 'a'")


def test_v1_missing_prompt(tmp_path):
    # (an agent's own fields are its adapter's to check: tests/unit/test_agent_registry.py)
    with pytest.raises(ExperimentError) as err:
        load_and_resolve(write(tmp_path, V1.replace("flow: {prompt: Do the thing.}\n", "")))
    assert "has no prompt" in str(err.value)


def test_v1_rejects_v2_fields(tmp_path):
    with pytest.raises(ExperimentError) as err:
        load_and_resolve(write(tmp_path, V1 + "agents: [claude]\n"))
    assert str(err.value).replace(str(tmp_path) + "/", "") == (
        "legacy.yaml:14:1: agents: unknown field (did you mean 'agent'?)")
