"""Secrets in every form a run can write them: line by line, in file names, cut by the
output cap; and values too short to redact are refused."""

from __future__ import annotations

import json

from .conftest import container_names, summary

PLAIN = "SUPERSECRETVALUE123"
MULTI = "multi-Line-One-7788\nmulti-Line-Two-9911\nend-Line-Three-4455"
CAP = 20  # cuts `stdout:SUPERSECRETVALUE123` after `stdout:SUPERSECRETVA`

EXPERIMENT = """
schema_version: 2
id: leaky
name: Leaky
agents:
  - name: command
    script: |
      printf '%s\\n' "$MULTI_SECRET" > multi.txt
      echo named > "file-$PLAIN_SECRET.txt"
      printf 'stdout:%s\\n' "$PLAIN_SECRET"
      printf 'e:%s\\n' "$MULTI_SECRET" >&2
prompts: [go]
secrets: [PLAIN_SECRET, MULTI_SECRET]
tests:
  application:
    - name: sandbox-keeps-raw-values
      script: 'test -f "file-$PLAIN_SECRET.txt" && [ "$(cat multi.txt)" = "$MULTI_SECRET" ]'
limits: {max_time_seconds: 60}
"""


def _pieces() -> set[str]:
    """Every 8-character piece of each value and of each of its lines (so also any
    beginning of them a cut could leave), and the JSON-escaped multi-line value."""
    pieces = {json.dumps(MULTI)[1:-1]}
    for text in (PLAIN, *MULTI.splitlines()):
        pieces |= {text[i:i + 8] for i in range(len(text) - 7)}
    return pieces


def test_no_form_of_a_secret_reaches_the_run_folder(project):
    project.write("leaky.yaml", EXPERIMENT)
    res = project.pytest("leaky.yaml", "-o", f"axp_output_limit_bytes={CAP}",
                         "--axp-env", f"PLAIN_SECRET={PLAIN}",
                         "--axp-env", f"MULTI_SECRET={MULTI}")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    out = run.results("default")
    assert summary(run, "default")["status"] == "pass"

    pieces = _pieces()
    found = []
    for path in (project.root / ".axp").rglob("*"):
        rel = path.relative_to(project.root).as_posix()
        found += [(rel, "name", p) for p in pieces if p in rel]
        if path.is_file():
            data = path.read_bytes()
            found += [(rel, "bytes", p) for p in pieces if p.encode() in data]
    assert found == []
    assert not [p for p in pieces if p in res.stdout + res.stderr]

    marker = "[REDACTED]"
    # Cut by the cap: the value's beginning is masked, not written.
    assert out.agent_raw.read_text().startswith(f"stdout:{marker}\n[axp: output cut at {CAP}")
    assert out.agent_log.read_text().startswith(f"e:{marker}\n[axp: output cut at {CAP}")
    # The fs-diff after the agent exists (the harness read the real names) and shows the
    # changed files with the value redacted from the name and, line by line, the patch.
    after = json.loads((out.fs_diff / "2.json").read_text())
    assert after["point"] == "after_agent"
    changes = {c["path"]: c for c in after["changes"]}
    assert {p: c["change"] for p, c in changes.items()} == {
        f"file-{marker}.txt": "added", "multi.txt": "added"}
    assert changes[f"file-{marker}.txt"]["patch"] == f"2/file-{marker}.txt.patch"
    assert (out.fs_diff / "2" / f"file-{marker}.txt.patch").read_text() == (
        f"--- /dev/null\n+++ b/file-{marker}.txt\n@@ -0,0 +1 @@\n+named\n")
    assert (out.fs_diff / "2" / "multi.txt.patch").read_text() == (
        f"--- /dev/null\n+++ b/multi.txt\n@@ -0,0 +1,3 @@\n"
        f"+{marker}\n+{marker}\n+{marker}\n")
    assert (out.workspace / f"file-{marker}.txt").read_text() == "named\n"
    assert (out.workspace / "multi.txt").read_text() == f"{marker}\n"
    layout = json.loads(out.layout.read_text())
    assert f"fs-diff/2/file-{marker}.txt.patch" in {f["path"] for f in layout["files"]}


def test_a_secret_too_short_to_redact_is_refused(project, docker_client):
    project.write("short.yaml", """
        schema_version: 2
        id: short-secret
        name: Short secret
        agents: [{name: command, script: "true"}]
        prompts: [go]
        secrets: [TINY_SECRET]
        tests: {}
        limits: {max_time_seconds: 30}
    """)
    res = project.axp("local", "run", "short.yaml", "--env", "TINY_SECRET=k")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip().splitlines() == [
        "axp: secret TINY_SECRET is 1 character(s) long: values shorter than 8 cannot be "
        "redacted from the records safely; use a longer value"]
    assert project.runs() == []
    dry = project.axp("local", "run", "short.yaml", "--env", "TINY_SECRET=k", "--dry-run")
    assert dry.returncode == 1
    assert "TINY_SECRET  too short (under 8 characters)" in dry.stdout
    # Under pytest the variant ends as an error naming it, before any sandbox.
    res = project.pytest("short.yaml", "--axp-env", "TINY_SECRET=k")
    assert res.returncode == 1
    run = project.only_run()
    s = summary(run, "default")
    assert s["status"] == "error" and s["error"]["phase"] == "secrets"
    assert "TINY_SECRET is 1 character(s) long" in s["error"]["message"]
    assert not any(run.run_id in n for n in container_names(docker_client))
    # Resuming with the same value is refused before the earlier attempt is moved.
    again = project.axp("local", "run", "--resume", run.run_id, "--env", "TINY_SECRET=k")
    assert again.returncode == 2 and "TINY_SECRET is 1 character(s)" in again.stderr
    assert summary(run, "default")["status"] == "error"
    assert not (run.results("default").root / "attempts").exists()
