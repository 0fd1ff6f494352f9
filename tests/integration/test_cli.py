"""The `axp` command: one-line errors with exit 2, dry runs that write nothing, listing."""

from __future__ import annotations

import json

import pytest

from .conftest import container_names

GOOD = """
schema_version: 2
id: tiny
name: Tiny
agents: [{name: command, script: "echo hi > out.txt"}]
prompts: [{id: one, prompt: go}, {id: two, prompt: go again}]
tests:
  application:
    - name: out
      script: test -f out.txt
limits: {max_time_seconds: 30}
"""

BAD = {
    "misspelt": ("""\
schema_version: 2
id: bad
name: Bad
agents:
  - name: command
    modle: x
prompts: [go]
tests: {}
limits: {}
""", "bad.yaml:6:5: agents[0].modle: unknown field (did you mean 'model'?)"),
    "wrong-type": ("""\
schema_version: 2
id: bad
name: Bad
agents: [{name: command, script: "true"}]
prompts: [go]
tests: {}
limits:
  max_turns: lots
""", "bad.yaml:8:14: limits.max_turns:"),
    "escaping-dest": ("""\
schema_version: 2
id: bad
name: Bad
agents: [{name: command, script: "true"}]
prompts: [go]
files:
  - source: .
    dest: ../../etc
tests: {}
limits: {}
""", "bad.yaml:8:11: files[0].dest: dest escapes /workspace"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_experiment_is_one_line_and_exit_2(project, case):
    text, expected = BAD[case]
    project.write("bad.yaml", text)
    for argv in (("local", "run", "bad.yaml"), ("experiment", "validate", "bad.yaml")):
        res = project.axp(*argv)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        assert expected in lines[0]
        assert "Traceback" not in res.stderr
    assert not project.runs_dir.exists(), "nothing is written for invalid input"


def test_collection_error_names_the_problem(project):
    project.write("bad.yaml", BAD["misspelt"][0])
    res = project.pytest("bad.yaml")
    assert res.returncode == 2
    assert "bad.yaml:6:5: agents[0].modle: unknown field (did you mean 'model'?)" in res.stdout
    assert "Traceback" not in res.stdout


def test_unknown_variant_and_missing_file(project):
    project.write("tiny.yaml", GOOD)
    res = project.axp("local", "run", "tiny.yaml", "--variant", "three")
    assert res.returncode == 2
    assert "unknown variant id(s) three; this experiment has: one, two" in res.stderr
    res = project.axp("local", "run", "nope.yaml")
    assert res.returncode == 2 and "nope.yaml: no such file" in res.stderr


def test_dry_run_writes_nothing(project):
    project.write("tiny.yaml", GOOD)
    res = project.axp("local", "run", "tiny.yaml", "--dry-run", "--repeat", "3")
    assert res.returncode == 0, res.stderr
    assert "2 variant(s) x 3 repeat(s) = 6 sandbox run(s)" in res.stdout
    assert "one" in res.stdout and "two" in res.stdout
    assert not (project.root / ".axp").exists()


def test_resolve_and_schema(project):
    project.write("tiny.yaml", GOOD)
    res = project.axp("experiment", "resolve", "tiny.yaml", "--json")
    assert res.returncode == 0
    variants = json.loads(res.stdout)
    assert [v["id"] for v in variants] == ["one", "two"]
    assert all(len(v["fingerprint"]) == 64 for v in variants)
    table = project.axp("experiment", "resolve", "tiny.yaml").stdout
    assert table.splitlines()[0].split() == ["variant", "tags", "agent", "model", "prompt",
                                             "environment", "product", "fingerprint"]
    schema = json.loads(project.axp("experiment", "schema").stdout)
    assert "schema_version" in json.dumps(schema)


def test_run_then_list(project):
    project.write("tiny.yaml", GOOD)
    res = project.axp("local", "run", "tiny.yaml", "--variant", "two", "--jobs", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    assert run.selected_variants() == ["two"], "only selected variants are written"
    assert not (run.root / "results" / "one").exists()
    listed = json.loads(project.axp("list", "--json").stdout)
    assert [(r["run_id"], r["status"], r["type"]) for r in listed] == [
        (run.run_id, "pass", "local")]
    assert listed[0]["variants"] == {"two": "pass"}
    # An unfinished run shows as partial, and the alias answers the same.
    run.index.unlink()
    rows = project.axp("runs", "list", "--local").stdout.splitlines()
    assert rows[0].split()[:3] == ["run", "id", "experiment"]
    assert run.run_id in rows[2] and "partial" in rows[2]
    assert project.axp("list", "--status", "pass", "--json").stdout.strip() == "[]"
    remote = project.axp("list", "--remote")
    assert remote.returncode == 2 and "not signed in to an axp server" in remote.stderr


def test_missing_secret_fails_before_any_container(project, docker_client):
    project.write("secret.yaml", """
        schema_version: 2
        id: needs-secret
        name: Needs a secret
        agents: [{name: command, script: "true"}]
        prompts: [go]
        secrets: [AXP_TEST_SECRET_THAT_IS_NOT_SET]
        tests: {}
        limits: {max_time_seconds: 30}
    """)
    res = project.axp("local", "run", "secret.yaml", "--jobs", "2")
    assert res.returncode == 1
    run = project.only_run()
    s = json.loads(run.results("default").run_summary.read_text())
    assert s["status"] == "error" and s["error"]["phase"] == "secrets"
    assert "AXP_TEST_SECRET_THAT_IS_NOT_SET" in s["error"]["message"]
    assert not run.results("default").commands_index.exists()
    names = container_names(docker_client)
    assert not any(run.run_id in n for n in names), "a sandbox was created for it"
