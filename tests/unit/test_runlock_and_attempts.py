"""One writer per run (flock), and how attempts and model API failures are recorded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pytest_axp.record.attempts import archive_attempt, archived_entries, attempt_entry
from pytest_axp.record.layout import RunPaths
from pytest_axp.record.summary import AgentOutcome, agent_failure
from pytest_axp.runlock import RunBusy, acquire, lock_path, release

ULID = "01JABCDEFGHJKMNPQRSTVWXYZ0"

HOLDER = """
import sys, time
from pathlib import Path
from pytest_axp.runlock import acquire
acquire(Path(sys.argv[1]), sys.argv[2], "exp-" + sys.argv[2])
print("held", flush=True)
sys.stdin.readline()
"""


def _holder(runs_dir):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(runs_dir), ULID],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(RunBusy) as info:
            acquire(tmp_path, ULID, f"exp-{ULID}")
        assert info.value.pid == proc.pid
        assert str(info.value) == (f"run exp-{ULID} is being written by process {proc.pid}; "
                                   "wait for it to end (or stop it) and try again")
    finally:
        proc.stdin.close()
        proc.wait()
    acquire(tmp_path, ULID)  # released when the holder ended
    release(tmp_path, ULID)
    assert not lock_path(tmp_path, ULID).exists(), "no lock file is left behind"


def test_a_dead_holders_lock_does_not_block(tmp_path):
    proc = _holder(tmp_path)
    proc.kill()
    proc.wait()
    assert lock_path(tmp_path, ULID).exists(), "a killed holder leaves its file"
    acquire(tmp_path, ULID)
    release(tmp_path, ULID)


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    acquire(tmp_path, ULID)
    acquire(tmp_path, ULID)
    release(tmp_path, ULID)
    assert lock_path(tmp_path, ULID).exists(), "still held once"
    proc = subprocess.run([sys.executable, "-c", HOLDER, str(tmp_path), ULID],
                          check=False, capture_output=True, text=True, input="")
    assert "RunBusy" in proc.stderr
    release(tmp_path, ULID)
    assert not lock_path(tmp_path, ULID).exists()


@pytest.mark.parametrize("status, infrastructure", [
    (503, True), (529, True), (429, True), (500, True), (400, False), (401, False),
    (402, False), (None, False),
])
def test_model_api_failures_are_infrastructure(status, infrastructure):
    failure = agent_failure(AgentOutcome(name="claude", exit_code=1, api_error_status=status))
    assert (failure is not None and failure.infrastructure) == infrastructure
    if infrastructure:
        assert failure.phase == "model_api"


def test_archive_keeps_every_attempt_and_lists_its_reason(tmp_path):
    run = RunPaths(tmp_path / f"exp-{ULID}")
    for n in (1, 2):
        res = run.results("v")
        res.root.mkdir(parents=True, exist_ok=True)
        res.run_summary.write_text(json.dumps({
            "status": "error", "error": {"phase": "model_api", "name": "claude",
                                         "message": f"try {n}", "infrastructure": True}}))
        (res.root / "agent.log").write_text(f"log {n}")
        run.staging("v").parent.mkdir(parents=True, exist_ok=True)
        run.staging("v").write_text("[]")
        assert archive_attempt(run, "v") == res.root / "attempts" / str(n)
    assert (run.results("v").root / "attempts" / "2" / "agent.log").read_text() == "log 2"
    assert (run.results("v").root / "attempts" / "1" / "staging.json").is_file()
    assert [p.name for p in run.results("v").root.iterdir()] == ["attempts"]
    assert archived_entries(run.results("v").root) == [
        {"n": n, "status": "error", "reason": f"model_api 'claude': try {n}",
         "infrastructure": True, "path": f"attempts/{n}/"} for n in (1, 2)]
    assert attempt_entry(3, {"status": "pass"}, archived=False) == {
        "n": 3, "status": "pass", "reason": None, "infrastructure": False, "path": "."}
