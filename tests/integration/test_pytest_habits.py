"""pytest's own options keep their meaning over experiments: -x, --co, --junitxml, headers;
and a variant with no tests says so."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

from .conftest import outcomes, summary

THREE = """
schema_version: 2
id: habits
name: Habits
agents: [{name: command, script: "true"}]
prompts:
  - {id: alpha, prompt: a}
  - {id: beta, prompt: b}
  - {id: gamma, prompt: c}
tests:
  application:
    - name: first-check
      script: 'echo first-out; echo first-err >&2; [ "$AXP_VARIANT_ID" != beta ]'
    - name: second-check
      script: 'echo second-err >&2; [ "$AXP_VARIANT_ID" != beta ]'
    - name: always
      script: 'true'
limits: {max_time_seconds: 30}
"""


def test_x_stops_at_the_first_failing_variant_and_resume_keeps_its_result(project):
    project.write("exp/habits.yaml", THREE)
    res = project.pytest("exp/habits.yaml", "-x", "-rA")
    assert res.returncode == 1, res.stdout + res.stderr
    # Two tests of beta failed, but one variant did: -x counts variants.
    assert "stopping after 1 failures" in res.stdout, res.stdout
    assert outcomes(res) == {"exp/habits.yaml::alpha": "PASSED",
                             "exp/habits.yaml::beta": "FAILED"}
    run = project.only_run()
    assert summary(run, "beta")["status"] == "fail"
    assert not run.results("gamma").run_summary.exists()
    beta_before = run.results("beta").run_summary.read_text()

    again = project.axp("local", "run", "--resume", run.run_id)
    assert again.returncode == 1, again.stdout + again.stderr  # the run holds beta's fail
    assert run.results("beta").run_summary.read_text() == beta_before, "beta ran again"
    assert not (run.results("beta").root / "attempts").exists()
    assert summary(run, "gamma")["status"] == "pass"
    assert run.index.is_file()


def test_collect_only_writes_nothing(project):
    project.write("habits.yaml", THREE)
    res = project.pytest("habits.yaml", "--co", "-q")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "habits.yaml::beta" in res.stdout
    assert not (project.root / ".axp").exists()


def test_junit_counts_its_testcases_and_failures_name_the_variant(project):
    project.write("exp/habits.yaml", THREE)
    res = project.pytest("exp/habits.yaml", "--junitxml=junit.xml")
    assert res.returncode == 1, res.stdout + res.stderr
    suite = ET.parse(project.root / "junit.xml").getroot().find("testsuite")
    cases = list(suite.iter("testcase"))
    assert len(cases) == 3
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    failed = {c.get("name"): list(c.iter("failure")) for c in cases}
    assert [len(failed[n]) for n in ("alpha", "beta", "gamma")] == [0, 1, 0]
    (failure,) = failed["beta"]
    assert "application/first-check, application/second-check" in failure.get("message")
    assert "application/always" not in failure.get("message")
    assert "first-err" in failure.text and "second-err" in failure.text
    props = {p.get("name"): p.get("value")
             for c in cases if c.get("name") == "beta" for p in c.iter("property")}
    assert props["axp.test.application/first-check"] == "fail"
    assert props["axp.test.application/always"] == "pass"
    assert props["axp.status"] == "fail"
    # The failure header names the experiment file and the variant, nothing else.
    headers = re.findall(r"^_+ (.+?) _+$", res.stdout, re.M)
    assert headers == ["exp/habits.yaml::beta"], res.stdout
    assert "1 failed, 2 passed" in res.stdout and "subtest" not in res.stdout


NO_TESTS = """
schema_version: 2
id: untested
name: Untested
agents: [{name: command, script: "echo done"}]
prompts: [go]
tests: {application: [], introspection: []}
limits: {max_time_seconds: 30}
"""


def test_a_variant_without_tests_says_so(project):
    project.write("untested.yaml", NO_TESTS)
    check = project.axp("experiment", "validate", "untested.yaml")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "no tests: variant(s) default" in check.stderr
    assert "the agent's exit only" in check.stderr

    res = project.pytest("untested.yaml", "-rA")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "default: no tests: status reflects the agent's exit only" in res.stdout
    s = summary(project.only_run(), "default")
    assert s["status"] == "pass" and s["tests"] == []
    assert s["notes"] == ["no tests: status reflects the agent's exit only"]


def test_a_variant_with_tests_carries_no_note(project):
    project.write("habits.yaml", THREE)
    check = project.axp("experiment", "validate", "habits.yaml")
    assert check.returncode == 0 and "no tests" not in check.stderr


SLOW_AGENT = """
schema_version: 2
id: vanishing
name: Vanishing sandbox
agents: [{name: command, script: "sleep 60"}]
prompts: [go]
tests: {application: [{name: never, script: "true"}]}
limits: {max_time_seconds: 120}
"""


def test_a_sandbox_removed_under_the_agent_is_an_infrastructure_error(project, docker_client):
    project.write("vanishing.yaml", SLOW_AGENT)
    proc = project.start("pytest", "-p", "no:randomly", "vanishing.yaml")
    try:
        run_id = None
        # Commands are logged as they end: after the before_agent snapshot, the agent's
        # turn has come (removed before or during its exec, the variant ends the same).
        for _ in range(600):
            runs = project.runs()
            log = runs[0].results("default").commands_index if runs else None
            if log is not None and log.is_file() and '"before_agent"' in log.read_text():
                run_id = runs[0].run_id
                break
            time.sleep(0.1)
        assert run_id, "the agent never started"
        for c in docker_client.containers.list(all=True, sparse=True,
                                               filters={"label": f"axp.run_id={run_id}"}):
            c.remove(force=True)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    s = summary(project.only_run(), "default")
    assert s["status"] == "error" and s["tests"] == []
    assert s["error"]["infrastructure"] is True
    # Which call notices first (the agent's exec or the snapshot after it) is the engine's
    # timing; either way the reason is said in one line.
    # (with "(exit N)" when the engine still gave an exit code, e.g. 126 mid-removal)
    line = rf"default: error: {s['error']['phase']} '{re.escape(s['error']['name'])}' failed"
    assert re.search(line + r"( \(exit \d+\))?: ", out), out
