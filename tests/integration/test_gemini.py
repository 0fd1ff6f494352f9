"""The `gemini` agent (Gemini CLI over ACP) in real sandboxes, answered by the gateway's
scripted Gemini API: `axp local run --model-script`, offline."""

from __future__ import annotations

import json

import pytest

from .conftest import SHELL_WRITES_HI, summary

REAL_KEY = "gemini-host-REALKEY-must-never-leak-0123456789"

# Gemini CLI's tool frames carry no rawInput: the tool is the toolCallId's prefix and the
# title is the command it ran.
RAN_SHELL = """jq -e -s 'map(select(.raw_json.params.update.sessionUpdate == "tool_call")
  | .raw_json.params.update) | any((.toolCallId | startswith("run_shell_command"))
  and (.title | test("echo hi")))' "$AXP_TRACE_PATH"
"""
TESTS = ("{application: [{name: file, script: 'grep -qx hi out.txt'}], "
         "introspection: [{name: ran-shell, script: " + json.dumps(RAN_SHELL) + "}]}")


def _experiment(agent: str, limits: str = "{max_time_seconds: 180}",
                tests: str = TESTS) -> str:
    return f"""
schema_version: 2
id: gemini-case
name: Gemini case
agents: [{agent}]
prompts: [{{id: go, prompt: write the file}}]
tests: {tests}
limits: {limits}
"""


@pytest.fixture
def gemini_project(project, monkeypatch):
    # The host has a real-looking key; it must reach no file and not the sandbox.
    monkeypatch.setenv("GEMINI_API_KEY", REAL_KEY)
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
    return project


def _local_run(project, experiment: str, script: str):
    project.write("exp.yaml", experiment)
    project.write("model.yaml", script)
    res = project.axp("local", "run", "exp.yaml", "--model-script", "model.yaml")
    run = project.only_run()
    return res, summary(run, "default"), run.results("default")


def _trace(res_dir) -> list[dict]:
    return [json.loads(line) for line in res_dir.agent_trace.read_text().splitlines()]


def test_gemini_runs_a_scripted_shell_call_offline(gemini_project):
    res, s, res_dir = _local_run(
        gemini_project, _experiment("{name: gemini, model: gemini-2.5-flash}"), SHELL_WRITES_HI)
    assert res.returncode == 0, res.stdout + res.stderr
    assert s["status"] == "pass"
    assert [(t["name"], t["status"]) for t in s["tests"]] == [("file", "pass"),
                                                               ("ran-shell", "pass")]
    trace = _trace(res_dir)
    sent = [e["raw_json"]["method"] for e in trace if e.get("direction") == "client->agent"
            and "method" in e["raw_json"]]
    assert sent[:4] == ["initialize", "session/new", "session/set_mode", "session/prompt"]
    mode = next(e for e in trace if e["kind"] == "session/set_mode")["raw_json"]["params"]
    assert mode["modeId"] == "yolo"
    init = next(e for e in trace if e.get("method") == "initialize")["raw_json"]["result"]
    assert init["agentInfo"]["name"] == "gemini-cli"
    assert {"available_commands_update", "tool_call", "tool_call_update",
            "agent_message_chunk"} <= {e["kind"] for e in trace}

    # two scripted turns at gemini-2.5-flash prices; cached tokens at the cached price
    agent = s["agent"]
    assert (agent["turns"], agent["exit_code"], agent["stopped_reason"]) == (2, 0, None)
    assert (agent["input_tokens"], agent["output_tokens"]) == (200, 40)
    assert agent["cache_read_input_tokens"] == 100
    assert agent["cost_usd"] == pytest.approx((200 * 0.30 + 40 * 2.50 + 100 * 0.03) / 1e6)
    raw = json.loads(res_dir.agent_raw.read_text())
    assert raw["result"]["stopReason"] == "end_turn" and raw["turns"] == 2
    bodies = sorted(p.name for p in res_dir.api_bodies.iterdir())
    assert bodies == [f"000{i}.{k}.json" for i in (1, 2) for k in ("request", "response")]
    request = json.loads((res_dir.api_bodies / "0001.request.json").read_text())
    assert request["path"] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert request["headers"]["x-goog-api-key"] == "[REDACTED]"

    # the sandbox had the gateway and a run token, never the key
    env = (res_dir.workspace / "env.txt").read_text()
    assert "GOOGLE_GEMINI_BASE_URL=http://host.docker.internal:" in env
    assert "GEMINI_API_KEY=axp-run-" in env
    assert REAL_KEY not in env
    for path in (gemini_project.root / ".axp").rglob("*"):
        if path.is_file():
            assert REAL_KEY.encode() not in path.read_bytes(), path


def test_routing_side_calls_consume_no_turn(gemini_project):
    # No model: the CLI routes the prompt itself, with a classifier call first.
    res, s, res_dir = _local_run(
        gemini_project, _experiment("{name: gemini}"),
        SHELL_WRITES_HI + "side_usage: {input_tokens: 7, output_tokens: 3}\n")
    assert s["status"] == "pass", res.stdout + res.stderr
    kinds = []
    for path in sorted(res_dir.api_bodies.glob("*.response.json")):
        kinds.append(json.loads(path.read_text())["script"]["kind"])
    assert kinds.count("turn") == 2 and kinds.count("side") >= 1
    assert s["agent"]["turns"] == 2
    assert s["agent"]["input_tokens"] == 200 + 7 * kinds.count("side")


def test_max_cost_stops_gemini_after_one_refused_call(gemini_project):
    _res, s, res_dir = _local_run(
        gemini_project,
        _experiment("{name: gemini, model: gemini-2.5-pro}",
                    "{max_time_seconds: 180, max_cost_usd: 0.001}",
                    "{application: [{name: never, script: 'test -f never.txt'}]}"), """
turns:
  - tool_use: {name: shell, input: {command: "echo 1"}}
  - tool_use: {name: shell, input: {command: "touch never.txt"}}
usage: {input_tokens: 1000, output_tokens: 1000}
""")
    assert s["status"] == "fail"
    agent = s["agent"]
    assert agent["stopped_reason"].startswith("max_cost_usd exceeded")
    assert agent["exit_code"] == 1
    # The harness cancels the session once the cap is passed; a call the CLI makes before
    # that is refused, and the CLI does not retry the refusal.
    responses = [json.loads(p.read_text()) for p in sorted(res_dir.api_bodies.glob(
        "*.response.json"))]
    assert [r.get("refused", False) for r in responses] in ([False], [False, True])
    assert agent["cost_usd"] == pytest.approx((1000 * 1.25 + 1000 * 10) / 1e6)
    assert not (res_dir.workspace / "never.txt").exists()


NEVER = "{application: [{name: never, script: 'test -f never.txt'}]}"


def test_max_turns_stops_gemini(gemini_project):
    _res, s, _ = _local_run(gemini_project, _experiment(
        "{name: gemini, model: gemini-2.5-flash}", "{max_turns: 2, max_time_seconds: 180}",
        NEVER), """
turns:
  - tool_use: {name: shell, input: {command: "echo 1"}}
  - tool_use: {name: shell, input: {command: "echo 2"}}
  - tool_use: {name: shell, input: {command: "echo 3"}}
  - tool_use: {name: shell, input: {command: "echo 4"}}
  - tool_use: {name: shell, input: {command: "echo 5"}}
  - tool_use: {name: shell, input: {command: "touch never.txt"}}
""")
    # The gateway refuses the third turn, however fast the CLI asks for it.
    assert s["status"] == "fail"
    assert s["agent"]["stopped_reason"] == "max_turns reached: 2"
    assert s["agent"]["exit_code"] == 1 and s["agent"]["turns"] == 2


def test_max_time_is_a_timeout_for_gemini(gemini_project):
    _res, s, _ = _local_run(gemini_project, _experiment(
        "{name: gemini, model: gemini-2.5-flash}", "{max_time_seconds: 20}", NEVER), """
turns:
  - tool_use: {name: shell, input: {command: "sleep 120; touch never.txt"}}
  - text: done
""")
    assert s["status"] == "timeout"
    assert s["agent"]["timed_out"] is True


def test_no_key_and_no_script_ends_as_an_error_before_any_sandbox(project, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
    project.write("exp.yaml", _experiment("{name: gemini, model: gemini-2.5-flash}"))
    res = project.axp("local", "run", "exp.yaml")
    run = project.only_run()
    s = summary(run, "default")
    reason = "no GEMINI_API_KEY and no --model-script"
    assert s["status"] == "error" and s["error"]["infrastructure"] is False
    assert s["error"]["message"].startswith(reason) and reason in res.stdout
    assert not run.results("default").api_bodies.exists()  # nothing was asked
