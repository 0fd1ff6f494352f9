"""fs-diff at three points, harness spans per phase, span ids on commands, layout.json."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter

from .conftest import summary

EXPERIMENT = """
schema_version: 2
id: observe
name: Observe
agents:
  - name: command
    script: |
      printf 'one\\nTWO\\n' > edit.txt
      rm remove.txt
      mkdir -p src && printf 'x = 1\\n' > src/model.py
      head -c 2000 /dev/urandom > blob.bin
      printf 'new\\n' > added.txt
prompts: [go]
files:
  - {name: project, source: proj, dest: .}
environments:
  - name: env
    setup:
      - name: prepare
        script: echo preparing
        setup_checks:
          - {name: bash-works, script: "true"}
tests:
  application:
    - name: touches-keep
      script: test -f src/model.py && echo later >> keep.txt && echo three >> edit.txt
  introspection:
    - name: always
      script: "true"
limits: {max_time_seconds: 60}
"""


def _setup(project):
    project.write("proj/keep.txt", "keep\n")
    project.write("proj/edit.txt", "one\ntwo\n")
    project.write("proj/remove.txt", "bye\n")
    project.write("observe.yaml", EXPERIMENT)


def test_three_points_patches_spans_and_layout(project):
    _setup(project)
    res = project.pytest("observe.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    out = run.results("default")
    diff = out.fs_diff

    first = json.loads((diff / "1.json").read_text())
    assert (first["point"], first["changes"], first["file_count"]) == ("before_agent", [], 3)

    second = json.loads((diff / "2.json").read_text())
    assert second["point"] == "after_agent" and second["previous_point"] == "before_agent"
    changes = {c["path"]: c for c in second["changes"]}
    assert {p: c["change"] for p, c in changes.items()} == {
        "added.txt": "added", "blob.bin": "added", "edit.txt": "modified",
        "remove.txt": "deleted", "src/model.py": "added"}
    assert changes["added.txt"]["sha256"] == hashlib.sha256(b"new\n").hexdigest()
    assert changes["added.txt"]["mode"] == "0644" and changes["added.txt"]["size"] == 4
    assert changes["blob.bin"]["note"] == "binary" and changes["blob.bin"]["patch"] is None
    assert changes["src/model.py"]["patch"] == "2/src_model.py.patch"
    assert (diff / "2" / "edit.txt.patch").read_text() == (
        "--- a/edit.txt\n+++ b/edit.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+TWO\n")
    assert (diff / "2" / "remove.txt.patch").read_text() == (
        "--- a/remove.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n")
    assert (diff / "2" / "src_model.py.patch").read_text() == (
        "--- /dev/null\n+++ b/src/model.py\n@@ -0,0 +1 @@\n+x = 1\n")
    assert not (diff / "2" / "blob.bin.patch").exists()

    third = json.loads((diff / "3.json").read_text())
    assert third["point"] == "after_tests"
    assert [(c["path"], c["change"]) for c in third["changes"]] == [
        ("edit.txt", "modified"), ("keep.txt", "modified")]
    assert (diff / "3" / "keep.txt.patch").read_text().endswith(" keep\n+later\n")
    # Against the agent's version, not the staged one: the state follows each point.
    assert (diff / "3" / "edit.txt.patch").read_text() == (
        "--- a/edit.txt\n+++ b/edit.txt\n@@ -1,2 +1,3 @@\n one\n TWO\n+three\n")

    traces = list(out.traces.glob("*.otlp.json"))
    assert len(traces) == 1
    doc = json.loads(traces[0].read_text())
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert Counter(s["name"] for s in spans) == Counter({
        "variant_run": 1, "sandbox_create": 1, "stage": 1, "setup": 1,
        "setup_check": 1, "snapshot": 3, "agent": 1, "stop_agent_processes": 1, "test": 2,
        "copy_workspace": 1, "teardown": 1})
    root = next(s for s in spans if s["name"] == "variant_run")
    assert all(s.get("parentSpanId") == root["spanId"] for s in spans if s is not root)
    assert traces[0].name == f"{root['traceId']}.otlp.json"
    by_id = {s["spanId"]: s for s in spans}
    records = [json.loads(x) for x in out.commands_index.read_text().splitlines()]
    assert records and all(r["span_id"] in by_id for r in records)
    agent_cmd = next(r for r in records if r["phase"] == "agent")
    assert by_id[agent_cmd["span_id"]]["name"] == "agent"
    test_span = next(s for s in spans if s["name"] == "test")
    assert {a["key"] for a in test_span["attributes"]} >= {"axp.test.kind", "axp.exit_code"}

    layout = json.loads(out.layout.read_text())
    on_disk = {}
    for dirpath, _, files in os.walk(out.root):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), out.root)
            if rel != "layout.json" and not rel.startswith("workspace/"):
                on_disk[rel] = os.path.getsize(os.path.join(dirpath, f))
    assert {f["path"]: f["size"] for f in layout["files"]} == on_disk
    assert layout["workspace"]["files"] == 5 and layout["workspace"]["omitted_count"] == 0
    assert summary(run, "default")["status"] == "pass"


def test_caps_on_patches_and_workspace_copy(project):
    _setup(project)
    res = project.pytest("observe.yaml", "--axp-max-patch-bytes", "4",
                         "--axp-max-workspace-bytes", "10")
    assert res.returncode == 0, res.stdout + res.stderr
    out = project.only_run().results("default")
    changes = {c["path"]: c for c in json.loads((out.fs_diff / "2.json").read_text())["changes"]}
    assert changes["edit.txt"]["note"] == "too large"
    assert changes["blob.bin"]["note"] == "too large"
    assert len(changes["blob.bin"]["sha256"]) == 64, "hashed in the sandbox, not fetched"
    assert changes["added.txt"]["patch"] == "2/added.txt.patch"
    ws = json.loads(out.layout.read_text())["workspace"]
    assert ws["limit_bytes"] == 10 and ws["omitted_count"] >= 1
    assert ws["bytes"] <= 10
    copied = [p for p in out.workspace.rglob("*") if p.is_file()]
    assert len(copied) == ws["files"]
    assert all(not (out.workspace / name).exists() for name in ws["omitted"])
