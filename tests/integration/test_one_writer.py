"""One run folder has one writer: a second `--resume` (or a pytest naming the same run id)
is refused while the first runs, and the first is not disturbed."""

from __future__ import annotations

import json
import re
import time

from pytest_axp.runs import split_run_id
from pytest_axp.sandbox.base import LABEL_RUN_ID

from .conftest import summary

EXPERIMENT = """
schema_version: 2
id: one-writer
name: One writer
# Waits until the test lets it go, so the second writer surely meets the first.
agents: [{name: command, script: "while [ ! -f /tmp/go ]; do sleep 0.1; done; echo hi > out.txt"}]
prompts: [go]
extensions:
  - id: gated
    environments:
      - name: needs-flag
        setup:
          - name: check
            script: "true"
            files: [{name: flag, source: flag.txt, dest: flag.txt}]
            setup_checks: [{name: flag-ready, script: "grep -q ready flag.txt"}]
tests: {application: [{name: out, script: "test -f out.txt"}]}
limits: {max_time_seconds: 240}
"""


def _setup_done(run, first) -> None:
    """Wait until the resumed attempt's setup check has run (the first attempt's moved to
    attempts/1/ under the lock): the agent, which waits for us, is next."""
    index = run.results("gated").commands_index
    archived = run.results("gated").root / "attempts" / "1"
    while True:
        if (
            archived.is_dir()
            and index.is_file()
            and any(
                json.loads(line).get("phase") == "setup_check"
                for line in index.read_text().splitlines()
            )
        ):
            return
        if first.poll() is not None:
            out, err = first.communicate()
            raise AssertionError(f"the first resume ended early: {out}{err}")
        time.sleep(0.2)


def test_a_second_writer_of_a_run_is_refused(project, docker_client):
    project.write("exp.yaml", EXPERIMENT)
    project.write("flag.txt", "not yet\n")
    assert project.axp("local", "run", "exp.yaml").returncode == 1
    run = project.only_run()
    _, ulid = split_run_id(run.run_id)
    project.write("flag.txt", "ready\n")

    first = project.start("axp_cli", "local", "run", "--resume", run.run_id)
    try:
        _setup_done(run, first)

        second = project.axp("local", "run", "--resume", run.run_id)
        assert second.returncode == 4, second.stdout + second.stderr
        assert second.stderr.strip().splitlines() == [(
            f"axp: run {run.run_id} is being written by process {first.pid}; "
            "wait for it to end (or stop it) and try again")]
        by_pytest = project.pytest("exp.yaml", "--axp-run-ulids", ulid)
        assert by_pytest.returncode == 4, by_pytest.stdout + by_pytest.stderr
        assert f"run {run.run_id} is being written by process {first.pid}" in by_pytest.stderr

        for container in docker_client.containers.list(
                filters={"label": f"{LABEL_RUN_ID}={run.run_id}"}):
            container.exec_run(["touch", "/tmp/go"])
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, out + err
    assert summary(run, "gated")["status"] == "pass"
    records = [json.loads(line) for line in
               run.results("gated").commands_index.read_text().splitlines()]
    ids = [r["id"] for r in records]
    assert ids and len(ids) == len(set(ids)), "one writer: every command id once"
    assert not list(project.runs_dir.glob(".*.lock")), "the lock goes with its holder"
    # The sandbox created ahead for the resumed attempt (attempt 2) was the one it used.
    spans = "".join(p.read_text() for p in run.results("gated").traces.glob("*.otlp.json"))
    ahead = re.findall(r'"axp\.created_ahead",\s*"value":\s*\{\s*"boolValue":\s*(\w+)', spans)
    assert ahead == ["true"]
