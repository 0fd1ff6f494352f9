"""The JSON schema of experiment files (v2, or legacy v1), generated from the models."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from .models import ExperimentV1, ExperimentV2

# What each field means, for `axp experiment schema` and editors that read it. A field means
# the same wherever it appears unless (model, field) says otherwise.
_FIELDS = {
    "schema_version": "2 for the current format, 1 for legacy files (required)",
    "id": "stable id: file, node and folder names are made from it",
    "name": "name (required)",
    "description": "free text, kept for analysis",
    "tags": "labels for selecting and grouping",
    "agents": "axis: agents to run, each an object or a bare agent name",
    "prompts": "axis: prompts given to the agent, each an object or a bare string",
    "environments": "axis: environments the sandbox is set up as",
    "products": "axis: products installed into the sandbox",
    "extensions": "more variants: each extension replaces the axes it gives (ours)",
    "environment_variables": "variables set for setup, the agent and the tests",
    "secrets": "names of secrets whose values come from the host at run time; never written "
               "to disk",
    "files": "files staged into the sandbox before setup",
    "tests": "tests run after the agent (required; either list may be empty)",
    "limits": "limits on the agent's run (required)",
    "setup": "a setup script, or a list of setup steps run in order before the agent",
    "setup_checks": "scripts run as the agent user after all setup, before the agent; a "
                    "failure ends the variant as error",
    "mcp_servers": "MCP servers given to the agent",
    "model": "the model: a name or an object",
    "agent": "the agent: a name or an object",
    "script": "bash script run in /workspace",
    "commit": "git commit (id, tag or branch) the environment or product is at: the "
              "sources of its setup's files are taken from git at it",
    "value": "the value",
}
_BY_MODEL = {
    "ExperimentV2": {"id": "experiment id, kebab-case (required)",
                     "name": "human-readable experiment name (required)"},
    "ExperimentV1": {"id": "experiment id, kebab-case (required)",
                     "name": "human-readable experiment name (required)",
                     "flow": "what the agent is asked (legacy)",
                     "matrix": "the variants, each with its overrides (legacy)"},
    "Agent": {"name": "agent adapter: claude (Claude Code over ACP), claude-code (the CLI), "
                      "acp (any ACP adapter: `command`) or command (ours: runs `script`)",
              "command": "the acp agent's adapter command line, e.g. \"my-agent --acp\" "
                         "(split into arguments, never run by a shell)",
              "script": "the command agent's bash script, run in /workspace as the agent "
                        "(ours; only for name: command)"},
    "AgentV1": {"name": "agent adapter: claude (Claude Code over ACP), claude-code (the CLI), "
                        "acp (any ACP adapter: `command`) or command (ours: runs `script`)",
                "command": "the acp agent's adapter command line (ours; only for name: acp)",
                "script": "the command agent's bash script (ours; only for name: command)"},
    "ModelSpec": {"name": "model name, as the agent's API knows it",
                  "effort": "reasoning effort, passed to the agent",
                  "context_window_size": "context window in tokens",
                  "thinking": "extended thinking: true/false, a token budget, or a level",
                  "fast": "ask the agent for its fast mode"},
    "Prompt": {"id": "prompt id; part of variant ids", "prompt": "the text given to the agent"},
    "EnvVar": {"name": "environment variable name",
               "value": "its value; axp://secrets/<name> takes a secret's value"},
    "McpEnv": {"name": "environment variable name for the server",
               "from": "host variable or secret whose value it takes"},
    "McpHeader": {"name": "HTTP header name", "value": "header value"},
    "McpServer": {"name": "server name", "type": "transport: stdio, http or sse",
                  "command": "stdio: the command that starts the server",
                  "args": "stdio: the command's arguments", "url": "http/sse: the server URL",
                  "env": "stdio: environment variables of the server",
                  "headers": "http/sse: headers sent with each request"},
    "SetupCheck": {"name": "check name", "script": "bash script; exit 0 passes"},
    "SetupStep": {"name": "step name", "script": "bash script run in /workspace, with network",
                  "files": "files staged for this step",
                  "secrets": "secrets this step needs"},
    "Environment": {"name": "environment name; part of variant ids"},
    "Product": {"name": "product name; part of variant ids", "type": "kind of product",
                "version": "product version"},
    "FileEntry": {"name": "name to refer to the entry: --file NAME=PATH replaces its source; "
                          "without a source the entry is a slot that must be bound",
                  "source": "host path (relative to the experiment file) or http(s) URL",
                  "sha256": "expected sha256 of a downloaded source",
                  "dest": "where it goes, relative to /workspace"},
    "TestSpec": {"name": "test name (names its log files)",
                 "script": "bash script run in /workspace after the agent; exit 0 passes"},
    "Tests": {"application": "tests of what the agent produced",
              "introspection": "tests of how the agent worked (read $AXP_TRACE_PATH)"},
    "Limits": {"max_turns": "most agent turns", "max_time_seconds": "wall-clock limit of the "
               "agent; exceeding it ends the variant as timeout",
               "max_cost_usd": "most model spend, in US dollars, enforced by the gateway"},
    "Extension": {"id": "extension id; part of variant ids",
                  "extensions": "nested extensions: their leaves are the variants"},
    "Flow": {"prompt": "the text given to the agent"},
    "Matrix": {"variant": "the variants"},
    "MatrixVariant": {"id": "variant id", "tag": "variant tag (default: the id)",
                      "overrides": "what this variant changes: lists add, the rest replace"},
    "Overrides": {"prompt": "replaces the prompt", "model": "replaces the model",
                  "agent": "replaces the agent", "setup": "replaces the setup"},
}


def _describe(defs: dict[str, Any]) -> None:
    for model, schema in defs.items():
        for field, prop in schema.get("properties", {}).items():
            text = _BY_MODEL.get(model, {}).get(field) or _FIELDS.get(field)
            if text and not prop.get("description"):
                prop["description"] = text


def experiment_json_schema() -> dict[str, Any]:
    # "validation" mode: the shapes a file may be written in, shorthands included.
    refs, schema = models_json_schema([(ExperimentV2, "validation"), (ExperimentV1, "validation")],
                                      ref_template="#/$defs/{model}")
    defs = schema.get("$defs", {})
    _describe(defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "AXP experiment (schema v2, or legacy v1)",
        "oneOf": [refs[(ExperimentV2, "validation")], refs[(ExperimentV1, "validation")]],
        "$defs": defs,
    }
