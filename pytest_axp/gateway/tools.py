"""Agent-neutral tool calls in a model script, as each agent's own tools.

A script may name a tool the way the agent does (`Bash`, `exec_command`, `run_shell_command`):
that call passes unchanged. Or it may use a neutral name, so one
script drives Claude, Codex and Gemini CLI alike:

- `shell {command}`: run a shell command;
- `write_file {path, content}`: create or replace a file;
- `read_file {path}`: read a file.

A neutral call becomes the first offered tool that does the same thing, with its arguments
named as that tool's schema names them (read from the request's tool definitions, so a
renamed parameter in a new agent version does not need a new table). When an agent has no
file tool (Codex runs everything through its shell tool), file calls become shell commands.
"""

from __future__ import annotations

import base64
import posixpath
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NEUTRAL = ("shell", "write_file", "read_file")

# Tools that do the neutral thing, in the order they are preferred, by agent:
# Claude Code, Codex, Gemini CLI, and generic names other adapters use.
_SHELL_TOOLS = ("Bash", "exec_command", "run_shell_command", "shell", "bash", "terminal")
_WRITE_TOOLS = ("Write", "write_file", "create_file")
_READ_TOOLS = ("Read", "read_file", "view")

_COMMAND_KEYS = ("command", "cmd")
_PATH_KEYS = ("file_path", "absolute_path", "path", "filename")
_CONTENT_KEYS = ("content", "contents", "text")


@dataclass(frozen=True)
class OfferedTool:
    """A tool as a request declares it: its name and the names of its parameters."""

    name: str
    parameters: tuple[str, ...] = ()
    # The type of each parameter the schema states ("string", "array", ...), when it does.
    types: Mapping[str, str] | None = None


def offered_from_schemas(tools: Iterable[tuple[str, Any]]) -> list[OfferedTool]:
    """OfferedTools from (name, JSON schema of the parameters) pairs, as every API declares
    them (`input_schema`, `parameters`, `parametersJsonSchema`)."""
    offered = []
    for name, schema in tools:
        props = schema.get("properties") if isinstance(schema, Mapping) else None
        props = props if isinstance(props, Mapping) else {}
        types = {k: str(v.get("type")) for k, v in props.items()
                 if isinstance(v, Mapping) and isinstance(v.get("type"), str)}
        offered.append(OfferedTool(name, tuple(str(k) for k in props), types))
    return offered


def agent_tool_call(name: str, tool_input: Mapping[str, Any],
                    offered: Sequence[OfferedTool]) -> tuple[str, dict[str, Any]]:
    """The (name, input) the agent should receive for a scripted tool call."""
    if name not in NEUTRAL:
        return name, dict(tool_input)
    # A neutral name is mapped even when the agent offers a tool of that name (Gemini's
    # `write_file` wants `file_path`, old Codex's `shell` an argv).
    by_name = {tool.name: tool for tool in offered}
    args = dict(tool_input)
    if name == "shell":
        return _shell_call(str(args.get("command", "")), by_name, fallback=(name, args))
    path = str(args.get("path", ""))
    if name == "write_file":
        tool = _first(_WRITE_TOOLS, by_name)
        if tool is not None:
            return tool.name, {_key(tool, _PATH_KEYS): path,
                               _key(tool, _CONTENT_KEYS): str(args.get("content", ""))}
        encoded = base64.b64encode(str(args.get("content", "")).encode()).decode()
        folder = posixpath.dirname(path) or "."
        command = (f"mkdir -p {shlex.quote(folder)} && printf %s {encoded} | base64 -d > "
                   f"{shlex.quote(path)}")
        return _shell_call(command, by_name, fallback=(name, args))
    tool = _first(_READ_TOOLS, by_name)
    if tool is not None:
        return tool.name, {_key(tool, _PATH_KEYS): path}
    return _shell_call(f"cat {shlex.quote(path)}", by_name, fallback=(name, args))


def _shell_call(command: str, by_name: Mapping[str, OfferedTool],
                fallback: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    tool = _first(_SHELL_TOOLS, by_name)
    if tool is None:
        return fallback
    key = _key(tool, _COMMAND_KEYS)
    if (tool.types or {}).get(key) == "array":
        # Older Codex `shell` takes an argv.
        return tool.name, {key: ["bash", "-lc", command]}
    return tool.name, {key: command}


def _first(names: Sequence[str], by_name: Mapping[str, OfferedTool]) -> OfferedTool | None:
    return next((by_name[n] for n in names if n in by_name), None)


def _key(tool: OfferedTool, candidates: Sequence[str]) -> str:
    return next((k for k in candidates if k in tool.parameters), candidates[0])
