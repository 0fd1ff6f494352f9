"""The `codex` agent in a real sandbox: codex-acp over ACP, its model calls answered by the
scripted gateway through the OpenAI Responses API, run with `axp local run --model-script`."""

from __future__ import annotations

import json

import pytest

from .conftest import SHELL_WRITES_HI, summary

REAL_KEY = "sk-openai-test-REALKEY-codex-must-never-leak-0123456789"

# Like real AXP files: the command the agent's shell tool ran, from the trace.
RAN_ECHO = """jq -e -s 'map(select(.raw_json.params.update.sessionUpdate == "tool_call")
  | .raw_json.params.update.rawInput.command | if type == "array" then last else . end)
  | any(test("echo hi"))' "$AXP_TRACE_PATH"
"""
EXPERIMENT = """
schema_version: 2
id: codex-case
name: Codex case
agents: [{name: codex, model: gpt-5.2}]
prompts: [{id: go, prompt: write the file}]
tests:
  application: [{name: file, script: 'grep -qx hi out.txt'}]
  introspection: [{name: ran-echo, script: RAN_ECHO}]
limits: {max_time_seconds: 180}
""".replace("RAN_ECHO", json.dumps(RAN_ECHO))
TEXT_ONLY = """
turns:
  - text: "I will not run anything"
usage: {input_tokens: 100, output_tokens: 20}
"""


def _run(project, script: str):
    project.write("exp.yaml", EXPERIMENT)
    project.write("model.yaml", script)
    res = project.axp("local", "run", "exp.yaml", "--model-script", "model.yaml")
    run = project.only_run()
    return res, summary(run, "default"), run.results("default")


@pytest.fixture
def codex_project(project, monkeypatch):
    # The host has a real-looking key; it must reach no file and not the sandbox.
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    return project


def test_codex_runs_a_scripted_shell_call_offline(codex_project):
    res, s, res_dir = _run(codex_project, SHELL_WRITES_HI)
    assert s["status"] == "pass", res.stdout + res.stderr + res_dir.agent_log.read_text()
    assert [t["status"] for t in s["tests"]] == ["pass", "pass"]
    trace = [json.loads(line) for line in res_dir.agent_trace.read_text().splitlines()]
    sent = [e["raw_json"]["method"] for e in trace
            if e.get("direction") == "client->agent" and "method" in e["raw_json"]]
    assert sent[:3] == ["initialize", "session/new", "session/prompt"]
    calls = [e["raw_json"]["params"]["update"] for e in trace if e["kind"] == "tool_call"]
    assert len(calls) == 1 and calls[0]["kind"] == "execute"
    assert "echo hi > /workspace/out.txt" in calls[0]["rawInput"]["command"][-1]
    # two scripted turns of gpt-5.2 (input $1.75, cached $0.175, output $14 per million)
    agent = s["agent"]
    assert agent["turns"] == 2
    assert (agent["input_tokens"], agent["cache_read_input_tokens"],
            agent["output_tokens"]) == (200, 100, 40)
    # (the summary keeps six decimals)
    assert agent["cost_usd"] == pytest.approx(2 * (100 * 1.75 + 50 * 0.175 + 20 * 14) / 1e6,
                                              abs=5e-7)
    bodies = sorted(p.name for p in res_dir.api_bodies.iterdir())
    assert bodies == [f"000{i}.{k}.json" for i in (1, 2) for k in ("request", "response")]
    first = json.loads((res_dir.api_bodies / "0001.response.json").read_text())
    assert first["message"]["output"][0]["name"] == "exec_command"
    # the sandbox had the run token, never the key
    env = (res_dir.workspace / "env.txt").read_text()
    assert "OPENAI_API_KEY=" in env and REAL_KEY not in env
    for path in (codex_project.root / ".axp").rglob("*"):
        if path.is_file():
            assert REAL_KEY.encode() not in path.read_bytes(), path


def test_the_trace_test_fails_when_the_agent_ran_nothing(codex_project):
    res, s, _ = _run(codex_project, TEXT_ONLY)
    assert s["status"] == "fail", res.stdout + res.stderr
    assert [t["status"] for t in s["tests"]] == ["fail", "fail"]
    assert s["agent"]["turns"] == 1


def test_no_key_and_no_script_is_an_error_before_any_sandbox(project, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    project.write("exp.yaml", EXPERIMENT)
    res = project.axp("local", "run", "exp.yaml")
    s = summary(project.only_run(), "default")
    reason = "no OPENAI_API_KEY and no --model-script"
    assert s["status"] == "error" and s["tests"] == [], res.stdout + res.stderr
    assert s["error"]["infrastructure"] is False and s["error"]["message"].startswith(reason)
    assert reason in res.stdout
    assert not project.only_run().results("default").api_bodies.exists()  # nothing was asked


def test_max_cost_stops_codex_after_the_call_that_passed_it(codex_project):
    # each turn costs (100*1.75 + 50*0.175 + 20*14)e-6 = 0.00046375; the cap passes on turn 2
    project = codex_project
    project.write("exp.yaml", EXPERIMENT.replace("{max_time_seconds: 180}",
                                                 "{max_time_seconds: 180, max_cost_usd: 0.0005}"))
    project.write("model.yaml", SHELL_WRITES_HI.replace("  - text: done", """\
  - tool_use: {name: shell, input: {command: "echo again >> /workspace/out.txt"}}
  - text: done"""))
    res = project.axp("local", "run", "exp.yaml", "--model-script", "model.yaml")
    s = summary(project.only_run(), "default")
    assert s["agent"]["stopped_reason"].startswith("max_cost_usd exceeded"), res.stdout
    # Two answered turns, then nothing answered: the harness cancels the session as the cap
    # passes, so a later call (if codex makes one before the cancel lands) is refused.
    assert s["agent"]["output_tokens"] == 40, s["agent"]
    bodies = project.only_run().results("default").api_bodies
    answers = [json.loads(p.read_text()) for p in sorted(bodies.glob("*.response.json"))]
    answered = [a["seq"] for a in answers if not a.get("refused")]
    assert answered == [1, 2], answers


NEVER = """
schema_version: 2
id: codex-limits
name: Codex limits
agents: [{name: codex, model: gpt-5.2}]
prompts: [{id: go, prompt: keep going}]
tests: {application: [{name: never, script: 'test ! -e never.txt'}]}
limits: LIMITS
"""


def _limits_run(project, limits: str, script: str):
    project.write("exp.yaml", NEVER.replace("LIMITS", limits))
    project.write("model.yaml", script)
    project.axp("local", "run", "exp.yaml", "--model-script", "model.yaml")
    run = project.only_run()
    return summary(run, "default"), run.results("default")


def test_max_turns_stops_codex(codex_project):
    s, res_dir = _limits_run(codex_project, "{max_turns: 2, max_time_seconds: 180}", """
turns:
  - tool_use: {name: shell, input: {command: "echo 1"}}
  - tool_use: {name: shell, input: {command: "echo 2"}}
  - tool_use: {name: shell, input: {command: "touch never.txt"}}
  - text: done
""")
    # The gateway refuses the third turn: the file is never made, the test passes.
    assert s["agent"]["stopped_reason"] == "max_turns reached: 2", s["agent"]
    assert s["agent"]["turns"] == 2 and s["agent"]["exit_code"] == 1
    assert s["status"] == "pass"
    assert "touch never.txt" not in res_dir.agent_trace.read_text()


def test_max_time_is_a_timeout_for_codex(codex_project):
    # codex returns from a long command after a while and goes on with it in the background:
    # turn after turn of sleeping keeps it busy past the limit.
    s, _ = _limits_run(codex_project, "{max_time_seconds: 20}", """
turns:
  - tool_use: {name: shell, input: {command: "sleep 60; touch never.txt"}}
  - tool_use: {name: shell, input: {command: "sleep 60"}}
  - tool_use: {name: shell, input: {command: "sleep 60"}}
  - tool_use: {name: shell, input: {command: "sleep 60"}}
  - tool_use: {name: shell, input: {command: "sleep 60"}}
  - tool_use: {name: shell, input: {command: "sleep 60"}}
  - text: done
""")
    assert s["status"] == "timeout", s
    assert s["agent"]["timed_out"] is True
