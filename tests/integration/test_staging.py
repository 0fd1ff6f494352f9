"""Staging of folders and single files: .axpignore, .git, symlinks, ownership, staging.json."""

from __future__ import annotations

import json
import os
import re


def test_staging_folder_and_file(project):
    src = project.root / "proj"
    project.write("proj/a.txt", "a\n")
    project.write("proj/sub/b.txt", "b\n")
    project.write("proj/build/x.o", "binary\n")
    project.write("proj/secret.env", "TOKEN=1\n")
    project.write("proj/sub/keep.env", "kept by negation\n")
    project.write("proj/.git/config", "[core]\n")
    project.write("proj/.axpignore", "build/\n*.env\n!sub/keep.env\n")
    os.symlink("a.txt", src / "link")
    project.write("single.txt", "one file\n")
    project.write("stage.yaml", """
        schema_version: 2
        id: staging
        name: Staging
        agents: [{name: command, script: "ls -la app > listing.txt"}]
        prompts: [go]
        files:
          - name: src
            source: proj
            dest: app
          - source: single.txt
            dest: /workspace/notes/single.txt
        tests:
          application:
            - name: staged
              script: |
                set -e
                test "$(cat app/a.txt)" = a
                test -f app/sub/b.txt
                test -f app/sub/keep.env
                test ! -e app/build
                test ! -e app/secret.env
                test ! -e app/.git
                test ! -e app/.axpignore
                test ! -e app/link
                test "$(cat notes/single.txt)" = "one file"
                test "$(stat -c %U app/a.txt)" = agent
        limits: {max_time_seconds: 30}
    """)
    res = project.pytest("stage.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    records = json.loads(run.staging("default").read_text())
    assert [r.get("name") for r in records] == ["src", None]
    folder, single = records
    assert folder["source"] == str(src.resolve()) and folder["dest"] == "app"
    assert folder["file_count"] == 3 and folder["skipped_symlinks"] == 1
    assert folder["size_bytes"] == len("a\n") + len("b\n") + len("kept by negation\n")
    assert re.fullmatch(r"[0-9a-f]{64}", folder["tar_sha256"])
    assert single["file_count"] == 1 and single["dest"] == "notes/single.txt"
    assert "error" not in folder


def test_missing_source_fails_before_any_container(project, docker_client):
    project.write("missing.yaml", """
        schema_version: 2
        id: missing
        name: Missing source
        agents: [{name: command, script: "true"}]
        prompts: [go]
        files:
          - source: not-there
            dest: x
        tests: {}
        limits: {max_time_seconds: 30}
    """)
    res = project.pytest("missing.yaml")
    assert res.returncode == 1
    assert "not-there does not exist" in res.stdout
    run = project.only_run()
    s = json.loads(run.results("default").run_summary.read_text())
    assert s["status"] == "error" and s["error"]["phase"] == "staging"
    assert not run.results("default").commands_index.exists(), "a container ran commands"
