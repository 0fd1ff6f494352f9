"""Claude Code's session JSONL -> AXP trace events in the shape of ACP `session/update`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..record.jsonio import json_records
from ..record.trace import TraceWriter

# ACP's tool kinds, by Claude Code tool name.
_KINDS = {
    "Bash": "execute", "BashOutput": "execute", "KillShell": "execute",
    "Read": "read", "Glob": "search", "Grep": "search", "LS": "search",
    "Write": "edit", "Edit": "edit", "MultiEdit": "edit", "NotebookEdit": "edit",
    "WebFetch": "fetch", "WebSearch": "fetch", "Task": "think", "Agent": "think",
    "TodoWrite": "think", "Skill": "other",
}


def _title(name: str, args: dict[str, Any]) -> str:
    for key in ("command", "file_path", "path", "pattern", "skill", "url", "description"):
        value = args.get(key)
        if isinstance(value, str) and value:
            return f"{name}: {value}" if key != "command" else value
    return name


def _ts_ns(record: dict[str, Any]) -> int | None:
    stamp = record.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return None


def _result_text(content: Any) -> Any:
    if isinstance(content, list):
        texts = [c.get("text", "") for c in content if isinstance(c, dict)
                 and c.get("type") == "text"]
        return "\n".join(texts) if texts else content
    return content


def parse_session(lines: Iterable[str]) -> list[dict[str, Any]]:
    return list(json_records(lines))


def session_to_trace(records: list[dict[str, Any]], trace: TraceWriter) -> None:
    """Append the agent's messages and tool calls to `trace`, in session order."""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    for rec in records:
        kind = rec.get("type")
        message = rec.get("message")
        if kind not in ("assistant", "user") or not isinstance(message, dict):
            continue
        content = message.get("content")
        ts = _ts_ns(rec)
        if isinstance(content, str):
            if kind == "user":
                trace.session_update("user_message_chunk",
                                     {"content": {"type": "text", "text": content}}, ts_ns=ts)
            continue
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            btype = block.get("type")
            if kind == "assistant" and btype == "text":
                trace.agent_text(block.get("text", ""), ts_ns=ts)
            elif kind == "assistant" and btype == "thinking":
                trace.session_update("agent_thought_chunk", {
                    "content": {"type": "text", "text": block.get("thinking", "")}}, ts_ns=ts)
            elif kind == "assistant" and btype == "tool_use":
                call_id = str(block.get("id", ""))
                name = str(block.get("name", ""))
                given = block.get("input")
                args: dict[str, Any] = given if isinstance(given, dict) else {}
                calls[call_id] = (name, args)
                trace.session_update("tool_call", {
                    "toolCallId": call_id, "title": _title(name, args),
                    "kind": _KINDS.get(name, "other"), "status": "pending",
                    "rawInput": args, "_meta": {"claudeCode": {"toolName": name}},
                }, tool_call_id=call_id, ts_ns=ts)
            elif kind == "user" and btype == "tool_result":
                call_id = str(block.get("tool_use_id", ""))
                name, args = calls.get(call_id, ("", {}))
                trace.session_update("tool_call_update", {
                    "toolCallId": call_id, "title": _title(name, args) if name else "",
                    "status": "failed" if block.get("is_error") else "completed",
                    "rawInput": args, "rawOutput": _result_text(block.get("content")),
                    "_meta": {"claudeCode": {"toolName": name}},
                }, tool_call_id=call_id, ts_ns=ts)
            elif kind == "user" and btype == "text":
                trace.session_update("user_message_chunk", {
                    "content": {"type": "text", "text": block.get("text", "")}}, ts_ns=ts)
