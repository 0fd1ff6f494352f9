"""The pure parts of the ACP agents: frames -> trace events, permission answers, outcome."""

from __future__ import annotations

import json
from types import SimpleNamespace

from pytest_axp.agents.acp import (
    FrameTracer,
    SessionState,
    exit_code_of,
    fill_outcome,
    frame_kind,
    permission_answer,
)
from pytest_axp.agents.acp_client import FROM_AGENT, TO_AGENT
from pytest_axp.gateway.script import consumes_turn
from pytest_axp.record.summary import AgentOutcome
from pytest_axp.record.trace import TraceWriter

TOOL_UPDATE = {"jsonrpc": "2.0", "method": "session/update", "params": {
    "sessionId": "s", "update": {"sessionUpdate": "tool_call_update", "toolCallId": "toolu_1",
                                 "rawInput": {"command": "ls"},
                                 "_meta": {"claudeCode": {"toolName": "Bash"}}}}}
PERMISSION = {"jsonrpc": "2.0", "id": 0, "method": "session/request_permission", "params": {
    "sessionId": "s", "toolCall": {"toolCallId": "toolu_1"},
    "options": [{"optionId": "allow-once", "kind": "allow_once"},
                {"optionId": "always", "kind": "allow_always"},
                {"optionId": "reject", "kind": "reject_once"}]}}


def test_frame_kinds():
    assert frame_kind(FROM_AGENT, TOOL_UPDATE, {}) == ("tool_call_update", "toolu_1")
    assert frame_kind(FROM_AGENT, PERMISSION, {}) == ("session/request_permission", "toolu_1")
    assert frame_kind(TO_AGENT, {"jsonrpc": "2.0", "id": 1, "method": "session/new",
                                 "params": {}}, {}) == ("session/new", None)
    assert frame_kind(FROM_AGENT, {"jsonrpc": "2.0", "id": 1, "result": {}}, {}) == (
        "response", None)
    assert frame_kind(FROM_AGENT, {"axp_stdout": "x"}, {})[0] == "agent_stdout"


def test_trace_keeps_the_frame_under_raw_json_with_direction_and_answered_method(tmp_path):
    trace = TraceWriter(session_id="run")
    trace.stream_to(tmp_path / "t.jsonl", lambda b: b.replace(b"ls", b"[REDACTED]"))
    tracer = FrameTracer(trace)
    tracer(TO_AGENT, {"jsonrpc": "2.0", "id": 3, "method": "session/prompt", "params": {}})
    tracer(FROM_AGENT, TOOL_UPDATE)
    tracer(FROM_AGENT, PERMISSION)
    tracer(TO_AGENT, {"jsonrpc": "2.0", "id": 0, "result": {}})
    tracer(FROM_AGENT, {"jsonrpc": "2.0", "id": 3, "result": {"stopReason": "end_turn"}})
    events = trace.events
    assert events[1]["raw_json"] is TOOL_UPDATE
    assert events[1]["raw_json"]["params"]["update"]["_meta"]["claudeCode"]["toolName"] == "Bash"
    assert events[1]["tool_call_id"] == "toolu_1" and events[1]["direction"] == FROM_AGENT
    assert events[3]["kind"] == "response" and events[3]["method"] == "session/request_permission"
    assert events[4]["method"] == "session/prompt"
    # Streamed as they came, redacted on the way; the in-memory events are not.
    written = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in written] == [0, 1, 2, 3, 4]
    assert written[1]["raw_json"]["params"]["update"]["rawInput"]["command"] == "[REDACTED]"
    trace.close_stream()


def test_permission_prefers_allow_always_and_cancels_when_stopping():
    assert permission_answer(PERMISSION["params"], stopping=False) == {
        "outcome": {"outcome": "selected", "optionId": "always"}}
    once = {"options": [{"optionId": "y", "kind": "allow_once"}]}
    assert permission_answer(once, stopping=False)["outcome"]["optionId"] == "y"
    assert permission_answer(PERMISSION["params"], stopping=True) == {
        "outcome": {"outcome": "cancelled"}}
    assert permission_answer({"options": []}, stopping=False)["outcome"]["outcome"] == \
        "cancelled"


def _handle(**kw):
    base = dict(turns=3, input_tokens=7, output_tokens=8, cache_read_input_tokens=9,
                cache_creation_input_tokens=10, cost_usd=0.5)
    return SimpleNamespace(**{**base, **kw})


def test_outcome_from_the_prompt_result_and_usage_update():
    state = SessionState(prompt_result={"stopReason": "end_turn", "usage": {
        "inputTokens": 20, "outputTokens": 24, "cachedReadTokens": 5,
        "cachedWriteTokens": 6}})
    state.note_update({"update": {"sessionUpdate": "usage_update",
                                  "cost": {"amount": 0.00084, "currency": "USD"}}})
    outcome = AgentOutcome()
    fill_outcome(outcome, state, _handle())
    assert (outcome.input_tokens, outcome.output_tokens, outcome.cache_read_input_tokens,
            outcome.cache_creation_input_tokens) == (20, 24, 5, 6)
    assert outcome.cost_usd == 0.00084 and outcome.turns == 3
    assert exit_code_of(state, 0) == 0


def test_outcome_falls_back_to_the_gateway_when_the_session_was_cut():
    state = SessionState(timed_out=True, stopped_reason="max_time_seconds exceeded: 5")
    outcome = AgentOutcome()
    fill_outcome(outcome, state, _handle())
    assert (outcome.input_tokens, outcome.cost_usd, outcome.turns) == (7, 0.5, 3)
    assert exit_code_of(state, None) == 1
    assert exit_code_of(SessionState(), 137) == 137
    stopped = SessionState(prompt_result={"stopReason": "cancelled"})
    assert exit_code_of(stopped, 0) == 1
    limited = SessionState(prompt_result={"stopReason": "end_turn"},
                           stopped_reason="max_turns reached: 2")
    assert exit_code_of(limited, 0) == 1
    # The prompt answered with an error after a refused turn, and the harness stopped the
    # adapter: 143 is ours, not the adapter's.
    refused = SessionState(error="session/prompt failed: Internal error", killed=True,
                           stopped_reason="max_turns reached: 2")
    assert exit_code_of(refused, 143) == 1
    assert exit_code_of(SessionState(killed=True), 143) == 1


def test_suggestion_mode_request_consumes_no_turn():
    tools = [{"name": "Bash"}]
    main = {"tools": tools, "messages": [{"role": "user", "content": "do it"}]}
    side = {"tools": tools, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "[SUGGESTION MODE: suggest what the user might type]"}]}]}
    assert consumes_turn(main) and not consumes_turn(side)
    assert not consumes_turn({"messages": [{"role": "user", "content": "title?"}]})
