"""A v2 experiment whose extensions end in each status of seed 004."""

from __future__ import annotations

import json

from .conftest import index, summary

OUTCOMES = """
schema_version: 2
id: outcomes
name: Outcomes
agents:
  - name: command
    script: echo ok > out.txt; echo agent-said-this
prompts:
  - id: p
    prompt: write out.txt
tests:
  application:
    - name: out-exists
      script: test -f out.txt
limits:
  max_turns: 1
  max_time_seconds: 3
extensions:
  - id: passes
  - id: fails
    agents: [{name: command, script: "true"}]
  - id: times-out
    agents: [{name: command, script: "echo started; sleep 60"}]
  - id: broken-setup
    environments:
      - name: broken
        setup: "echo setting up; echo oops >&2; exit 3"
"""


def test_pass_fail_timeout_error(project):
    project.write("outcomes.yaml", OUTCOMES)
    res = project.pytest("outcomes.yaml", "-rA")
    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout
    for line in ("PASSED outcomes.yaml::passes", "FAILED outcomes.yaml::fails",
                 "FAILED outcomes.yaml::times-out", "ERROR outcomes.yaml::broken-setup"):
        assert line in out, out

    run = project.only_run()
    assert run.run_id.startswith("outcomes-") and len(run.run_id) == len("outcomes-") + 26
    statuses = {vid: summary(run, vid)["status"] for vid in run.selected_variants()}
    assert statuses == {"passes": "pass", "fails": "fail", "times-out": "timeout",
                        "broken-setup": "error"}

    idx = index(run)
    assert idx["schema_version"] == 1 and idx["experiment_id"] == "outcomes"
    assert {k: v["status"] for k, v in idx["variants"].items()} == statuses
    assert idx["variants"]["passes"]["paths"] == {
        "results_dir": "results/passes", "run_summary": "results/passes/run-summary.json"}

    passed = summary(run, "passes")
    assert set(passed) >= {"schema_version", "run_id", "variant_id", "variant_tag",
                           "experiment_id", "status", "agent", "started_at_epoch",
                           "ended_at_epoch", "duration_seconds", "tests"}
    assert passed["agent"]["exit_code"] == 0
    assert passed["tests"] == [{**passed["tests"][0], "name": "out-exists",
                                "kind": "application", "status": "pass", "exit_code": 0}]
    res_dir = run.results("passes")
    assert (res_dir.workspace / "out.txt").read_text() == "ok\n"
    assert res_dir.agent_raw.read_text() == "agent-said-this\n"
    assert res_dir.agent_log.exists()
    assert (res_dir.root / "application" / "out-exists.stdout.log").exists()
    trace = [json.loads(x) for x in res_dir.agent_trace.read_text().splitlines()]
    assert trace[0]["kind"] == "axp_meta"
    assert any(e["kind"] == "agent_message_chunk" for e in trace)
    records = [json.loads(x) for x in res_dir.commands_index.read_text().splitlines()]
    # The agent's processes stopped; three workspace snapshots around agent and tests.
    assert [(r["phase"], r["name"]) for r in records] == [
        ("snapshot", "before_agent"), ("agent", "command"), ("agent", "stop-processes"),
        ("snapshot", "after_agent"),
        ("snapshot", "fetch-changed"), ("test", "application/out-exists"),
        ("snapshot", "after_tests")]
    for r in records:
        assert (res_dir.root / r["stdout_path"]).exists()
        assert (res_dir.root / r["stderr_path"]).exists()
    layout = json.loads(res_dir.layout.read_text())
    assert {f["path"] for f in layout["files"]} >= {"run-summary.json", "agent-raw.json",
                                                    "commands.jsonl"}

    failed = summary(run, "fails")
    assert failed["tests"][0]["status"] == "fail" and failed["tests"][0]["exit_code"] == 1
    assert "fails: application test 'out-exists' failed (exit 1)" in out

    timed = summary(run, "times-out")
    assert timed["tests"] == [] and timed["agent"]["timed_out"] is True
    assert timed["duration_seconds"] < 20, "the agent was not stopped at max_time_seconds"
    assert "times-out: timeout" in out

    err = summary(run, "broken-setup")
    assert err["error"]["phase"] == "setup"
    assert err["error"]["name"] == "environment/setup"
    assert err["error"]["exit_code"] == 3
    assert "setting up" in err["error"]["stdout_tail"] and "oops" in err["error"]["stderr_tail"]
    assert not run.results("broken-setup").agent_raw.exists(), "agent ran after a failed setup"
    assert "broken-setup: error: setup 'environment/setup' failed (exit 3)" in out
    for vid in statuses:
        assert run.resolved_variant(vid).is_file()


def test_agent_error_without_tests_is_error(project):
    project.write("noisy.yaml", """
        schema_version: 2
        id: noisy
        name: Agent crashes, nothing to test
        agents: [{name: command, script: "exit 7"}]
        prompts: [go]
        tests: {}
        limits: {max_time_seconds: 30}
    """)
    res = project.pytest("noisy.yaml")
    assert res.returncode == 1
    s = summary(project.only_run(), "default")
    assert s["status"] == "error" and s["agent"]["exit_code"] == 7
    assert "the agent exited 7 and no tests ran" in res.stdout


def test_agent_not_available_is_a_clear_error(project):
    project.write("claude.yaml", """
        schema_version: 2
        id: needs-claude
        name: Claude
        agents: [{name: future-agent}]
        prompts: [go]
        tests: {application: [{name: t, script: "true"}]}
        limits: {max_time_seconds: 30}
    """)
    res = project.pytest("claude.yaml")
    assert res.returncode == 1
    assert "agent 'future-agent' is not available" in res.stdout
    s = summary(project.only_run(), "default")
    assert s["status"] == "error" and s["error"]["phase"] == "agent"
