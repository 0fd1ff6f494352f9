"""A legacy v1 matrix file with overrides, run twice through `axp local run --repeat 2`."""

from __future__ import annotations

import json

from .conftest import index, summary

LEGACY = """
schema_version: 1
id: legacy
name: Legacy matrix
flow:
  prompt: Write agent.txt
agent:
  name: command
  script: echo base > agent.txt
setup_checks:
  - name: has-python
    script: python3 --version
matrix:
  variant:
    - id: base
      tag: Base
    - id: custom
      tag: Custom agent
      overrides:
        agent: {name: command, script: "echo custom > agent.txt"}
        setup: "echo from-setup > /workspace/setup.txt"
        setup_checks:
          - name: setup-ran
            script: test -f /workspace/setup.txt
tests:
  application:
    - name: agent-ran
      script: test -f agent.txt
limits:
  max_turns: 1
  max_time_seconds: 30
"""


def test_v1_matrix_with_overrides_and_two_repeats(project):
    project.write("legacy.yaml", LEGACY)
    res = project.axp("local", "run", "legacy.yaml", "--repeat", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    runs = project.runs()
    assert len(runs) == 2
    for run in runs:
        assert run.run_id in res.stdout
        assert set(index(run)["variants"]) == {"base", "custom"}
        assert index(run)["variants"]["custom"]["variant_tag"] == "Custom agent"
        assert summary(run, "base")["status"] == "pass"
        custom = run.results("custom")
        assert (custom.workspace / "agent.txt").read_text() == "custom\n"
        assert (custom.workspace / "setup.txt").read_text() == "from-setup\n"
        assert (run.results("base").workspace / "agent.txt").read_text() == "base\n"
        assert not (run.results("base").workspace / "setup.txt").exists()
        records = [json.loads(x) for x in custom.commands_index.read_text().splitlines()
                   if json.loads(x)["phase"] != "snapshot"]
        assert [r["phase"] for r in records] == ["setup", "setup_check", "setup_check",
                                                 "agent", "agent", "test"]
        checks = [r["name"] for r in records if r["phase"] == "setup_check"]
        assert checks == ["has-python", "setup-ran"], "override lists add to the top level"
        assert [r["user"] for r in records[:4]] == ["root", "agent", "agent", "agent"]
    assert {summary(r, "base")["repeat"] for r in runs} == {1, 2}
    # The summary table names each run, variant and status.
    assert res.stdout.count(" pass ") + res.stdout.count(" pass\n") >= 4
