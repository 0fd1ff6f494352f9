"""The real Claude Code CLI (agent `claude-code`) in real sandboxes, answered by the scripted
model gateway. (Agent `claude` runs it over ACP: test_acp.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import summary

REAL_KEY = "sk-ant-test-REALKEY-must-never-leak-0123456789"
EXAMPLES = Path(__file__).resolve().parents[2] / "example_experiments"


def _experiment(limits: str, tests: str = "{}") -> str:
    return f"""
schema_version: 2
id: claude-case
name: Claude case
agents: [{{name: claude-code, model: claude-sonnet-4-5}}]
prompts: [{{id: go, prompt: do the task}}]
tests: {tests}
limits: {limits}
"""


def _run(project, experiment: str, script: str, *extra: str):
    project.write("exp.yaml", experiment)
    project.write("model.yaml", script)
    res = project.pytest("exp.yaml", "--axp-model-script", "model.yaml", *extra)
    run = project.only_run()
    return res, run, summary(run, "default"), run.results("default")


@pytest.fixture
def claude_project(project, monkeypatch):
    # The host has a real-looking key; it must reach no file and not the sandbox.
    monkeypatch.setenv("ANTHROPIC_API_KEY", REAL_KEY)
    return project


def _copy_example_as_cli(root: Path) -> None:
    text = (EXAMPLES / "claude-hello.yaml").read_text()
    (root / "claude-hello.yaml").write_text(text.replace("- name: claude\n",
                                                         "- name: claude-code\n"))


def _files_under(root: Path):
    return [p for p in root.rglob("*") if p.is_file()]


def test_bundled_example_runs_offline(claude_project):
    project = claude_project
    _copy_example_as_cli(project.root)
    shutil.copy(EXAMPLES / "claude-hello.model.yaml", project.root)
    res = project.axp("local", "run", "claude-hello.yaml",
                      "--model-script", "claude-hello.model.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    s = summary(run, "default")
    assert s["status"] == "pass"
    assert [t["name"] for t in s["tests"]] == ["file-written", "used-bash",
                                               "commands-extractable"]
    # Three scripted turns of 120 input / 30 output tokens each.
    assert s["agent"]["turns"] == 3
    assert s["agent"]["input_tokens"] == 360 and s["agent"]["output_tokens"] == 90
    assert s["agent"]["cost_usd"] == pytest.approx(360 * 3e-6 + 90 * 15e-6)
    res_dir = run.results("default")
    raw = json.loads(res_dir.agent_raw.read_text())
    assert raw["type"] == "result" and raw["num_turns"] == 3
    bodies = sorted(p.name for p in res_dir.api_bodies.iterdir())
    assert bodies == ["0001.request.json", "0001.response.json", "0002.request.json",
                      "0002.response.json", "0003.request.json", "0003.response.json"]
    session = res_dir.agent_session.read_text().splitlines()
    assert session and all(json.loads(line) for line in session)
    trace = [json.loads(x) for x in res_dir.agent_trace.read_text().splitlines()]
    calls = [e for e in trace if e["kind"] == "tool_call"]
    assert [c["raw_json"]["params"]["update"]["_meta"]["claudeCode"]["toolName"]
            for c in calls] == ["Write", "Bash"]
    assert all(e["session_id"] == trace[0]["session_id"] for e in trace)
    assert any(e["kind"] == "tool_call_update" and e["tool_call_id"] == calls[1]["tool_call_id"]
               for e in trace)
    otlp = sorted(p.name for p in res_dir.traces.iterdir())
    assert any(n.endswith(".agent.otlp.json") for n in otlp), otlp
    assert any(n.endswith(".agent.logs.json") for n in otlp), otlp
    for path in _files_under(project.root / ".axp"):
        assert REAL_KEY.encode() not in path.read_bytes(), path


def test_sandbox_never_sees_the_key(claude_project):
    _res, _run_dir, _s, res_dir = _run(claude_project, _experiment("{max_time_seconds: 120}"), """
turns:
  - tool_use: {name: Bash, input: {command: "env > /workspace/agent-env.txt"}}
  - text: done
""")
    env = (res_dir.workspace / "agent-env.txt").read_text()
    assert "ANTHROPIC_BASE_URL=http://host.docker.internal:" in env
    assert "ANTHROPIC_API_KEY=" in env
    assert REAL_KEY not in env
    request = json.loads((res_dir.api_bodies / "0001.request.json").read_text())
    assert "[REDACTED]" in json.dumps(request)


def test_max_turns_stops_the_agent(claude_project):
    _res, _run_dir, s, _ = _run(claude_project, _experiment(
        "{max_turns: 2, max_time_seconds: 120}",
        "{application: [{name: never, script: 'test -f never.txt'}]}"), """
turns:
  - tool_use: {name: Bash, input: {command: "echo 1"}}
  - tool_use: {name: Bash, input: {command: "echo 2"}}
  - tool_use: {name: Bash, input: {command: "echo 3"}}
  - tool_use: {name: Bash, input: {command: "touch never.txt"}}
""")
    assert s["status"] == "fail"
    assert s["agent"]["exit_code"] == 1
    assert s["agent"]["stopped_reason"] == "max_turns reached: 2"
    assert s["agent"]["turns"] >= 2


def test_max_time_is_a_timeout(claude_project):
    _res, _run_dir, s, res_dir = _run(
        claude_project,
        _experiment("{max_time_seconds: 8}", "{application: [{name: t, script: 'true'}]}"),
        """
turns:
  - tool_use:
      name: Bash
      input: {command: "python3 -c 'import time; time.sleep(100)'", timeout: 600000}
  - text: done
usage: {input_tokens: 120, output_tokens: 30}
""",
    )
    assert s["status"] == "timeout" and s["tests"] == []
    assert s["agent"]["stopped_reason"] == "max_time_seconds exceeded: 8.0"
    assert s["duration_seconds"] < 60
    # Killed before printing its result: the numbers come from the gateway's own counts.
    assert res_dir.agent_raw.read_text() == ""
    assert s["agent"]["turns"] == 1 and s["agent"]["input_tokens"] == 120


def test_max_cost_stops_the_run(claude_project):
    _res, _run_dir, s, _res_dir = _run(
        claude_project,
        _experiment("{max_time_seconds: 120, max_cost_usd: 0.01}"),
        """
turns:
  - tool_use: {name: Bash, input: {command: "echo 1"}}
  - tool_use: {name: Bash, input: {command: "echo 2"}}
  - tool_use: {name: Bash, input: {command: "echo 3"}}
  - text: done
usage: {input_tokens: 2000, output_tokens: 500}
""",
    )
    # Each turn costs 2000*3e-6 + 500*15e-6 = 0.0135 > 0.01: the second call is refused.
    assert s["agent"]["stopped_reason"].startswith("max_cost_usd exceeded")
    assert s["status"] == "error"  # the agent failed and there were no tests
    assert s["agent"]["exit_code"] == 1


def test_upstream_500_is_recorded(claude_project):
    _res, _run_dir, s, res_dir = _run(claude_project, _experiment("{max_time_seconds: 120}"), """
turns:
  - error: {status: 500, message: overloaded}
""")
    assert s["status"] == "error"
    assert s["agent"]["exit_code"] == 1
    assert s["agent"]["stopped_reason"] == "api_error: upstream status 500"
    # Not the agent's failure: an error the harness may retry, and no tests were run.
    assert s["error"]["infrastructure"] is True and s["agent"]["api_error_status"] == 500
    assert s["error"]["message"] == "model API error: status 500 after the agent's retries"
    responses = sorted(res_dir.api_bodies.glob("*.response.json"))
    assert responses and "500" in responses[0].read_text()


def test_secret_is_redacted_in_api_bodies_session_and_trace(claude_project, monkeypatch):
    secret = "tok-Claude-Secret-987654321"
    monkeypatch.setenv("MY_TOKEN", secret)
    experiment = _experiment("{max_time_seconds: 120}").replace(
        "tests: {}", "secrets: [MY_TOKEN]\ntests: {}")
    res, _run_dir, s, res_dir = _run(claude_project, experiment, """
turns:
  - tool_use: {name: Bash, input: {command: "echo token=$MY_TOKEN"}}
  - text: done
""")
    assert s["status"] == "pass", res.stdout
    second = (res_dir.api_bodies / "0002.request.json").read_text()
    assert "token=[REDACTED]" in second, "the tool result went back to the model, redacted"
    assert "[REDACTED]" in res_dir.agent_session.read_text()
    assert "token=[REDACTED]" in res_dir.agent_trace.read_text()
    for path in (claude_project.root / ".axp").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_no_key_and_no_script_is_an_error_before_any_sandbox(project, monkeypatch,
                                                            docker_client):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    _copy_example_as_cli(project.root)
    res = project.pytest("claude-hello.yaml", "-rA", "--axp-retries", "2")
    assert res.returncode == 1, res.stdout + res.stderr
    reason = "no ANTHROPIC_API_KEY and no --model-script"
    assert f"default: error: model_api 'claude-code' failed: {reason}: set the key" \
        in res.stdout, res.stdout
    assert "FAILED" not in res.stdout, "never a failed test"
    run = project.only_run()
    s = summary(run, "default")
    assert s["status"] == "error" and s["tests"] == [], "tests must not run"
    assert s["error"]["phase"] == "model_api" and s["error"]["infrastructure"] is False
    assert s["error"]["message"].startswith(reason)
    assert "attempts" not in s, "a missing key is not retried"
    # Said before any sandbox: nothing ran, no model call reached the gateway.
    assert not run.results("default").commands_index.exists()
    assert not run.results("default").api_bodies.exists()
    assert not [c for c in docker_client.containers.list(
        all=True, filters={"label": f"axp.run_id={run.run_id}"}, sparse=True)]


def test_no_key_and_no_script_dry_run_says_so_and_exits_1(project, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    shutil.copy(EXAMPLES / "claude-hello.yaml", project.root)
    shutil.copy(EXAMPLES / "claude-hello.model.yaml", project.root)
    res = project.axp("local", "run", "claude-hello.yaml", "--dry-run")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "none: no ANTHROPIC_API_KEY and no --model-script" in res.stdout
    assert res.stdout.rstrip().endswith("missing: model for agent claude (no "
                                        "ANTHROPIC_API_KEY and no --model-script)")
    scripted = project.axp("local", "run", "claude-hello.yaml", "--dry-run",
                           "--model-script", "claude-hello.model.yaml")
    assert scripted.returncode == 0, scripted.stdout + scripted.stderr
    assert "scripted (claude-hello.model.yaml)" in scripted.stdout
    monkeypatch.setenv("ANTHROPIC_API_KEY", REAL_KEY)
    live = project.axp("local", "run", "claude-hello.yaml", "--dry-run")
    assert live.returncode == 0, live.stdout + live.stderr
    assert "model API" in live.stdout and REAL_KEY not in live.stdout
    assert not project.runs_dir.exists(), "a dry run writes nothing"


def test_no_key_and_no_script_cli_run_ends_as_error_on_the_terminal(project, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    shutil.copy(EXAMPLES / "claude-hello.yaml", project.root)
    res = project.axp("local", "run", "claude-hello.yaml")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "no ANTHROPIC_API_KEY and no --model-script" in res.stdout, res.stdout
    assert summary(project.only_run(), "default")["status"] == "error"
