"""--retries / --axp-retries: only infrastructure errors run again, each attempt is kept,
and results count the last one."""

from __future__ import annotations

import json

import pytest

from pytest_axp.query.tables import derive_rows

from .conftest import summary

CLAUDE = """
schema_version: 2
id: retried
name: Retried
agents: [{name: claude, model: claude-sonnet-4-5}]
prompts: [{id: go, prompt: do the task}]
tests: {application: [{name: wrote, script: "test -f out.txt"}]}
limits: {max_time_seconds: 120}
"""

# The model API answers 503 to every request of the first attempt (the CLI's own retries
# included), then works.
FLAKY_API = """
turns:
  - error: {status: 503, message: upstream overloaded}
    attempts: [1]
  - tool_use: {name: Bash, input: {command: "echo hi > out.txt"}}
  - text: done
"""


@pytest.fixture
def claude_project(project):
    project.write("exp.yaml", CLAUDE)
    project.write("model.yaml", FLAKY_API)
    return project


def test_a_model_api_failure_runs_again_in_a_fresh_sandbox(claude_project):
    project = claude_project
    res = project.pytest("exp.yaml", "--axp-model-script", "model.yaml", "--axp-retries", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    s = summary(run, "default")
    assert s["status"] == "pass" and s["error"] is None
    assert [(a["n"], a["status"], a["infrastructure"], a["path"]) for a in s["attempts"]] == [
        (1, "error", True, "attempts/1/"), (2, "pass", False, ".")]
    assert "status 503" in s["attempts"][0]["reason"]
    first = json.loads((run.results("default").root / "attempts" / "1" /
                        "run-summary.json").read_text())
    assert first["error"]["phase"] == "model_api" and first["error"]["infrastructure"]
    assert first["agent"]["stopped_reason"] == "api_error: upstream status 503"
    assert first["tests"] == [], "tests do not run after a model API failure"
    assert not (run.results("default").root / "attempts" / "2").exists(), "one retry sufficed"
    # Each attempt had its own sandbox: the first attempt's commands are its own.
    first_cmds = (run.results("default").root / "attempts" / "1" / "commands.jsonl")
    last_cmds = run.results("default").commands_index
    assert first_cmds.is_file() and last_cmds.is_file()
    # Results and queries count the last attempt only.
    rows = derive_rows(run.root)
    assert [(r["variant_id"], r["status"]) for r in rows["runs"]] == [("default", "pass")]
    assert [(t["name"], t["status"]) for t in rows["tests"]] == [("wrote", "pass")]
    assert json.loads(run.index.read_text())["variants"]["default"]["status"] == "pass"


def test_without_retries_a_model_api_failure_is_an_infrastructure_error(claude_project):
    project = claude_project
    res = project.pytest("exp.yaml", "--axp-model-script", "model.yaml")
    assert res.returncode == 1
    s = summary(project.only_run(), "default")
    assert s["status"] == "error" and s["tests"] == []
    assert s["error"]["phase"] == "model_api" and s["error"]["infrastructure"] is True
    assert "attempts" not in s
    assert not (project.only_run().results("default").root / "attempts").exists()
    assert "default: error: model_api 'claude' failed: model API error: status 503" in res.stdout


RESULTS = """
schema_version: 2
id: results-stay
name: Results are never retried
agents: [{name: command, script: "echo ok > out.txt"}]
prompts: [go]
tests: {application: [{name: out-exists, script: "test -f out.txt"}]}
limits: {max_time_seconds: 3}
extensions:
  - id: failing
    agents: [{name: command, script: "true"}]
  - id: slow
    agents: [{name: command, script: "sleep 60"}]
  - id: exits
    agents: [{name: command, script: "exit 3"}]
  - id: broken-setup
    environments:
      - name: broken
        setup: "exit 3"
"""


def test_failures_timeouts_agent_exits_and_setup_errors_are_never_retried(project):
    project.write("results.yaml", RESULTS)
    res = project.axp("local", "run", "results.yaml", "--retries", "2", "--jobs", "2")
    assert res.returncode == 1, res.stdout + res.stderr
    run = project.only_run()
    variants = ("failing", "slow", "exits", "broken-setup")
    assert {v: summary(run, v)["status"] for v in variants} == {
        "failing": "fail", "slow": "timeout", "exits": "fail", "broken-setup": "error"}
    assert summary(run, "broken-setup")["error"]["infrastructure"] is False
    for vid in variants:
        assert "attempts" not in summary(run, vid)
        assert not (run.results(vid).root / "attempts").exists(), vid
