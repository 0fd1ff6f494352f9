"""`axp` messages a new user meets: unknown agents, missing secrets and files, folders,
the engine address, "no runs", report files, narrow terminals, runs in another folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pexpect

PASSING = """
schema_version: 2
id: {id}
name: Passing
agents: [{{name: command, script: "echo hi > out.txt"}}]
prompts: [go]
tests: {{application: [{{name: out, script: test -f out.txt}}]}}
limits: {{max_time_seconds: 60}}
"""

UNKNOWN_AGENT = """
schema_version: 2
id: codex
name: Codex
agents: [{name: codex}]
prompts: [go]
tests: {application: [{name: t, script: "true"}]}
limits: {max_time_seconds: 30}
"""

SECRETS = """
schema_version: 2
id: sec
name: Secrets
agents: [{name: command, script: "true"}]
prompts: [go]
secrets: [I13_UNSET_TOKEN, I13_UNSET_KEY]
tests: {}
limits: {max_time_seconds: 30}
"""

SLOT = """
schema_version: 2
id: slot
name: Slot
agents: [{name: command, script: "true"}]
prompts: [go]
files: [{name: data, dest: data}]
tests: {}
limits: {max_time_seconds: 30}
"""


def _one_line(res: subprocess.CompletedProcess) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def test_unknown_agent_is_found_before_anything_runs(project):
    project.write("codex.yaml", UNKNOWN_AGENT)
    for argv in (("experiment", "validate", "codex.yaml"),
                 ("local", "run", "codex.yaml", "--dry-run"), ("local", "run", "codex.yaml")):
        res = project.axp(*argv)
        assert res.returncode == 2, (argv, res.stdout, res.stderr)
        line = _one_line(res)
        assert "variant default: agent 'codex' is not available (known: command, claude, " \
            in line, line
    assert not project.runs_dir.exists()


def test_missing_secret_is_a_note_for_validate_and_a_failure_for_dry_run(project):
    project.write("sec.yaml", SECRETS)
    res = project.axp("experiment", "validate", "sec.yaml")
    assert res.returncode == 0, res.stderr
    assert "note: no value here for secret(s) I13_UNSET_TOKEN, I13_UNSET_KEY" in res.stdout
    res = project.axp("local", "run", "sec.yaml", "--dry-run")
    assert res.returncode == 1, res.stderr
    assert res.stdout.strip().splitlines()[-1] == (
        "dry run: nothing was written; missing: secret I13_UNSET_TOKEN, secret I13_UNSET_KEY")
    assert not project.runs_dir.exists()


def test_file_binding_to_a_missing_path_names_the_path(project):
    project.write("slot.yaml", SLOT)
    res = project.axp("local", "run", "slot.yaml", "--file", "data=./nonexistent")
    assert res.returncode == 2
    assert _one_line(res) == f"axp: --file data=...: {project.root / 'nonexistent'} does not exist"
    res = project.axp("local", "run", "slot.yaml", "--file", "data=.", "--file", "gone::x")
    assert res.returncode == 2
    assert _one_line(res) == (f"axp: --file {project.root / 'gone'}::x: "
                              f"{project.root / 'gone'} does not exist")


def test_a_folder_runs_each_experiment_file_in_it(project):
    project.write("exps/one.yaml", PASSING.format(id="one"))
    project.write("exps/more/two.yml", PASSING.format(id="two"))
    project.write("exps/notes.yaml", "just: data\n")
    project.write("empty/readme.md", "nothing\n")
    res = project.axp("local", "run", "exps/")
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted(r.run_id.split("-")[0] for r in project.runs()) == ["one", "two"]
    assert res.stdout.count("run folder: ") == 2
    assert res.stdout.count("total: 1 variant: 1 pass;") == 2
    res = project.axp("local", "run", "empty")
    assert res.returncode == 2
    assert _one_line(res).startswith("axp: empty: a folder with no experiment files in it")


def test_bad_docker_host_shows_the_value_tried(project):
    project.write("one.yaml", PASSING.format(id="one"))
    env = project.env()
    for host in ("tcp://127.0.0.1:1", "not-an-address"):
        env["DOCKER_HOST"] = host
        for argv in (("local", "run", "one.yaml"), ("sandbox", "clean")):
            res = subprocess.run([sys.executable, "-m", "axp_cli", *argv], cwd=project.root,
                                 env=env, capture_output=True, text=True, timeout=120, check=False)
            assert res.returncode == 3, res.stderr
            line = _one_line(res)
            assert line.startswith(f"axp: cannot reach the Docker engine at DOCKER_HOST={host}: ")
    assert not project.runs_dir.exists()


def test_read_commands_agree_on_no_runs_and_find_runs_elsewhere(project):
    elsewhere = project.root / "elsewhere"
    elsewhere.mkdir()

    def axp(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "axp_cli", *args], cwd=elsewhere,
                              env=project.env(), capture_output=True, text=True, timeout=300,
                              check=False)

    reads = (("list",), ("runs", "list"), ("results",), ("report",),
             ("local", "query", "all", "SELECT 1"))
    looked_in = elsewhere / ".axp" / "runs"
    for argv in reads:
        res = axp(*argv)
        assert res.returncode == 1, (argv, res.stderr)
        assert f"under {looked_in} (no such folder); runs made elsewhere: --runs-dir" \
            in _one_line(res), argv
    assert not (elsewhere / "report.html").exists()

    project.write("one.yaml", PASSING.format(id="one"))
    assert project.axp("local", "run", "one.yaml").returncode == 0
    run_id = project.only_run().run_id
    runs_dir = str(project.runs_dir)
    listed = json.loads(axp("list", "--json", "--runs-dir", runs_dir).stdout)
    assert [r["run_id"] for r in listed] == [run_id]
    assert axp("runs", "list", "--runs-dir", runs_dir).stdout.count(run_id) == 1
    res = axp("local", "query", run_id, "SELECT status FROM runs", "--json", "--runs-dir",
              runs_dir)
    assert json.loads(res.stdout) == [{"status": "pass"}], res.stderr
    res = axp("results", "--runs-dir", runs_dir, "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["variants"], res.stderr
    res = axp("list", "--status", "fail", "--runs-dir", runs_dir)
    assert res.returncode == 1 and f"no fail runs under {project.runs_dir};" in res.stderr

    # `axp report` keeps an existing file unless told --force.
    res = axp("report", "--runs-dir", runs_dir)
    assert res.returncode == 0, res.stderr
    report = elsewhere / "report.html"
    report.write_text("mine")
    res = axp("report", "--runs-dir", runs_dir)
    assert res.returncode == 2
    assert _one_line(res) == ("axp: report.html: already exists; keep it and write elsewhere "
                              "with -o FILE, or replace it with --force")
    assert report.read_text() == "mine"
    res = axp("report", "--runs-dir", runs_dir, "--force")
    assert res.returncode == 0 and report.read_text() != "mine"


def test_results_fit_a_100_column_terminal(project):
    for n, exp_id in enumerate(("a-rather-long-experiment-name", "short")):
        project.write(f"e{n}.yaml", PASSING.format(id=exp_id))
        assert project.axp("local", "run", f"e{n}.yaml").returncode == 0
    env = {k: v for k, v in project.env().items() if k not in ("COLUMNS", "LINES")}
    child = pexpect.spawn(sys.executable, ["-m", "axp_cli", "results"], cwd=str(project.root),
                          env=env, dimensions=(50, 100), encoding="utf-8", timeout=120)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    lines = child.before.replace("\r", "").splitlines()
    assert max(len(line) for line in lines) <= 100, child.before
    assert lines[2].split()[:4] == ["variant", "N", "passed", "pass"], child.before
    assert "a-rather-long-experiment-name/default" in child.before
    assert "left out to fit 100 columns:" in child.before
    wide = project.axp("results")  # not a terminal: every column, whole lines
    assert "tool calls (med / mean)" in wide.stdout.splitlines()[2]
    assert "left out" not in wide.stdout
