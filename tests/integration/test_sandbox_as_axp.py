"""The sandbox as AXP's: who owns what setup made and what was staged, setup checks run as
the agent, and a failing check ends the variant as `error` before the agent starts."""

from __future__ import annotations

import io
import json
import uuid

from .conftest import summary

OWNERSHIP = """
schema_version: 2
id: ownership
name: Ownership
agents:
  - name: command
    script: |
      echo agent >> made-by-setup.txt; echo "append=$?" > results.txt
      echo agent >> shared-by-setup.txt; echo "shared=$?" >> results.txt
      echo agent >> app/a.txt; echo "staged=$?" >> results.txt
      echo agent >> env/e.txt; echo "env=$?" >> results.txt
      echo agent >> product/p.txt; echo "product=$?" >> results.txt
      echo agent > new.txt; echo "new=$?" >> results.txt
prompts: [go]
files:
  - {source: proj, dest: app}
environments:
  - name: env
    setup:
      - name: make-files
        files: [{source: env-src, dest: env}]
        script: |
          echo setup > /workspace/made-by-setup.txt
          echo setup > /workspace/shared-by-setup.txt
          chmod 666 /workspace/shared-by-setup.txt
products:
  - name: prod
    setup:
      - name: stage-product
        files: [{source: prod-src, dest: product}]
        script: "true"
tests:
  application:
    - name: owners
      script: |
        set -e
        test "$(stat -c %U /workspace)" = agent
        test "$(stat -c %U made-by-setup.txt)" = root
        test "$(stat -c %U shared-by-setup.txt)" = root
        for f in app app/a.txt env env/e.txt product product/p.txt new.txt; do
          test "$(stat -c %U "$f")" = agent || { echo "$f is not the agent's"; exit 1; }
        done
    - name: what-the-agent-could-do
      script: |
        set -e
        cat results.txt
        grep -qx 'append=1' results.txt
        grep -qx 'shared=0' results.txt
        grep -qx 'staged=0' results.txt
        grep -qx 'env=0' results.txt
        grep -qx 'product=0' results.txt
        grep -qx 'new=0' results.txt
        test "$(cat made-by-setup.txt)" = setup
limits: {max_time_seconds: 60}
"""


def _ownership_project(project):
    project.write("proj/a.txt", "a\n")
    project.write("env-src/e.txt", "e\n")
    project.write("prod-src/p.txt", "p\n")
    project.write("own.yaml", OWNERSHIP)


def test_setup_output_stays_root_and_staged_files_are_the_agents(project):
    _ownership_project(project)
    res = project.pytest("own.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    s = summary(project.only_run(), "default")
    assert s["status"] == "pass", s
    records = [json.loads(x) for x in
               project.only_run().results("default").commands_index.read_text().splitlines()]
    setup = [r for r in records if r["phase"] == "setup"]
    assert [(r["name"], r["user"]) for r in setup] == [("environment/make-files", "root"),
                                                       ("product/stage-product", "root")]
    assert not any(r["phase"] == "handover" for r in records), "no chown after setup"


def test_workspace_is_the_agents_in_an_image_that_made_it_root(project, docker_client):
    from pytest_axp.sandbox.docker_image import default_image_tag

    base = default_image_tag()
    docker_client.images.get(base)  # built by the runs above or an earlier session
    tag = f"axp-test-rootws:{uuid.uuid4().hex[:12]}"
    dockerfile = f"FROM {base}\nRUN chown root:root /workspace && chmod 700 /workspace\n"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        _ownership_project(project)
        res = project.pytest("own.yaml", "--axp-image", tag)
        assert res.returncode == 0, res.stdout + res.stderr
        assert summary(project.only_run(), "default")["status"] == "pass"
    finally:
        docker_client.images.remove(tag, force=True)


CHECKS = """
schema_version: 2
id: checks
name: Setup checks
agents: [{name: command, script: "echo ran > agent-ran.txt"}]
prompts: [go]
environments:
  - name: env
    setup:
      - name: root-file
        script: |
          echo setup > /workspace/log.txt
          {chmod}
        setup_checks:
          - {name: is-agent, script: 'test "$(id -un)" = agent && test "$HOME" != /root'}
          - name: can-append
            script: |
              echo "checking log.txt" >&2
              echo check >> /workspace/log.txt
tests:
  application:
    - {name: agent-ran, script: test -f agent-ran.txt}
limits: {max_time_seconds: 60}
"""


def test_setup_checks_run_as_the_agent_and_pass(project):
    project.write("ok.yaml", CHECKS.replace("{chmod}", "chmod 666 /workspace/log.txt"))
    res = project.pytest("ok.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    assert summary(run, "default")["status"] == "pass"
    records = [json.loads(x) for x in run.results("default").commands_index.read_text()
               .splitlines()]
    checks = [(r["name"], r["user"], r["exit_code"]) for r in records
              if r["phase"] == "setup_check"]
    assert checks == [("is-agent", "agent", 0), ("can-append", "agent", 0)]


def test_a_failing_setup_check_ends_the_variant_as_error_before_the_agent(project):
    # Without the chmod the agent cannot append to what setup (root) made: the check says so.
    project.write("bad.yaml", CHECKS.replace("{chmod}", "true"))
    res = project.pytest("bad.yaml", "-rA")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "default: error: setup_check 'can-append' failed (exit 1): non-zero exit" \
        in res.stdout, res.stdout
    run = project.only_run()
    s = summary(run, "default")
    assert s["status"] == "error" and s["tests"] == []
    err = s["error"]
    assert (err["phase"], err["name"], err["exit_code"]) == ("setup_check", "can-append", 1)
    assert "checking log.txt" in err["stderr_tail"]
    assert "Permission denied" in err["stderr_tail"]
    assert err["infrastructure"] is False
    records = [json.loads(x) for x in run.results("default").commands_index.read_text()
               .splitlines()]
    assert not any(r["phase"] in ("agent", "test") for r in records), "agent must not start"
    assert not (run.results("default").workspace / "agent-ran.txt").exists()
