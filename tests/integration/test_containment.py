"""Sandboxes are contained: no privilege gain, bounded resources, hostile output survives."""

from __future__ import annotations

import json

from .conftest import summary

LIMITS_CHECK = r"""
set -e
test "$(id -u)" != 0
grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status
! sudo -n true 2>/dev/null
mem=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
pids=$(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max)
cpu=$(cut -d' ' -f1 /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)
echo "$mem $pids $cpu"
test "$mem" = 536870912 && test "$pids" = 300 && test "$cpu" = 150000
! mount | grep -E ' /(root|home|work|tmp/pytest)' >/dev/null
"""


def test_agent_and_tests_are_contained(project):
    project.write("contained.yaml", f"""
schema_version: 2
id: contained
name: Contained
agents:
  - name: command
    script: |
{chr(10).join('      ' + line for line in LIMITS_CHECK.strip().splitlines())}
prompts: [go]
tests:
  application:
    - name: limits-hold-for-tests-too
      script: |
{chr(10).join('        ' + line for line in LIMITS_CHECK.strip().splitlines())}
limits: {{max_time_seconds: 60}}
""")
    res = project.axp("local", "run", "contained.yaml", "--memory", "512m", "--cpus", "1.5",
                      "--pids-limit", "300")
    assert res.returncode == 0, res.stdout + res.stderr
    s = summary(project.only_run(), "default")
    assert s["agent"]["exit_code"] == 0 and s["status"] == "pass"


def test_hostile_output_is_kept_intact_and_cut_safely(project):
    project.write("noisy.yaml", """
        schema_version: 2
        id: noisy
        name: Noisy
        agents:
          - name: command
            script: |
              python3 -c "
              import sys
              out = sys.stdout.buffer
              out.write(b'start\\x00\\xff\\xfe not utf-8 \\xc3(\\n')
              out.write(b'x' * 3_000_000)
              out.write('\\nend \\u00e9\\n'.encode())
              "
        prompts: [go]
        tests:
          application:
            - name: echo-binary
              script: head -c 20000 /dev/urandom; printf 'tail\\xff\\xc3'
        limits: {max_time_seconds: 60}
    """)
    res = project.pytest("noisy.yaml")
    assert res.returncode == 0, res.stdout
    out = project.only_run().results("default")
    raw = out.agent_raw.read_bytes()
    assert raw.startswith(b"start\x00\xff\xfe not utf-8 \xc3(\n")
    assert len(raw) == len(b"start\x00\xff\xfe not utf-8 \xc3(\n") + 3_000_000 + len(
        "\nend \u00e9\n".encode())
    test = json.loads(out.run_summary.read_text())["tests"][0]
    log = (out.root / "application" / "echo-binary.stdout.log").read_bytes()
    assert len(log) == 20000 + 6 and log.endswith(b"tail\xff\xc3")
    assert isinstance(test["stdout_tail"], str) and test["stdout_tail"].endswith("tail\ufffd\ufffd")
    assert len(test["stdout_tail"].encode("utf-8", "replace")) <= 3 * 8192


def test_output_over_the_cap_is_cut_and_noted(project):
    project.write("flood.yaml", """
        schema_version: 2
        id: flood
        name: Flood
        agents: [{name: command, script: "head -c 5000000 /dev/zero | tr '\\\\0' y; echo done >&2"}]
        prompts: [go]
        tests: {application: [{name: t, script: "true"}]}
        limits: {max_time_seconds: 60}
    """)
    res = project.pytest("flood.yaml", "-o", "axp_output_limit_bytes=1000000")
    assert res.returncode == 0, res.stdout
    out = project.only_run().results("default")
    raw = out.agent_raw.read_bytes()
    assert raw.startswith(b"y" * 1_000_000)
    assert raw.endswith(b"\n[axp: output cut at 1000000 bytes; 4000000 more were dropped]\n")
    assert out.agent_log.read_text() == "done\n"
    record = next(json.loads(x) for x in out.commands_index.read_text().splitlines()
                  if json.loads(x)["phase"] == "agent")
    assert record["stdout_bytes"] == 5_000_000
    assert record["extra"] == {"stdout_cut_bytes": 4_000_000}


def test_limits_from_configuration_hold_for_containers_created_ahead(project):
    # axp local run creates the first sandboxes before pytest reads its configuration; a
    # container made with other limits must not be the one the agent runs in.
    project.write("pyproject.toml", '[tool.pytest.ini_options]\naxp_memory = "300m"\n')
    project.write(
        "mem.yaml",
        """
        schema_version: 2
        id: mem
        name: Memory
        agents:
          - name: command
            script: cat /sys/fs/cgroup/memory.max 2>/dev/null
              || cat /sys/fs/cgroup/memory/memory.limit_in_bytes
        prompts: [{id: a, prompt: x}, {id: b, prompt: y}]
        tests: {}
        limits: {max_time_seconds: 30}
    """,
    )
    res = project.axp("local", "run", "mem.yaml", "--jobs", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    for vid in ("a", "b"):
        assert run.results(vid).agent_raw.read_text().strip() == str(300 * 1024 * 1024)
