"""axp local run --resume: only variants without a result or with `error` run again."""

from __future__ import annotations

import json

from .conftest import index, summary

EXPERIMENT = """
schema_version: 2
id: resumable
name: Resumable
agents: [{name: command, script: "echo hi > out.txt"}]
prompts: [go]
extensions:
  - id: steady
  - id: flaky
    environments:
      - name: needs-flag
        setup:
          - name: check
            script: "true"
            files: [{name: flag, source: flag.txt, dest: flag.txt}]
            setup_checks: [{name: flag-ready, script: "grep -q ready flag.txt"}]
  - id: lost
tests: {application: [{name: out, script: "test -f out.txt"}]}
limits: {max_time_seconds: 30}
"""


def test_resume_reruns_error_and_missing_into_the_same_run(project):
    project.write("resumable.yaml", EXPERIMENT)
    project.write("flag.txt", "not yet\n")
    first = project.axp("local", "run", "resumable.yaml")
    assert first.returncode == 1
    run = project.only_run()
    assert {v: summary(run, v)["status"] for v in ("steady", "flaky", "lost")} == {
        "steady": "pass", "flaky": "error", "lost": "pass"}
    # As if the run had been interrupted before `lost` finished.
    run.results("lost").run_summary.unlink()
    run.index.unlink()
    steady_before = run.results("steady").run_summary.read_text()

    project.write("flag.txt", "ready\n")
    again = project.axp("local", "run", "--resume", run.run_id)
    assert again.returncode == 0, again.stdout + again.stderr
    assert project.only_run().run_id == run.run_id, "same run folder"
    assert {v: summary(run, v)["status"] for v in ("steady", "flaky", "lost")} == {
        "steady": "pass", "flaky": "pass", "lost": "pass"}
    assert run.results("steady").run_summary.read_text() == steady_before
    assert not (run.results("steady").root / "attempts").exists()
    old = json.loads(
        (run.results("flaky").root / "attempts" / "1" / "run-summary.json").read_text()
    )
    assert old["status"] == "error" and old["error"]["name"] == "flag-ready"
    assert (run.results("flaky").root / "attempts" / "1" / "staging.json").is_file()
    assert (run.results("lost").root / "attempts" / "1" / "agent-raw.json").is_file()
    assert set(index(run)["variants"]) == {"steady", "flaky", "lost"}

    nothing = project.axp("local", "run", "--resume", run.run_id)
    assert nothing.returncode == 0 and "nothing to resume" in nothing.stdout
    missing = project.axp("local", "run", "--resume", "resumable-01JAAAAAAAAAAAAAAAAAAAAAAA")
    assert missing.returncode == 2 and "no such run" in missing.stderr


def _list_status(project, run_id: str) -> str:
    listed = project.axp("list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {r["run_id"]: r["status"] for r in json.loads(listed.stdout)}[run_id]


def test_resume_rebuilds_an_index_that_does_not_parse_or_does_not_match(project):
    project.write("resumable.yaml", EXPERIMENT)
    project.write("flag.txt", "ready\n")
    first = project.axp("local", "run", "resumable.yaml")
    assert first.returncode == 0, first.stdout + first.stderr
    run = project.only_run()
    good = index(run)
    assert _list_status(project, run.run_id) == "pass"

    statuses_disagree = json.dumps({**good, "variants": {
        **good["variants"], "flaky": {**good["variants"]["flaky"], "status": "error"}}})
    for broken in ("{corrupt", run.index.read_text()[:60], statuses_disagree):
        run.index.write_text(broken)
        assert _list_status(project, run.run_id) in ("partial", "error")
        again = project.axp("local", "run", "--resume", run.run_id)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "index.json does not match the results; rebuilding it" in again.stdout
        assert index(run) == good
        assert _list_status(project, run.run_id) == "pass"
    assert not any((run.results(v).root / "attempts").exists()
                   for v in ("steady", "flaky", "lost")), "nothing was run again"


def test_resume_with_a_corrupt_index_reruns_what_has_no_result(project):
    project.write("resumable.yaml", EXPERIMENT)
    project.write("flag.txt", "not yet\n")
    assert project.axp("local", "run", "resumable.yaml").returncode == 1
    run = project.only_run()
    run.index.write_text('{"variants": {"steady": {"status": "pa')
    project.write("flag.txt", "ready\n")
    again = project.axp("local", "run", "--resume", run.run_id)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {v: s["status"] for v, s in index(run)["variants"].items()} == {
        "steady": "pass", "flaky": "pass", "lost": "pass"}
    assert _list_status(project, run.run_id) == "pass"
    assert (run.results("flaky").root / "attempts" / "1" / "run-summary.json").is_file()
