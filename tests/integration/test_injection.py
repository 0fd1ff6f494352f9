"""No value from an experiment file reaches a shell: the claude-code agent starts from an argv."""

from __future__ import annotations

import json

from .conftest import summary

# Each field carries a command that would leave a marker file if any shell expanded it.
EXPERIMENT = r"""
schema_version: 2
id: injection
name: Injection
agents:
  - name: claude-code
    model: {name: 'claude-sonnet-4-5$(touch /tmp/pwned-model)`touch /tmp/pwned-tick`',
            effort: 'high"; touch /tmp/pwned-effort; echo "'}
prompts:
  - id: go
    prompt: 'say hi $(touch /tmp/pwned-prompt) "; touch /tmp/pwned-quote; "'
environments:
  - name: 'env $(touch /tmp/pwned-env)'
    setup:
      - name: 'step "$(touch /tmp/pwned-step)"'
        script: "true"
        mcp_servers:
          - name: 'docs$(touch /tmp/pwned-mcp-name)'
            type: http
            url: 'http://127.0.0.1:9/$(touch /tmp/pwned-mcp-url)'
            headers: [{name: X-A, value: '$(touch /tmp/pwned-mcp-header)'}]
tests:
  application:
    - name: no-marker
      script: |
        ls /tmp /workspace
        ! ls /tmp/pwned* /workspace/pwned* 2>/dev/null
limits: {max_turns: 3, max_time_seconds: 120}
"""

MODEL = """
turns:
  - text: "hi"
usage: {input_tokens: 10, output_tokens: 5}
"""


def test_fields_with_shell_syntax_are_never_expanded(project):
    project.write("exp.yaml", EXPERIMENT)
    project.write("model.yaml", MODEL)
    res = project.axp("local", "run", "exp.yaml", "--model-script", "model.yaml")
    run = project.only_run()
    (vid,) = run.selected_variants()
    s = summary(run, vid)
    results = run.results(vid)
    # claude really ran (it answered from the scripted model) ...
    raw = results.agent_raw.read_text()
    assert '"type":"result"' in raw.replace(" ", ""), raw + results.agent_log.read_text()
    # ... with each value as one argument, as written
    records = [json.loads(line) for line in results.commands_index.read_text().splitlines()]
    (agent,) = [r for r in records if r["phase"] == "agent" and r["name"] == "claude"]
    argv = agent["argv"]
    assert argv[0] == "claude" and "bash" not in argv
    assert argv[argv.index("--model") + 1] == (
        "claude-sonnet-4-5$(touch /tmp/pwned-model)`touch /tmp/pwned-tick`")
    assert argv[argv.index("--effort") + 1] == 'high"; touch /tmp/pwned-effort; echo "'
    # and no marker anywhere: the test inside the sandbox looked, and so do we.
    assert [t["status"] for t in s["tests"]] == ["pass"], (res.stdout, s["tests"])
    assert s["status"] == "pass", (res.stdout, res.stderr)
    assert not list(results.workspace.glob("pwned*"))
