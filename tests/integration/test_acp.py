"""Agents over ACP in real sandboxes: claude (claude-agent-acp) and the generic `acp` agent,
answered by the scripted model gateway. The harness is the ACP client."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest

from .conftest import SHELL_WRITES_HI, summary

REAL_KEY = "sk-ant-test-REALKEY-acp-must-never-leak-0123456789"
EXAMPLES = Path(__file__).resolve().parents[2] / "example_experiments"

# Like real AXP files: which tool, and the command it ran.
BASH_USED = """jq -e -s 'map(select(.raw_json.params.update._meta.claudeCode.toolName == "Bash")
  | .raw_json.params.update.rawInput.command // empty) | any(test("echo hi"))' "$AXP_TRACE_PATH"
"""


def _experiment(limits: str, tests: str = "{}", agent: str = "claude") -> str:
    return f"""
schema_version: 2
id: acp-case
name: ACP case
agents: [{{name: {agent}, model: claude-sonnet-4-5}}]
prompts: [{{id: go, prompt: write the file}}]
tests: {tests}
limits: {limits}
"""


def _run(project, experiment: str, script: str | None, *extra: str):
    project.write("exp.yaml", experiment)
    args = ["exp.yaml"]
    if script is not None:
        project.write("model.yaml", script)
        args += ["--axp-model-script", "model.yaml"]
    res = project.pytest(*args, *extra)
    run = project.only_run()
    return res, summary(run, "default"), run.results("default")


def _trace(res_dir) -> list[dict]:
    return [json.loads(line) for line in res_dir.agent_trace.read_text().splitlines()]


@pytest.fixture
def acp_project(project, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", REAL_KEY)
    return project


TESTS = ("{application: [{name: file, script: 'grep -qx hi out.txt'}], "
         "introspection: [{name: used-bash, script: " + json.dumps(BASH_USED) + "}]}")


def test_claude_runs_a_shell_command_over_acp(acp_project):
    res, s, res_dir = _run(acp_project, _experiment("{max_time_seconds: 180}", TESTS),
                           SHELL_WRITES_HI)
    assert s["status"] == "pass", res.stdout + res.stderr
    assert [t["status"] for t in s["tests"]] == ["pass", "pass"]
    trace = _trace(res_dir)
    sent = [e["raw_json"]["method"] for e in trace if e.get("direction") == "client->agent"
            and "method" in e["raw_json"]]
    assert sent[:4] == ["initialize", "session/new", "session/set_mode", "session/prompt"]
    init = next(e for e in trace if e["kind"] == "initialize")["raw_json"]["params"]
    assert init["protocolVersion"] == 1
    new = next(e for e in trace if e["kind"] == "session/new")["raw_json"]["params"]
    assert new == {"cwd": "/workspace", "mcpServers": []}
    kinds = {e["kind"] for e in trace}
    assert {"available_commands_update", "tool_call", "tool_call_update", "usage_update",
            "session/request_permission", "agent_message_chunk"} <= kinds
    answers = [e for e in trace if e["kind"] == "response"
               and e.get("method") == "session/request_permission"]
    assert answers and answers[0]["direction"] == "client->agent"
    assert answers[0]["raw_json"]["result"]["outcome"]["outcome"] == "selected"
    calls = [e for e in trace if e.get("tool_call_id")]
    assert {c["raw_json"]["params"].get("update", {}).get("_meta", {}).get("claudeCode", {})
            .get("toolName") for c in calls if c["kind"] == "tool_call"} == {"Bash"}
    # Two scripted turns; the adapter's side requests consume none and cost nothing.
    agent = s["agent"]
    assert agent["turns"] == 2 and agent["exit_code"] == 0
    assert agent["input_tokens"] == 200 and agent["output_tokens"] == 40
    assert agent["cache_read_input_tokens"] == 100
    assert agent["cost_usd"] == pytest.approx(200 * 3e-6 + 40 * 15e-6 + 100 * 0.3e-6)
    raw = json.loads(res_dir.agent_raw.read_text())
    assert raw["result"]["stopReason"] == "end_turn" and raw["turns"] == 2
    assert raw["input_tokens"] == 200
    assert res_dir.agent_log.read_text().strip(), "agent.log is the adapter's stderr"
    session = [json.loads(x) for x in res_dir.agent_session.read_text().splitlines()]
    assert any(r.get("sessionId") == raw["sessionId"] for r in session)
    env = (res_dir.workspace / "env.txt").read_text()
    assert "ANTHROPIC_BASE_URL=http://" in env and "IS_SANDBOX=1" in env
    assert REAL_KEY not in env
    for path in (acp_project.root / ".axp").rglob("*"):
        if path.is_file():
            assert REAL_KEY.encode() not in path.read_bytes(), path


def test_trace_test_fails_when_the_agent_does_not_use_bash(acp_project):
    _res, s, _ = _run(acp_project, _experiment("{max_time_seconds: 180}", TESTS), """
turns:
  - tool_use: {name: write_file, input: {path: /workspace/out.txt, content: "hi\\n"}}
  - text: done
""")
    assert s["status"] == "fail"
    assert {t["name"]: t["status"] for t in s["tests"]} == {"file": "pass",
                                                            "used-bash": "fail"}


def test_max_turns_cancels_the_session(acp_project):
    _res, s, res_dir = _run(acp_project, _experiment(
        "{max_turns: 2, max_time_seconds: 180}",
        "{application: [{name: never, script: 'test -f never.txt'}]}"), """
turns:
  - tool_use: {name: shell, input: {command: "echo 1"}}
  - tool_use: {name: shell, input: {command: "echo 2"}}
  - tool_use: {name: shell, input: {command: "echo 3"}}
  - tool_use: {name: shell, input: {command: "touch never.txt"}}
  - text: done
""")
    assert s["agent"]["stopped_reason"] == "max_turns reached: 2"
    assert s["agent"]["exit_code"] == 1 and s["agent"]["turns"] == 2
    assert s["status"] == "fail"
    # The gateway refused the third turn; the adapter ended the prompt on that (or the
    # harness's cancel ended it first): either way no turn past the second played.
    said = [json.dumps(e) for e in _trace(res_dir)]
    assert any("echo 2" in e for e in said) and not any("echo 3" in e for e in said)


def test_max_time_cancels_then_kills(acp_project):
    _res, s, res_dir = _run(acp_project, _experiment(
        "{max_time_seconds: 15}", "{application: [{name: t, script: 'true'}]}"), """
turns:
  - tool_use:
      name: Bash
      input: {command: "python3 -c 'import time; time.sleep(300)'", timeout: 600000}
  - text: done
usage: {input_tokens: 120, output_tokens: 30}
""")
    assert s["status"] == "timeout" and s["tests"] == []
    assert s["agent"]["stopped_reason"] == "max_time_seconds exceeded: 15.0"
    assert s["agent"]["timed_out"] is True
    trace = _trace(res_dir)
    assert any(e["kind"] == "session/prompt" for e in trace)
    assert any(e["kind"] == "session/cancel" for e in trace)
    # The gateway's count of the one turn made.
    assert s["agent"]["turns"] == 1


def test_bundled_example_runs_on_the_acp_trace(acp_project):
    project = acp_project
    shutil.copy(EXAMPLES / "claude-hello.yaml", project.root)
    shutil.copy(EXAMPLES / "claude-hello.model.yaml", project.root)
    res = project.axp("local", "run", "claude-hello.yaml",
                      "--model-script", "claude-hello.model.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    s = summary(project.only_run(), "default")
    assert s["status"] == "pass"
    assert [t["name"] for t in s["tests"]] == ["file-written", "used-bash",
                                               "commands-extractable"]
    assert s["agent"]["turns"] == 3
    assert s["agent"]["input_tokens"] == 360 and s["agent"]["output_tokens"] == 90


# A minimal ACP adapter: answers the session, reports one tool call, asks permission, and
# writes a file when allowed. Stands for "any adapter the image or setup installed".
FAKE_ADAPTER = r'''
import json, sys
def send(m): sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
def update(sid, u): send({"jsonrpc": "2.0", "method": "session/update",
                          "params": {"sessionId": sid, "update": u}})
for line in sys.stdin:
    m = json.loads(line)
    method, mid = m.get("method"), m.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocolVersion": 1,
              "agentCapabilities": {}, "authMethods": []}})
    elif method == "session/new":
        send({"jsonrpc": "2.0", "id": mid, "result": {"sessionId": "s1"}})
    elif method == "session/prompt":
        update("s1", {"sessionUpdate": "tool_call", "toolCallId": "t1", "title": "touch",
                      "kind": "execute", "status": "pending",
                      "rawInput": {"command": "touch made.txt"}})
        send({"jsonrpc": "2.0", "id": 99, "method": "session/request_permission",
              "params": {"sessionId": "s1", "toolCall": {"toolCallId": "t1"},
                         "options": [{"optionId": "no", "kind": "reject_once", "name": "No"},
                                     {"optionId": "yes", "kind": "allow_once", "name": "Yes"}]}})
        answer = json.loads(sys.stdin.readline())
        if answer["result"]["outcome"].get("optionId") == "yes":
            open("/workspace/made.txt", "w").write(sys.argv[1])
        print("adapter log line", file=sys.stderr)
        update("s1", {"sessionUpdate": "agent_message_chunk",
                      "content": {"type": "text", "text": "made it"}})
        send({"jsonrpc": "2.0", "id": mid, "result": {"stopReason": "end_turn"}})
'''


def test_acp_agent_runs_the_adapter_given_by_command(project):
    project.write("fake_acp.py", FAKE_ADAPTER)
    experiment = """
schema_version: 2
id: acp-generic
name: any ACP adapter
agents: [{name: acp, command: "python3 /workspace/fake_acp.py 'word; $(no shell)'"}]
prompts: [{id: go, prompt: make it}]
files: [{source: fake_acp.py, dest: /workspace/fake_acp.py}]
tests:
  application:
    - {name: made, script: "grep -qxF 'word; $(no shell)' made.txt"}
  introspection:
    - name: tool-seen
      script: >-
        jq -s -e 'any(.[]; .kind == "tool_call" and
        .raw_json.params.update.rawInput.command == "touch made.txt")' "$AXP_TRACE_PATH"
limits: {max_time_seconds: 60}
"""
    res, s, res_dir = _run(project, experiment, "turns: [{text: unused}]")
    assert s["status"] == "pass", res.stdout + res.stderr
    assert s["agent"]["name"] == "acp" and s["agent"]["exit_code"] == 0
    assert "adapter log line" in res_dir.agent_log.read_text()


def test_acp_agent_without_command_is_refused(project):
    project.write("exp.yaml", """
schema_version: 2
id: acp-bad
name: bad
agents: [{name: acp}]
prompts: [{id: go, prompt: x}]
tests: {}
limits: {max_time_seconds: 60}
""")
    res = project.axp("experiment", "validate", "exp.yaml")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "agent acp: command: the 'acp' agent needs a 'command'" in res.stdout + res.stderr


def test_max_cost_ends_the_session(acp_project):
    _res, s, _ = _run(acp_project, _experiment("{max_time_seconds: 180, max_cost_usd: 0.01}"),
                      """
turns:
  - tool_use: {name: shell, input: {command: "echo 1"}}
  - tool_use: {name: shell, input: {command: "echo 2"}}
  - tool_use: {name: shell, input: {command: "echo 3"}}
  - text: done
usage: {input_tokens: 2000, output_tokens: 500}
""")
    # Each turn costs 2000*3e-6 + 500*15e-6 = 0.0135 > 0.01: the second call is refused.
    assert s["agent"]["stopped_reason"].startswith("max_cost_usd exceeded")
    assert s["agent"]["exit_code"] == 1
    assert s["status"] == "error"


def test_upstream_500_is_an_infrastructure_error(acp_project):
    _res, s, _ = _run(acp_project, _experiment("{max_time_seconds: 180}"), """
turns:
  - error: {status: 500, message: overloaded}
""")
    assert s["status"] == "error"
    assert s["agent"]["stopped_reason"] == "api_error: upstream status 500"
    assert s["agent"]["api_error_status"] == 500
    assert s["error"]["infrastructure"] is True


def test_no_key_and_no_script_is_an_error_before_any_sandbox(project, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    shutil.copy(EXAMPLES / "claude-hello.yaml", project.root)
    res = project.pytest("claude-hello.yaml", "-rA")
    assert res.returncode == 1, res.stdout + res.stderr
    reason = "no ANTHROPIC_API_KEY and no --model-script"
    assert f"default: error: model_api 'claude' failed: {reason}" in res.stdout, res.stdout
    s = summary(project.only_run(), "default")
    assert s["status"] == "error" and s["tests"] == []
    # configuration, not infrastructure: a retry would not help
    assert s["error"]["infrastructure"] is False


SKILL_EXPERIMENT = r"""
schema_version: 2
id: acp-skill
name: Skill
agents: [{name: claude, model: claude-sonnet-4-5}]
prompts: [{id: go, prompt: use the greet skill}]
environments:
  - name: env
    setup: |
      mkdir -p /home/agent/.claude/skills/greet
      printf -- '---\nname: greet\ndescription: Greets\n---\nSay hello.\n' \
        > /home/agent/.claude/skills/greet/SKILL.md
      chown -R agent:agent /home/agent/.claude
tests:
  introspection:
    - name: skill
      script: >-
        jq -s -e 'any(.[]; .raw_json.params.update.rawInput.skill == "greet")'
        "$AXP_TRACE_PATH"
limits: {max_time_seconds: 180}
"""


@pytest.mark.parametrize(("first_turn", "status"), [
    ("{tool_use: {name: Skill, input: {skill: greet}}}", "pass"),
    ("{tool_use: {name: shell, input: {command: 'echo greet'}}}", "fail"),
])
def test_skill_use_is_read_from_raw_input_skill(acp_project, first_turn, status):
    _res, s, _ = _run(acp_project, SKILL_EXPERIMENT,
                      f"turns:\n  - {first_turn}\n  - text: done\n")
    assert s["status"] == status
    assert [t["status"] for t in s["tests"]] == [status]


def test_model_options_reach_the_adapter(acp_project):
    experiment = _experiment("{max_time_seconds: 180}").replace(
        "model: claude-sonnet-4-5",
        "model: {name: opus, effort: high, fast: true, thinking: 2048, "
        "context_window_size: 100000}")
    _res, s, res_dir = _run(acp_project, experiment, """
turns:
  - tool_use: {name: shell, input: {command: "env > /workspace/env.txt"}}
  - text: done
""")
    assert s["status"] == "pass" and s["agent"]["model"] == "opus"
    env = (res_dir.workspace / "env.txt").read_text().splitlines()
    assert "ANTHROPIC_MODEL=opus" in env and "MAX_THINKING_TOKENS=2048" in env
    trace = _trace(res_dir)
    options = {e["raw_json"]["params"]["configId"]: e["raw_json"]["params"]["value"]
               for e in trace if e["kind"] == "session/set_config_option"}
    assert options == {"effort": "high", "fast": "on"}


def test_an_interrupted_session_keeps_the_frames_said_so_far(acp_project):
    project = acp_project
    project.write("exp.yaml", _experiment("{max_time_seconds: 300}"))
    project.write("model.yaml", """
turns:
  - tool_use:
      name: Bash
      input: {command: "python3 -c 'import time; time.sleep(200)'", timeout: 600000}
  - text: done
""")
    proc = project.start("axp_cli", "local", "run", "exp.yaml", "--model-script", "model.yaml",
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        seen: list[dict] = []
        while time.monotonic() < deadline and not any(
                e.get("kind") == "session/request_permission" for e in seen):
            time.sleep(0.2)
            traces = list(project.runs_dir.glob("*/results/default/agent-trace.jsonl"))
            if traces:
                # Written as the frames come: the session is still running.
                seen = [json.loads(x) for x in traces[0].read_text().splitlines()
                        if x.endswith("}")]
        assert proc.poll() is None and seen, "the trace was not written while running"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    run = project.only_run()
    assert not run.index.exists()
    kept = [json.loads(x) for x in run.results("default").agent_trace.read_text().splitlines()]
    kinds = [e["kind"] for e in kept]
    for kind in ("initialize", "session/new", "session/prompt", "tool_call",
                 "session/request_permission"):
        assert kind in kinds, kinds


def test_a_plugin_agent_builds_on_the_acp_base(project):
    project.write("agent_src.py", FAKE_ADAPTER)
    project.write("conftest.py", '''
from pathlib import Path

import pytest

from pytest_axp.agents.acp import AcpAgent

SOURCE = (Path(__file__).parent / "agent_src.py").read_bytes()


class Mine(AcpAgent):
    name = "mine"
    model_api = None  # calls no model: no gateway, no token

    def adapter_argv(self, ctx):
        return ["python3", "/home/agent/.mine/conf/agent.py", "from-plugin"]

    def sandbox_files(self, ctx, gateway):
        return {"/home/agent/.mine/conf/agent.py": SOURCE}


@pytest.hookimpl
def pytest_axp_agent(name, config):
    return Mine() if name == "mine" else None
''')
    project.write("exp.yaml", """
schema_version: 2
id: plugin-acp
name: plugin on the ACP base
agents: [mine]
prompts: [{id: go, prompt: make it}]
tests:
  application:
    - {name: made, script: "grep -qx from-plugin made.txt"}
    - {name: owned, script: "test \\"$(stat -c %U /home/agent/.mine/conf)\\" = agent"}
limits: {max_time_seconds: 60}
""")
    res = project.pytest("exp.yaml")
    s = summary(project.only_run(), "default")
    assert s["status"] == "pass", res.stdout + res.stderr
    assert s["agent"]["name"] == "mine" and s["agent"]["model_source"] == "none"


def test_docker_process_stdio_is_demultiplexed_recorded_and_killable(tmp_path):
    from pytest_axp.record.commands import CommandLog
    from pytest_axp.record.layout import VariantPaths
    from pytest_axp.sandbox.docker import DockerSandbox
    from pytest_axp.sandbox.docker_image import ensure_image
    from pytest_axp.secrets import Redactor

    paths = VariantPaths(tmp_path / "v")
    box = DockerSandbox.create(image=ensure_image(None, tmp_path),
                               labels={"axp.run_id": f"acp-process-{tmp_path.name}"},
                               commands=CommandLog(paths, redactor=Redactor(["s3cret-v"])))
    try:
        loop = 'while read -r l; do echo "got $l"; echo "err $l" >&2; done'
        proc = box.start(["bash", "-c", loop], phase="agent", name="talker")
        proc.write(b"one\n")
        assert proc.read_line(30) == b"got one\n"
        proc.write(b"s3cret-v\n")
        assert proc.read_line(30) == b"got s3cret-v\n"
        with pytest.raises(TimeoutError):
            proc.read_line(0.2)
        proc.close_stdin()
        assert proc.read_line(30) is None
        assert proc.wait(30) == 0
        stuck = box.start(["sleep", "300"], phase="agent", name="stuck", user="agent")
        assert stuck.wait(0.2) is None
        stuck.kill()
        assert stuck.wait(30) is not None
    finally:
        box.remove()
    records = [json.loads(x) for x in paths.commands_index.read_text().splitlines()]
    assert [(r["name"], r["exit_code"] == 0, r["timed_out"]) for r in records] == [
        ("talker", True, False), ("stuck", False, True)]
    err = (paths.root / records[0]["stderr_path"]).read_text()
    assert err == "err one\nerr [REDACTED]\n"
    assert "s3cret-v" not in (paths.root / records[0]["stdout_path"]).read_text()


WEBFETCH_TESTS = ("{introspection: [{name: fetched, script: " + json.dumps(
    "jq -s -e 'any(.[]; .raw_json.params.update._meta.claudeCode.toolName == \"WebFetch\" "
    "and .raw_json.params.update.rawInput.url == \"http://example.invalid/page\")' "
    "\"$AXP_TRACE_PATH\"") + "}]}")


@pytest.mark.parametrize(("first_turn", "status"), [
    ("{tool_use: {name: WebFetch, input: {url: 'http://example.invalid/page', "
     "prompt: summarize}}}", "pass"),
    ("{tool_use: {name: shell, input: {command: 'echo http://example.invalid/page'}}}",
     "fail"),
])
def test_web_fetch_is_read_from_tool_name_and_raw_input_url(acp_project, first_turn, status):
    _res, s, _ = _run(acp_project, _experiment("{max_time_seconds: 180}", WEBFETCH_TESTS),
                      f"turns:\n  - {first_turn}\n  - text: done\n")
    assert s["status"] == status
