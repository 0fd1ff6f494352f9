"""The library side of `axp local run`: the dry-run plan, input checks and resume (no Docker)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pytest_axp.experiment import load_and_resolve
from pytest_axp.plan import (
    PlanError,
    bind_files,
    dry_run_plan,
    secret_problems,
    source_problems,
    unset_secrets,
)
from pytest_axp.record.jsonio import write_json
from pytest_axp.record.layout import RunPaths
from pytest_axp.resume import (
    ResumeError,
    find_run,
    index_is_stale,
    recorded_source,
    repair_index,
    set_aside,
    variants_to_rerun,
)

EXPERIMENT = """\
schema_version: 2
id: exp
name: Experiment
tests: {}
limits: {}
agents: [claude]
prompts: [go]
secrets: [GOOD_TOKEN, SHORT_TOKEN, ABSENT_TOKEN]
files:
  - {source: present, dest: present}
  - {source: nowhere, dest: nowhere}
  - {source: linked, dest: linked}
  - {name: data, dest: data}
"""


@pytest.fixture
def experiment(tmp_path: Path):
    (tmp_path / "present").mkdir()
    (tmp_path / "present" / "a.txt").write_text("12345")
    (tmp_path / "present" / "b.txt").write_text("123")
    (tmp_path / "real").write_text("x")
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(EXPERIMENT))
    return load_and_resolve(path)


HOST_ENV = {"GOOD_TOKEN": "a-long-enough-value", "SHORT_TOKEN": "abc"}


def test_dry_run_plan_counts_sources_and_names_what_is_missing(experiment, tmp_path,
                                                               monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    plan = dry_run_plan(experiment, repeat=3, cwd=tmp_path, host_env=HOST_ENV)
    assert plan.experiment_id == "exp" and plan.sandbox_runs == 3 and plan.image is None
    rows = {r.dest: r for r in plan.staging}
    assert (rows["present"].state, rows["present"].files, rows["present"].size_bytes) \
        == ("OK", 2, 8)
    assert rows["nowhere"].state == "MISSING" and rows["nowhere"].files is None
    assert rows["data"].state == "UNBOUND" and rows["data"].source == ""
    assert rows["linked"].state == "SYMLINK"
    # a source through a symlink is invalid input, not merely missing
    assert len(plan.problems) == 1 and "linked" in plan.problems[0]
    assert "symlink" in plan.problems[0]
    assert {r.name: r.state for r in plan.secrets} == {
        "GOOD_TOKEN": "set", "SHORT_TOKEN": "too short", "ABSENT_TOKEN": "missing"}
    assert plan.missing == [f"file {tmp_path / 'nowhere'}", "file data", "secret ABSENT_TOKEN",
                            "secret SHORT_TOKEN (too short)", "model for agent claude (no "
                            "ANTHROPIC_API_KEY and no --model-script)"]
    assert [(r.agent, r.api, r.state) for r in plan.models] == [
        ("claude", "anthropic-messages", "none")]
    # the values themselves are nowhere in the plan
    assert "a-long-enough-value" not in repr(plan)


def test_dry_run_plan_with_everything_bound(experiment, tmp_path):
    (tmp_path / "nowhere").write_text("now here")
    (tmp_path / "linked").unlink()
    (tmp_path / "linked").write_text("plain")
    (tmp_path / "data.csv").write_text("1,2\n")
    bindings = bind_files(["data=data.csv"], tmp_path, experiment)
    env = dict(HOST_ENV, SHORT_TOKEN="long enough now", ABSENT_TOKEN="present now")
    plan = dry_run_plan(experiment, bindings=bindings, cwd=tmp_path, host_env=env,
                        image="custom:1", scripted=True)
    assert plan.problems == [] and plan.missing == [] and plan.image == "custom:1"
    assert {r.dest: r.state for r in plan.staging} == {
        "present": "OK", "nowhere": "OK", "linked": "OK", "data": "OK"}
    assert {r.dest: r.source for r in plan.staging}["data"] == str(tmp_path / "data.csv")


def test_a_bad_env_file_is_a_problem_of_the_plan(experiment, tmp_path):
    bad = tmp_path / "bad.env"
    bad.write_text("not a binding\n")
    plan = dry_run_plan(experiment, cwd=tmp_path, env_files=[bad], host_env=HOST_ENV)
    assert any(str(bad) in p and "NAME=VALUE" in p for p in plan.problems)


def test_source_problems_say_each_problem_once(experiment, tmp_path):
    problems = source_problems(experiment)
    assert len(problems) == 3
    assert "nowhere does not exist" in problems[0] and str(tmp_path / "nowhere") in problems[0]
    assert "symlink" in problems[1]
    assert "slot 'data' has no source" in problems[2] and "--file data=PATH" in problems[2]
    # validation binds slots later; the rest still stands
    assert len(source_problems(experiment, slots_bound_later=True)) == 2
    bound = bind_files(["data=missing.csv"], tmp_path, experiment)
    assert f"--file data=...: {tmp_path / 'missing.csv'} does not exist" in \
        source_problems(experiment, bound)


def test_bind_files_refuses_unknown_names_and_bad_forms(experiment, tmp_path):
    with pytest.raises(PlanError, match=r"no file entry is named 'nope' \(named entries: data\)"):
        bind_files(["nope=x"], tmp_path, experiment)
    with pytest.raises(PlanError, match="expected NAME=PATH or HOSTPATH::DEST"):
        bind_files(["just-a-word"], tmp_path, experiment)


def test_secret_checks(experiment, tmp_path):
    problems = secret_problems(experiment, tmp_path, host_env=HOST_ENV)
    assert len(problems) == 1 and "SHORT_TOKEN" in problems[0] and "abc" not in problems[0]
    assert unset_secrets(experiment, tmp_path, host_env=HOST_ENV) == ["ABSENT_TOKEN"]
    assert secret_problems(experiment, tmp_path, env_args=["SHORT_TOKEN=long-enough-1"],
                           host_env=HOST_ENV) == []


# -- resume ---------------------------------------------------------------------------------

ULID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


def _run(tmp_path: Path, statuses: dict[str, str | None]) -> RunPaths:
    run = RunPaths(tmp_path / "runs" / f"exp-{ULID}")
    for vid, status in statuses.items():
        vdir = run.resolved_variant(vid).parent
        vdir.mkdir(parents=True, exist_ok=True)
        run.resolved_variant(vid).write_text(f"id: {vid}\nsource_file: /src/exp.yaml\n")
        if status is not None:
            run.results(vid).root.mkdir(parents=True, exist_ok=True)
            write_json(run.results(vid).run_summary, {"status": status, "variant_id": vid})
    return run


def test_resume_selects_variants_without_a_result_or_with_an_error(tmp_path):
    run = _run(tmp_path, {"a": "pass", "b": "fail", "c": "timeout", "d": "error", "e": None})
    target = find_run(tmp_path / "runs", run.run_id)
    assert target.ulid == ULID and target.selected == ["a", "b", "c", "d", "e"]
    assert variants_to_rerun(run, target.selected) == ["d", "e"]
    assert recorded_source(run, "a") == "/src/exp.yaml"


def test_resume_of_an_unknown_run(tmp_path):
    with pytest.raises(ResumeError, match="no such run under"):
        find_run(tmp_path, f"exp-{ULID}")
    with pytest.raises(ResumeError):
        find_run(tmp_path, "not-a-run-id")


def test_recorded_source_unreadable(tmp_path):
    run = _run(tmp_path, {"a": "pass"})
    run.resolved_variant("a").write_text(":\n- not a mapping")
    assert recorded_source(run, "a") is None


def test_set_aside_archives_the_last_attempt_and_drops_the_index(tmp_path):
    run = _run(tmp_path, {"a": "pass", "d": "error"})
    write_json(run.index, {"run_id": run.run_id, "variants": {}})
    set_aside(run, ["d"])
    assert not run.index.exists()
    assert not run.results("d").run_summary.exists()
    archived = run.results("d").root / "attempts" / "1" / "run-summary.json"
    assert json.loads(archived.read_text())["status"] == "error"
    assert run.results("a").run_summary.exists()


def test_index_repair_rebuilds_a_wrong_index_from_the_summaries(tmp_path):
    run = _run(tmp_path, {"a": "pass", "b": "fail"})
    assert not index_is_stale(run)  # no index at all is not a stale one
    run.index.write_text("{not json")
    assert index_is_stale(run)
    assert repair_index(run)
    index = json.loads(run.index.read_text())
    assert sorted(index["variants"]) == ["a", "b"]
    assert not index_is_stale(run) and not repair_index(run)  # a matching index is left
