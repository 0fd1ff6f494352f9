"""Interrupted runs lose nothing, leave no container and no index.json."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

SLOW = """
schema_version: 2
id: slow
name: Slow
agents: [{name: command, script: "echo working; sleep 60"}]
prompts: [{id: a, prompt: x}, {id: b, prompt: y}]
tests: {application: [{name: t, script: "true"}]}
limits: {max_time_seconds: 120}
"""


def _wait_for_agents(project, count: int, timeout: float = 60) -> None:
    """Until `count` agents run: their command (after the before_agent snapshot) has a
    capture file, written from the moment it starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(project.runs_dir.glob("*/results/*/commands/0002.stdout"))) >= count:
            return
        time.sleep(0.1)
    raise AssertionError("agents did not start")


def _containers_of(docker_client, run_id: str) -> list:
    return docker_client.containers.list(all=True, filters={"label": f"axp.run_id={run_id}"},
                                         sparse=True)


@pytest.mark.parametrize("sig, group", [
    (signal.SIGINT, False),   # kill -INT to axp alone
    (signal.SIGINT, True),    # Ctrl-C in a terminal: the whole process group, workers too
    (signal.SIGTERM, False),
], ids=["sigint", "ctrl-c-group", "sigterm"])
def test_signal_to_axp_keeps_artifacts_and_removes_containers(project, docker_client, sig,
                                                                group):
    project.write("slow.yaml", SLOW)
    proc = project.start("axp_cli", "local", "run", "slow.yaml", "--jobs", "2",
                         start_new_session=True)
    try:
        _wait_for_agents(project, 2)
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    run = project.only_run()
    lines = [x for x in err.splitlines() if "interrupted" in x]
    assert lines == [f"axp: interrupted; partial run kept in {run.root}"]
    assert not run.index.exists(), "an interrupted run is partial"
    for vid in ("a", "b"):
        res = run.results(vid)
        assert run.resolved_variant(vid).is_file() and res.layout.is_file()
        assert not res.run_summary.exists()
        assert (res.traces).is_dir()
    assert _containers_of(docker_client, run.run_id) == []
    listed = json.loads(project.axp("list", "--json").stdout)
    assert [r["status"] for r in listed] == ["partial"]


def test_crashed_worker_leaves_a_partial_run_and_no_container(project, docker_client):
    project.write("slow.yaml", SLOW.replace("sleep 60", "sleep 8"))
    proc = project.start("pytest", "slow.yaml", "-n", "2", "-p", "no:cacheprovider")
    try:
        _wait_for_agents(project, 2)
        run = project.only_run()
        victim = _containers_of(docker_client, run.run_id)[0]
        os.kill(int(victim.attrs["Labels"]["axp.owner_pid"]), signal.SIGKILL)  # a worker dies
        out, _err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "crashed" in out or "worker" in out
    assert not run.index.exists()
    assert _containers_of(docker_client, run.run_id) == []


def _records(res) -> list[dict]:
    if not res.commands_index.exists():
        return []
    return [json.loads(x) for x in res.commands_index.read_text().splitlines()]


@pytest.mark.parametrize("follow_ups", [1, 5], ids=["twice", "five-times"])
def test_repeated_interrupts_still_name_the_partial_run(project, docker_client, follow_ups):
    project.write("slow.yaml", SLOW)
    proc = project.start("axp_cli", "local", "run", "slow.yaml", start_new_session=True)
    try:
        _wait_for_agents(project, 1)
        proc.send_signal(signal.SIGINT)
        # Once the first interrupt has cut the agent's command short (its record is
        # written), more arrive while the run is being wound up.
        run = project.only_run()
        deadline = time.monotonic() + 60
        while not any(r["phase"] == "agent" for r in _records(run.results("a"))):
            assert time.monotonic() < deadline, "the interrupted agent got no record"
            time.sleep(0.05)
        for _ in range(follow_ups):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    lines = [x for x in err.splitlines() if "interrupted" in x]
    assert lines == [f"axp: interrupted; partial run kept in {run.root}"]
    res = run.results("a")
    records = _records(res)
    agent = next(r for r in records if r["phase"] == "agent")
    assert agent["extra"].get("interrupted") is True and agent["exit_code"] is None
    # Every command that left output files has its record.
    captured = {p.name.split(".")[0] for p in res.commands.iterdir()}
    assert captured == {r["id"] for r in records}
    assert not run.index.exists()
    assert _containers_of(docker_client, run.run_id) == []
