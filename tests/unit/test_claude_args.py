"""How the claude agent maps an experiment's MCP servers and model object (no Docker)."""

import textwrap

from pytest_axp.agents.base import model_fields
from pytest_axp.agents.claude import _mcp_config
from pytest_axp.experiment import load_and_resolve


def test_mcp_servers_become_an_mcp_config(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent("""
        schema_version: 2
        id: mcp
        name: MCP
        agents: [{name: claude, model: {name: claude-sonnet-4-5, effort: high, thinking: 2048}}]
        prompts: [go]
        secrets: [DOCS_TOKEN]
        environments:
          - name: env
            setup:
              - name: tools
                script: "true"
                mcp_servers:
                  - {name: local, type: stdio, command: npx, args: [docs-server, --flag],
                     env: [{name: TOKEN, from: DOCS_TOKEN}]}
                  - {name: remote, type: http, url: "http://docs.example/mcp",
                     headers: [{name: X-Team, value: blue}]}
        tests: {}
        limits: {}
    """))
    (variant,) = load_and_resolve(path)
    config = _mcp_config(variant, {"DOCS_TOKEN": "s3cret"})
    assert config == {"mcpServers": {
        "local": {"type": "stdio", "command": "npx", "args": ["docs-server", "--flag"],
                  "env": {"TOKEN": "s3cret"}},
        "remote": {"type": "http", "url": "http://docs.example/mcp",
                   "headers": {"X-Team": "blue"}},
    }}
    name, extra = model_fields(variant.agent.model)
    assert name == "claude-sonnet-4-5" and extra == {"effort": "high", "thinking": 2048}


def test_no_servers_no_config(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("schema_version: 2\nid: x\nname: X\nagents: [claude]\nprompts: [go]\n"
                    "tests: {}\nlimits: {}\n")
    (variant,) = load_and_resolve(path)
    assert _mcp_config(variant, {}) is None
    assert model_fields(variant.agent.model) == (None, {})
