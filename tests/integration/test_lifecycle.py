"""The agent step ends with its processes, timeouts are options, failures of our own
(a lost exit code, a failed snapshot) are recorded as ours."""

from __future__ import annotations

import json
import uuid

import pytest

from pytest_axp.record.commands import CommandLog
from pytest_axp.record.layout import VariantPaths
from pytest_axp.sandbox import docker as docker_backend
from pytest_axp.sandbox.base import ExitCodeLost

from .conftest import summary

BACKGROUND = """
schema_version: 2
id: background
name: Background writer
agents:
  - name: command
    script: |
      (while true; do date >> bg.txt; sleep 0.2; done) &
      (trap '' TERM; while true; do sleep 1; done) &
      sleep 0.5
      echo left two behind
prompts: [{id: p, prompt: x}]
tests:
  application:
    - name: nothing-writes
      script: |
        before=$(wc -l < bg.txt)
        sleep 1.5
        after=$(wc -l < bg.txt)
        echo "$before $after"
        [ "$before" -gt 0 ] && [ "$before" = "$after" ]
limits: {max_time_seconds: 60}
"""


def test_agent_processes_are_stopped_before_the_tests(project):
    project.write("bg.yaml", BACKGROUND)
    res = project.pytest("bg.yaml", "-rA")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    s = summary(run, "default")
    assert s["status"] == "pass", s
    # The writer, its sleep, and the one that ignores TERM (stopped by KILL).
    assert s["agent"]["processes_stopped"] >= 2
    out = run.results("default")
    records = [json.loads(x) for x in out.commands_index.read_text().splitlines()]
    names = [(r["phase"], r["name"]) for r in records]
    assert names.index(("agent", "stop-processes")) < names.index(("snapshot", "after_agent"))


HANGING = """
schema_version: 2
id: hanging
name: Hanging
agents: [{name: command, script: "echo hi > out.txt"}]
prompts: [{id: p, prompt: x}]
tests:
  application:
    - name: hangs
      script: "echo begun; sleep 300"
    - name: quick
      script: "test -f out.txt"
limits: {max_time_seconds: 60}
"""


def test_a_hanging_test_times_out_and_fails_with_its_logs(project):
    project.write("hang.yaml", HANGING)
    res = project.pytest("hang.yaml", "-rA", "-o", "axp_test_timeout=1")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "timed out after 1 s" in res.stdout
    s = summary(project.only_run(), "default")
    assert s["status"] == "fail"
    hangs, quick = s["tests"]
    assert hangs["status"] == "fail" and hangs["timed_out"] is True
    assert hangs["reason"] == "timed out after 1 s"
    assert hangs["stdout_tail"] == "begun\n"
    assert quick["status"] == "pass" and quick["timed_out"] is False


SLOW_SETUP = """
schema_version: 2
id: slowsetup
name: Slow setup
environments:
  - name: slow
    setup: "echo setting up; sleep 300"
agents: [{name: command, script: "true"}]
prompts: [{id: p, prompt: x}]
tests: {application: [{name: t, script: "true"}]}
limits: {max_time_seconds: 60}
"""


def test_a_hanging_setup_step_ends_the_variant_as_an_error(project):
    project.write("slow.yaml", SLOW_SETUP)
    res = project.axp("local", "run", "slow.yaml", "--setup-timeout", "1")
    assert res.returncode == 1, res.stdout + res.stderr
    s = summary(project.only_run(), "default")
    assert s["status"] == "error"
    assert s["error"]["phase"] == "setup"
    assert s["error"]["message"] == "timed out after 1 s"
    assert s["error"]["stdout_tail"] == "setting up\n"
    assert s["error"]["infrastructure"] is False
    assert s["tests"] == []


@pytest.mark.parametrize("argv, said", [
    (["--test-timeout", "0"], "--test-timeout 0: give a positive number of seconds"),
    (["--setup-timeout", "-3"], "--setup-timeout -3: give a positive number of seconds"),
])
def test_a_timeout_that_is_not_positive_is_refused(project, argv, said):
    project.write("slow.yaml", SLOW_SETUP)
    res = project.axp("local", "run", "slow.yaml", *argv)
    assert res.returncode == 2
    assert res.stderr.strip() == f"axp: {said}"
    assert not project.runs()


def test_a_timeout_option_that_is_not_a_number_is_a_usage_error(project):
    project.write("slow.yaml", SLOW_SETUP)
    res = project.pytest("slow.yaml", "--axp-test-timeout", "soon")
    assert res.returncode == 4, res.stdout + res.stderr
    assert "--axp-test-timeout: 'soon' is not a positive number of seconds" in res.stderr


BROKEN_FIND = """
schema_version: 2
id: brokenfind
name: A listing that fails at one point
environments:
  - name: flaky-find
    setup: |
      mv /usr/bin/find /usr/bin/find.real
      cat > /usr/bin/find <<'SH'
      #!/bin/sh
      [ -e /workspace/break-find ] && exit 3
      exec /usr/bin/find.real "$@"
      SH
      chmod 755 /usr/bin/find
agents: [{name: command, script: "echo made > made.txt; touch break-find"}]
prompts: [{id: p, prompt: x}]
tests:
  application: [{name: unbreak, script: "rm break-find && test -f made.txt"}]
limits: {max_time_seconds: 60}
"""


def test_a_failed_snapshot_is_recorded_and_the_run_goes_on(project):
    project.write("find.yaml", BROKEN_FIND)
    res = project.pytest("find.yaml", "-rA")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    assert summary(run, "default")["status"] == "pass"
    out = run.results("default")
    points = [json.loads((out.fs_diff / f"{n}.json").read_text()) for n in (1, 2, 3)]
    assert [p["point"] for p in points] == ["before_agent", "after_agent", "after_tests"]
    assert "error" not in points[0] and "error" not in points[2]
    assert points[1]["error"] == "listing exited 3"
    # The next point diffs against the last one that worked.
    assert points[2]["previous_point"] == "before_agent"
    assert {c["path"]: c["change"] for c in points[2]["changes"]} == {"made.txt": "added"}
    notes = json.loads(out.layout.read_text())["notes"]
    assert notes == [{"kind": "snapshot_failed", "fs_diff": "fs-diff/2.json",
                      "point": "after_agent", "error": "listing exited 3"}]


# -- exit codes -----------------------------------------------------------------------------

@pytest.fixture
def sandbox(tmp_path, docker_client):
    from pytest_axp.sandbox.docker_image import ensure_image

    image = ensure_image(None, tmp_path)
    box = docker_backend.DockerSandbox.create(
        image=image, labels={"axp.test": f"lifecycle-{uuid.uuid4().hex[:8]}"},
        commands=CommandLog(VariantPaths(tmp_path / "results")))
    yield box
    box.remove()


def _records(box) -> list[dict]:
    return [json.loads(x) for x in box.commands.paths.commands_index.read_text().splitlines()]


def test_every_exit_code_is_the_commands_own(sandbox):
    codes = [0, 1, 7, 42, 255, 3, 0, 126]
    got = [sandbox.exec(f"exit {c}", phase="probe", name=str(c)).exit_code for c in codes]
    assert got == codes
    assert [r["exit_code"] for r in _records(sandbox)] == codes


class _EngineThatNeverSays:
    """The engine API, except that an exec is reported as still running forever."""

    def __init__(self, api) -> None:
        self._api = api

    def __getattr__(self, name: str):
        return getattr(self._api, name)

    def exec_inspect(self, exec_id: str) -> dict:
        return {"Running": True, "ExitCode": None}


def test_a_lost_exit_code_is_raised_and_recorded(sandbox, monkeypatch):
    monkeypatch.setattr(docker_backend, "_EXIT_CODE_WAIT", 0.3)
    monkeypatch.setattr(sandbox, "_api", _EngineThatNeverSays(sandbox._api))
    with pytest.raises(ExitCodeLost, match="did not report its exit code"):
        sandbox.exec("echo ran", phase="probe", name="lost")
    (record,) = _records(sandbox)
    assert record["exit_code"] is None and record["extra"]["error"] == "exit code lost"
    assert (sandbox.commands.paths.root / record["stdout_path"]).read_text() == "ran\n"


# A conftest for the pytest run under test: the engine never reports the exit code of the
# commands with this phase (and name, when given).
LOSES_EXIT_CODE = """
import pytest_axp.sandbox.docker as backend

LOSE = LOSE_TARGET

backend._EXIT_CODE_WAIT = 0.3
_exec = backend.DockerSandbox.exec


class _NeverSays:
    def __init__(self, api):
        self._api = api

    def __getattr__(self, name):
        return getattr(self._api, name)

    def exec_inspect(self, exec_id):
        return {"Running": True, "ExitCode": None}


def exec(self, script, *, phase, name, **kw):
    if phase != LOSE[0] or LOSE[1] not in (None, name):
        return _exec(self, script, phase=phase, name=name, **kw)
    api, self._api = self._api, _NeverSays(self._api)
    try:
        return _exec(self, script, phase=phase, name=name, **kw)
    finally:
        self._api = api


backend.DockerSandbox.exec = exec
"""


def _losing(target: tuple[str, str | None]) -> str:
    return LOSES_EXIT_CODE.replace("LOSE_TARGET", repr(target))


def test_a_lost_exit_code_in_a_test_is_an_infrastructure_error_not_a_failure(project):
    project.write("conftest.py", _losing(("test", None)))
    project.write("bg.yaml", HANGING.replace("echo begun; sleep 300", "true"))
    res = project.pytest("bg.yaml", "-rA")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "did not report its exit code" in res.stdout
    s = summary(project.only_run(), "default")
    assert s["status"] == "error"
    assert s["error"]["phase"] == "test" and s["error"]["name"] == "application/hangs"
    assert s["error"]["infrastructure"] is True
    assert s["tests"] == [], "no test is counted as failed, and none after it ran"


def test_a_lost_exit_code_in_a_snapshot_is_that_snapshots_error(project):
    project.write("conftest.py", _losing(("snapshot", "after_agent")))
    project.write("ok.yaml", HANGING.replace("echo begun; sleep 300", "true"))
    res = project.pytest("ok.yaml", "-rA")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    assert summary(run, "default")["status"] == "pass"  # capture is best effort (seed 004)
    out = run.results("default")
    failed = json.loads((out.fs_diff / "2.json").read_text())
    assert failed["point"] == "after_agent" and "did not report its exit code" in failed["error"]
    (note,) = json.loads(out.layout.read_text())["notes"]
    assert note["point"] == "after_agent" and note["error"] == failed["error"]
