"""Secrets (precedence, redaction everywhere), every --file form, URL sources, dry runs,
`axp sandbox clean` and plain progress lines."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import uuid

import pytest

from .conftest import container_ids, summary

SECRET = "cli-Secret-Value-0123456789"

SECRET_EXPERIMENT = """
schema_version: 2
id: secretive
name: Secretive
agents:
  - name: command
    script: |
      printf '%s' "${MY_TOKEN:0:7}"; sleep 0.3; printf '%s\\n' "${MY_TOKEN:7}"
      echo "err $MY_TOKEN" >&2
      echo "$MY_TOKEN" > leaked.txt
      echo "$REFERENCED" > referenced.txt
prompts: [go]
secrets: [MY_TOKEN]
environment_variables:
  - {name: REFERENCED, value: "axp://secrets/MY_TOKEN"}
environments:
  - name: env
    setup: 'echo "setup sees $MY_TOKEN"'
tests:
  application:
    - name: cli-value-wins
      script: '[ "$(printf %s "$MY_TOKEN" | sha256sum | cut -c1-16)" = "{digest}" ]
        && echo "test $MY_TOKEN"'
limits: {max_time_seconds: 60}
""".replace("{digest}", hashlib.sha256(SECRET.encode()).hexdigest()[:16])


def test_precedence_and_redaction_in_every_artifact(project):
    project.write(".env", "MY_TOKEN=from-dotenv\n")
    project.write("extra.env", "MY_TOKEN=from-env-file\n")
    project.write("secretive.yaml", SECRET_EXPERIMENT)
    res = project.axp("local", "run", "secretive.yaml", "--env-file", "extra.env",
                      "--env", f"MY_TOKEN={SECRET}")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    out = run.results("default")
    assert summary(run, "default")["status"] == "pass"
    files = [p for p in (project.root / ".axp").rglob("*") if p.is_file()]
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    marker = "[REDACTED]"
    assert out.agent_raw.read_text() == f"{marker}\n", "split across two chunks"
    assert out.agent_log.read_text() == f"err {marker}\n"
    assert (out.workspace / "leaked.txt").read_text() == f"{marker}\n"
    assert (out.workspace / "referenced.txt").read_text() == f"{marker}\n"
    assert marker in (out.fs_diff / "2" / "leaked.txt.patch").read_text()
    assert (
        out.root / "application" / "cli-value-wins.stdout.log"
    ).read_text() == f"test {marker}\n"
    assert summary(run, "default")["tests"][0]["stdout_tail"] == f"test {marker}\n"
    setup = next(json.loads(x) for x in out.commands_index.read_text().splitlines()
                 if json.loads(x)["phase"] == "setup")
    assert (out.root / setup["stdout_path"]).read_text() == f"setup sees {marker}\n"
    resolved = run.resolved_variant("default").read_text()
    assert "MY_TOKEN" in resolved and "from-dotenv" not in resolved
    assert SECRET not in res.stdout + res.stderr


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


@pytest.mark.parametrize("layers, expected", [
    ({"dotenv": True}, "from-dotenv"),
    ({"dotenv": True, "env_file": True}, "from-env-file"),
    ({"dotenv": True, "env_file": True, "host": True}, "from-host"),
    ({"dotenv": True, "env_file": True, "host": True, "cli": True}, "from-cli"),
])
def test_each_layer_beats_the_one_below(project, monkeypatch, layers, expected):
    monkeypatch.delenv("MY_TOKEN", raising=False)
    project.write(".env", "MY_TOKEN=from-dotenv\nOTHER=not-declared\n")
    project.write("extra.env", "MY_TOKEN=from-env-file\n")
    project.write(
        "which.yaml",
        f"""
        schema_version: 2
        id: which
        name: Which value
        agents: [{{name: command, script: "true"}}]
        prompts: [go]
        secrets: [MY_TOKEN]
        tests:
          application:
            - name: value
              script: '[ "$(printf %s "$MY_TOKEN" | sha256sum | cut -c1-16)"
                = "{_digest(expected)}" ]'
            - name: undeclared-not-taken
              script: '[ -z "$OTHER" ]'
        limits: {{max_time_seconds: 30}}
    """,
    )
    args = ["local", "run", "which.yaml"]
    if layers.get("env_file"):
        args += ["--env-file", "extra.env"]
    if layers.get("host"):
        monkeypatch.setenv("MY_TOKEN", "from-host")
    if layers.get("cli"):
        args += ["--env", "MY_TOKEN=from-cli"]
    res = project.axp(*args)
    assert res.returncode == 0, res.stdout + res.stderr


def test_missing_secret_named_in_dry_run(project):
    project.write("needs.yaml", """
        schema_version: 2
        id: needs
        name: Needs
        agents: [{name: command, script: "true"}]
        prompts: [go]
        secrets: [AXP_NEVER_SET_ANYWHERE]
        files:
          - {name: slot, dest: a}
          - {name: absent, source: not-here, dest: b}
          - {name: present, source: here.txt, dest: c.txt}
        tests: {}
        limits: {}
    """)
    project.write("here.txt", "12345")
    res = project.axp("local", "run", "needs.yaml", "--dry-run")
    assert res.returncode == 1
    rows = {line.split()[0]: line.split() for line in res.stdout.splitlines() if line.strip()}
    assert rows["slot"][-1] == "UNBOUND"
    assert rows["absent"][-1] == "MISSING"
    assert rows["present"][-3:] == ["1", "5", "OK"]
    assert rows["AXP_NEVER_SET_ANYWHERE"][-1] == "missing"
    assert not (project.root / ".axp").exists()


def test_every_file_form(project):
    project.write("data/one.txt", "bound\n")
    project.write("alt/readme.md", "replaced\n")
    project.write("orig/readme.md", "original\n")
    project.write("loose.txt", "ad hoc\n")
    project.write("files.yaml", """
        schema_version: 2
        id: files
        name: Files
        agents: [{name: command, script: "true"}]
        prompts: [go]
        files:
          - {name: slot, dest: slot.txt}
          - {name: docs, source: orig, dest: docs}
        tests:
          application:
            - name: staged
              script: |
                set -e
                test "$(cat slot.txt)" = bound
                test "$(cat docs/readme.md)" = replaced
                test "$(cat notes/loose.txt)" = "ad hoc"
        limits: {max_time_seconds: 30}
    """)
    res = project.axp("local", "run", "files.yaml", "--file", "slot=data/one.txt",
                      "--file", "docs=alt", "--file", "loose.txt::/workspace/notes/loose.txt")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    records = json.loads(run.staging("default").read_text())
    assert [(r.get("name"), r["dest"]) for r in records] == [
        ("slot", "slot.txt"), ("docs", "docs"), (None, "notes/loose.txt")]
    assert records[1]["source"] == str(project.root / "alt")
    # Unbound without --file: an input error before anything runs, saying how to bind it.
    res = project.axp("local", "run", "files.yaml")
    assert res.returncode == 2
    assert res.stderr.strip().endswith(
        "files: slot 'slot' has no source: bind it with --file slot=PATH")
    assert len(project.runs()) == 1


@pytest.fixture
def file_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    (root / "tool.txt").write_text("downloaded tool\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_source_good_and_bad_sha256(project, file_server, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    good = hashlib.sha256(b"downloaded tool\n").hexdigest()
    template = """
        schema_version: 2
        id: {id}
        name: URL
        agents: [{{name: command, script: "true"}}]
        prompts: [go]
        files:
          - {{name: tool, source: "{url}/tool.txt", sha256: "{sha}", dest: bin/tool.txt}}
          - {{name: later, source: "{url}/tool.txt", dest: later.txt}}
        tests:
          application:
            - name: fetched
              script: test "$(cat bin/tool.txt)" = "downloaded tool"
        limits: {{max_time_seconds: 30}}
    """
    project.write("good.yaml", template.format(id="good", url=file_server, sha=good))
    res = project.axp("local", "run", "good.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "cache" / "pytest-axp" / "downloads" / good).is_file(), "cached by sha256"
    records = json.loads(project.only_run().staging("default").read_text())
    assert records[0]["source"] == f"{file_server}/tool.txt" and records[0]["file_count"] == 1

    project.write("bad.yaml", template.format(id="bad", url=file_server, sha="0" * 64))
    res = project.axp("local", "run", "bad.yaml")
    assert res.returncode == 1
    bad_run = next(r for r in project.runs() if r.run_id.startswith("bad-"))
    records = json.loads(bad_run.staging("default").read_text())
    assert len(records) == 1, "later entries are absent after a failing one"
    assert "sha256 is" in records[0]["error"]
    s = summary(bad_run, "default")
    assert s["status"] == "error" and s["error"]["phase"] == "staging"


def test_orphans_are_cleaned_and_reaped_at_the_next_start(project, docker_client):
    """`axp sandbox clean` lists and removes sandboxes whose owner died, never a live one's
    nor another machine's; `axp local run` reaps them before it starts. The axp commands
    run as a machine of their own name: any other axp on this engine (a parallel test,
    another checkout's suite, a person) reaps this machine's orphans, never these."""
    from pytest_axp.sandbox.docker_image import ensure_image

    image = ensure_image(None, project.root / ".lock")
    host = f"axp-test-{uuid.uuid4().hex[:12]}"

    def container(pid: int, run_id: str, owner_host: str = host):
        return docker_client.containers.run(
            image, ["sleep", "infinity"], detach=True, init=True,
            labels={"axp.owner_pid": str(pid), "axp.owner_host": owner_host,
                    "axp.run_id": run_id})

    dead = 2 ** 22 + 17  # above the default pid_max: no such process
    orphan = container(dead, "clean-test-orphan")
    alive = container(1, "clean-test-alive")
    foreign = container(dead, "clean-test-foreign", owner_host=f"{host}-other")
    later = None
    try:
        listed = project.axp("sandbox", "clean", hostname=host)
        assert listed.returncode == 0 and orphan.name in listed.stdout, listed
        assert alive.name not in listed.stdout and foreign.name not in listed.stdout
        assert "axp sandbox clean --yes" in listed.stdout
        docker_client.containers.get(orphan.id)  # listing removes nothing
        removed = project.axp("sandbox", "clean", "--yes", hostname=host)
        assert removed.returncode == 0 and "removed" in removed.stdout, removed
        assert orphan.id not in container_ids(docker_client)
        assert {alive.id, foreign.id} <= set(container_ids(docker_client))

        later = container(dead, "reap-at-start")
        project.write("tiny.yaml", """
            schema_version: 2
            id: tiny
            name: Tiny
            agents: [{name: command, script: "true"}]
            prompts: [go]
            tests: {}
            limits: {}
        """)
        res = project.axp("local", "run", "tiny.yaml", reap=True, hostname=host)
        assert res.returncode == 0, res.stderr
        assert later.id not in container_ids(docker_client)
        assert {alive.id, foreign.id} <= set(container_ids(docker_client))
    finally:
        for c in (orphan, alive, foreign, later):
            if c is None:
                continue
            try:
                c.remove(force=True)
            except Exception:
                pass


def test_progress_lines_when_not_a_terminal(project):
    project.write("p.yaml", """
        schema_version: 2
        id: prog
        name: Progress
        agents: [{name: command, script: "true"}]
        prompts: [{id: a, prompt: x}, {id: b, prompt: y}]
        tests: {application: [{name: t, script: "true"}]}
        limits: {max_time_seconds: 30}
    """)
    res = project.axp("local", "run", "p.yaml", "--jobs", "2")
    assert res.returncode == 0, res.stderr
    run_id = project.only_run().run_id
    lines = [x for x in res.stdout.splitlines() if x.startswith("progress:")]
    for vid in ("a", "b"):
        assert any(x.startswith(f"progress: {vid}: pass in ") for x in lines), lines
    assert "\x1b[" not in res.stdout, "no terminal control sequences in CI logs"
    assert res.stdout.splitlines()[0] == f"run {run_id}"
    # The same final table as on a terminal, its reason column never wrapped.
    end = res.stdout.split("\n\n")[-2:]
    assert [x.split()[:2] for x in end[0].splitlines()[2:]] == [["a", "pass"], ["b", "pass"]]
    assert end[1].splitlines() == [
        end[1].splitlines()[0], f"run folder: {project.runs_dir / run_id}"]
    assert end[1].startswith("total: 2 variants: 2 pass; cost $0.0000; wall time ")
