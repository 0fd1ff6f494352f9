"""The query tables read a trace of real ACP frames: the prompt request is the user's
message, streamed chunks are one message, and a tool call's empty first input is refined."""

import json

from pytest_axp.query.tables import _trace_rows
from pytest_axp.record.layout import RunPaths


def _update(update: dict) -> dict:
    return {"jsonrpc": "2.0", "method": "session/update",
            "params": {"sessionId": "s", "update": update}}


def _event(seq: int, kind: str, raw: dict) -> dict:
    return {"seq": seq, "ts_ns": 1_000 + seq, "kind": kind, "session_id": "s", "raw_json": raw}


TRACE = [
    _event(1, "initialize", {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                             "params": {"protocolVersion": 1}}),
    _event(2, "session/prompt", {"jsonrpc": "2.0", "id": 2, "method": "session/prompt",
                                 "params": {"sessionId": "s", "prompt": [
                                     {"type": "text", "text": "Make x."}]}}),
    _event(3, "tool_call", _update({
        "sessionUpdate": "tool_call", "toolCallId": "t1", "rawInput": {}, "title": "Terminal",
        "kind": "execute", "status": "pending", "_meta": {"claudeCode": {"toolName": "Bash"}}})),
    _event(4, "tool_call_update", _update({
        "sessionUpdate": "tool_call_update", "toolCallId": "t1",
        "rawInput": {"command": "touch x"}, "title": "touch x"})),
    _event(5, "tool_call_update", _update({
        "sessionUpdate": "tool_call_update", "toolCallId": "t1", "rawInput": {},
        "status": "completed", "rawOutput": "ok"})),
    _event(6, "agent_message_chunk", _update({
        "sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "Made "}})),
    _event(7, "usage_update", _update({"sessionUpdate": "usage_update", "used": 10})),
    _event(8, "agent_message_chunk", _update({
        "sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "x."}})),
    _event(9, "response", {"jsonrpc": "2.0", "id": 2, "result": {"stopReason": "end_turn"}}),
]


def test_acp_trace_rows(tmp_path):
    run = RunPaths(tmp_path / "exp-01ABC")
    trace = run.results("default").agent_trace
    trace.parent.mkdir(parents=True)
    trace.write_text("".join(json.dumps(e) + "\n" for e in TRACE))
    events, calls, messages = _trace_rows(run, "default")
    assert len(events) == len(TRACE)
    assert [(m["role"], m["text"]) for m in messages] == [("user", "Make x."),
                                                         ("agent", "Made x.")]
    (call,) = calls
    assert (call["tool_name"], call["title"], call["input"], call["status"], call["output"]) == (
        "Bash", "touch x", {"command": "touch x"}, "completed", "ok")
    assert call["updates"] == 2 and call["duration_ms"] == 2 / 1e6
