"""The OpenAI Responses API module: scripted replies as responses and SSE events, forwarded
streams and bodies read back, usage in the meter's shape, prices, and redaction of streamed
deltas."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_axp.gateway import ModelScript
from pytest_axp.gateway.apis import Call, Route
from pytest_axp.gateway.calls import Upstream
from pytest_axp.gateway.http import Request
from pytest_axp.gateway.meter import Meter, TokenUsage
from pytest_axp.gateway.pricing import OPENAI_PRICES, SONNET, cost_of, price_for_model
from pytest_axp.gateway.recorder import ApiRedactor
from pytest_axp.gateway.responses import RESPONSES
from pytest_axp.gateway.sse import SSEParser, encode_event

# codex's shell tool as codex-acp 0.16.0 declares it (trimmed)
EXEC = {"type": "function", "name": "exec_command", "strict": False,
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"},
                                                         "workdir": {"type": "string"}}}}
SCRIPT = ModelScript.from_yaml("""
turns:
  - content:
      - text: "let me look"
      - tool_use: {name: shell, input: {command: "echo hi > /workspace/x.txt"}}
  - text: done
usage: {input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 900}
""")


def call(body: dict[str, Any]) -> Call:
    raw = json.dumps(body).encode()
    return Call(1, Request("POST", "/v1/responses", "/v1/responses", [], raw), body,
                Route("POST", "/v1/responses"))


def reply_for(body: dict[str, Any]) -> Any:
    return SCRIPT.cursor().next_reply(body)


def test_a_scripted_turn_is_a_response_with_the_agents_own_tool() -> None:
    body = {"model": "gpt-5-codex", "tools": [EXEC], "input": []}
    answer = RESPONSES.render(call(body), reply_for(body))
    assert answer.events is None and answer.model == "gpt-5-codex"
    response = answer.message
    assert response is not None and response["status"] == "completed"
    text, fc = response["output"]
    assert text["type"] == "message" and text["content"][0]["text"] == "let me look"
    assert fc["type"] == "function_call" and fc["name"] == "exec_command"
    assert json.loads(fc["arguments"]) == {"cmd": "echo hi > /workspace/x.txt"}
    assert fc["call_id"] != fc["id"]
    # input includes the cached tokens, as OpenAI reports it
    assert answer.usage["input_tokens"] == 1000
    assert answer.usage["input_tokens_details"] == {"cached_tokens": 900}
    assert RESPONSES.tokens(answer.usage) == TokenUsage(input_tokens=100, output_tokens=20,
                                                        cache_read_tokens=900)


def test_a_stream_carries_the_same_response_and_reads_back_to_it() -> None:
    body = {"model": "gpt-5", "tools": [EXEC], "input": [], "stream": True}
    answer = RESPONSES.render(call(body), reply_for(body))
    assert answer.events is not None
    names = [name for name, _ in answer.events]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    assert names.count("response.output_item.added") == names.count(
        "response.output_item.done") == 2
    assert "response.output_text.delta" in names
    assert "response.function_call_arguments.delta" in names
    seqs = [data["sequence_number"] for _, data in answer.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # the deltas concatenate to the items' text and arguments
    text = "".join(d["delta"] for n, d in answer.events if n == "response.output_text.delta")
    args = "".join(d["delta"] for n, d in answer.events
                   if n == "response.function_call_arguments.delta")
    assert answer.message is not None
    assert text == answer.message["output"][0]["content"][0]["text"]
    assert args == answer.message["output"][1]["arguments"]
    # through the wire format, cut into small chunks, and back
    wire = b"".join(encode_event(n, d) for n, d in answer.events)
    parser, parsed = SSEParser(), []
    for i in range(0, len(wire), 7):
        parsed += parser.feed(wire[i:i + 7])
    parsed += parser.close()
    read = RESPONSES.read_stream([(n, json.loads(d)) for n, d in parsed])
    assert read.message == answer.message and read.error is None
    assert RESPONSES.tokens(read.usage) == RESPONSES.tokens(answer.usage)
    assert RESPONSES.read_body(answer.message).usage == answer.usage


def test_a_cut_stream_keeps_the_items_that_were_done() -> None:
    body = {"model": "gpt-5", "tools": [EXEC], "input": [], "stream": True}
    events = list(RESPONSES.render(call(body), reply_for(body)).events or ())
    cut = [e for e in events if e[0] != "response.completed"]
    read = RESPONSES.read_stream(cut)
    assert read.message is not None and len(read.message["output"]) == 2
    assert read.usage == {}
    failed = RESPONSES.read_stream([("response.failed", {
        "type": "response.failed", "response": {"id": "r", "error": {"code": "server_error"}}})])
    assert failed.error == {"code": "server_error"}
    assert RESPONSES.read_stream([("error", {"type": "error", "message": "x"})]).error is not None
    assert RESPONSES.read_body("not json").message is None


def test_usage_in_the_meters_shape_and_its_cost() -> None:
    usage = {"input_tokens": 1_000_000, "input_tokens_details": {"cached_tokens": 400_000},
             "output_tokens": 1_000_000}
    tokens = RESPONSES.tokens(usage)
    assert tokens == TokenUsage(input_tokens=600_000, output_tokens=1_000_000,
                                cache_read_tokens=400_000)
    # gpt-5: $1.25 input, $0.125 cached, $10 output per million
    assert cost_of("gpt-5", tokens) == pytest.approx(0.6 * 1.25 + 0.4 * 0.125 + 10.0)
    meter = Meter(max_cost_usd=5.0)
    meter.add("gpt-5", tokens)
    snap = meter.snapshot()
    assert (snap["input_tokens"], snap["cache_read_input_tokens"]) == (600_000, 400_000)
    assert snap["stopped_reason"] is not None and "max_cost_usd" in snap["stopped_reason"]
    # cached more than input (a broken report) never makes negative input
    assert RESPONSES.tokens({"input_tokens": 5, "input_tokens_details": {"cached_tokens": 9},
                             "output_tokens": None}) == TokenUsage(cache_read_tokens=5)


@pytest.mark.parametrize(("model", "row"), [
    ("gpt-5-codex", "gpt-5-codex"),
    ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
    ("gpt-5.1-codex-mini", "gpt-5.1-codex-mini"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("o4-mini", "o4-mini"),
    ("gpt-5.5", "gpt-5"),  # not listed: priced as codex's default family
])
def test_openai_models_have_their_own_prices(model: str, row: str) -> None:
    assert price_for_model(model) is OPENAI_PRICES[row]
    assert price_for_model("claude-sonnet-4-5") is SONNET


def test_errors_in_openais_shape_and_the_refusal() -> None:
    refusal = RESPONSES.error(402, "axp: run stopped")
    # codex gives up at once, showing the message, on a 400 only
    assert refusal.status == 400
    assert refusal.body["error"]["message"] == "axp: run stopped"
    assert refusal.body["error"]["code"] == "axp_refused"
    # a scripted error with the default (Messages) type gets OpenAI's name for it
    assert RESPONSES.error(429, "slow down", "rate_limit_error").body["error"]["type"] == (
        "rate_limit_exceeded")
    assert RESPONSES.error(500, "boom").body["error"]["type"] == "server_error"
    assert RESPONSES.error(400, "bad", "my_type").body["error"]["type"] == "my_type"


def test_side_requests_do_not_consume_a_turn() -> None:
    cursor = SCRIPT.cursor()
    side = cursor.next_reply({"model": "gpt-5", "input": [{"role": "user", "content": "t"}]})
    assert side.kind == "side"
    rendered = RESPONSES.render(call({"model": "gpt-5"}), side)
    assert rendered.message is not None and rendered.message["output"][0]["type"] == "message"
    assert cursor.next_reply({"model": "gpt-5", "tools": [EXEC]}).turn_index == 0


def test_openai_base_url_may_end_in_v1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    up = Upstream.of(RESPONSES)
    assert (up.url, up.key, up.default) == ("http://127.0.0.1:8080", "sk-x", False)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    assert Upstream.of(RESPONSES).default
    assert RESPONSES.upstream_headers("sk-x") == [("authorization", "Bearer sk-x")]


def test_a_secret_split_across_response_deltas_is_redacted() -> None:
    secret = "axp-run-SECRETTOKEN"
    script = ModelScript.from_data({"turns": [
        {"content": [{"text": f"token {secret} here"},
                     {"tool_use": {"name": "shell", "input": {"command": f"echo {secret}"}}}]}]})
    body = {"model": "gpt-5", "tools": [EXEC], "stream": True}
    answer = RESPONSES.render(call(body), script.cursor().next_reply(body))
    records = [{"event": n, "data": d} for n, d in answer.events or ()]
    deltas = [r["data"]["delta"] for r in records if r["event"].endswith(".delta")]
    assert not any(secret in d for d in deltas)  # split: no single delta holds it
    redactor = ApiRedactor([secret])
    out = redactor.events(records)
    text = redactor.dumps(out)  # as the recorder writes it (whole strings redacted there)
    assert secret not in text and "SECRETTOK" not in text
    joined = "".join(r["data"]["delta"] for r in out
                     if r["event"] == "response.output_text.delta")
    assert joined == "token [REDACTED] here"
    args = "".join(r["data"]["delta"] for r in out
                   if r["event"] == "response.function_call_arguments.delta")
    assert json.loads(args) == {"cmd": "echo [REDACTED]"}
