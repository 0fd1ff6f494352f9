"""The Gemini API's translation: scripted replies as generateContent answers and streams,
side calls, errors, forwarded streams read back, usage, prices, and redaction of streamed text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_axp.gateway.apis import Call, Route
from pytest_axp.gateway.gemini import GEMINI, model_of_path, side_text, tokens_of
from pytest_axp.gateway.http import Request
from pytest_axp.gateway.pricing import TokenUsage, cost_of
from pytest_axp.gateway.recorder import ApiRedactor
from pytest_axp.gateway.script import SIDE_TEXT, ModelScript

STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
WHOLE = "/v1beta/models/gemini-2.5-flash:generateContent"

# As Gemini CLI 0.61.0 declares its shell tool (shortened), and an older declaration form.
SHELL_DECL = {"name": "run_shell_command", "parametersJsonSchema": {
    "type": "object", "properties": {"command": {"type": "string"},
                                     "description": {"type": "string"}}}}
WRITE_DECL = {"name": "write_file", "parameters": {
    "type": "OBJECT", "properties": {"file_path": {"type": "STRING"},
                                     "content": {"type": "STRING"}}}}
TOOLS = [{"functionDeclarations": [WRITE_DECL, SHELL_DECL]}]


def call(path: str, body: dict[str, Any], query: str = "?alt=sse") -> Call:
    raw = json.dumps(body).encode()
    request = Request("POST", path + query, path, [], raw)
    route = next(r for r in GEMINI.routes if r.matches("POST", path))
    return Call(1, request, body, route)


def reply_for(script: str, body: dict[str, Any]) -> Any:
    return ModelScript.from_yaml(script).cursor().next_reply(body)


def test_routes_claim_the_gemini_paths_only() -> None:
    def claimed(path: str) -> Route | None:
        return next((r for r in GEMINI.routes if r.matches("POST", path)), None)

    assert claimed(STREAM) and claimed(WHOLE) and claimed("/v1/models/m:generateContent")
    assert claimed("/v1beta/tunedModels/my-tune:generateContent")
    count = claimed("/v1beta/models/gemini-2.5-pro:countTokens")
    assert count is not None and not count.model_call
    assert claimed("/v1/messages") is None and claimed("/v1beta/models:generateContent") is None
    assert model_of_path("/v1beta/models/gemini-2.5-pro:streamGenerateContent") == "gemini-2.5-pro"
    assert model_of_path("/v1beta/models/a%2Db:generateContent") == "a-b"


def test_neutral_tool_calls_become_the_offered_functions() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "go"}]}], "tools": TOOLS}
    script = """
turns:
  - content:
      - text: "writing"
      - tool_use: {name: write_file, input: {path: /w/a.txt, content: hi}}
      - tool_use: {name: shell, input: {command: ls -l}}
usage: {input_tokens: 10, output_tokens: 4}
"""
    answer = GEMINI.render(call(WHOLE, body, ""), reply_for(script, body))
    assert answer.events is None and answer.model == "gemini-2.5-flash"
    cand = answer.message["candidates"][0]
    assert cand["finishReason"] == "STOP" and cand["content"]["role"] == "model"
    assert cand["content"]["parts"] == [
        {"text": "writing"},
        {"functionCall": {"name": "write_file",
                          "args": {"file_path": "/w/a.txt", "content": "hi"}}},
        {"functionCall": {"name": "run_shell_command", "args": {"command": "ls -l"}}},
    ]
    assert answer.usage == {"promptTokenCount": 10, "candidatesTokenCount": 4,
                            "totalTokenCount": 14}


def test_a_stream_is_data_only_chunks_ending_with_finish_and_usage() -> None:
    body = {"contents": [], "tools": TOOLS}
    script = """
turns:
  - content: [{text: "hello world"}, {tool_use: {name: shell, input: {command: pwd}}}]
usage: {input_tokens: 30, output_tokens: 5, cache_read_input_tokens: 20,
        cache_creation_input_tokens: 7}
"""
    answer = GEMINI.render(call(STREAM, body), reply_for(script, body))
    assert answer.events is not None
    assert all(name is None for name, _ in answer.events)
    chunks = [data for _, data in answer.events]
    texts = [p.get("text") for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert texts[:2] == ["hello ", "world"] and len(chunks) == 3
    assert chunks[2]["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "run_shell_command", "args": {"command": "pwd"}}}]
    assert [("finishReason" in c["candidates"][0], "usageMetadata" in c) for c in chunks] == [
        (False, False), (False, False), (True, True)]
    # cached tokens are inside the prompt count; cache writes are ordinary prompt tokens here
    assert chunks[2]["usageMetadata"] == {"promptTokenCount": 57, "candidatesTokenCount": 5,
                                          "totalTokenCount": 62, "cachedContentTokenCount": 20}
    assert len({c["responseId"] for c in chunks}) == 1
    # the stream read back is the whole answer
    assert GEMINI.read_stream([("message", c) for c in chunks]).message == answer.message


def test_side_calls_get_answers_that_change_nothing() -> None:
    def json_call(*required: str) -> dict[str, Any]:
        schema = {"type": "OBJECT", "properties": {n: {"type": "STRING"} for n in required},
                  "required": list(required)}
        return {"contents": [], "generationConfig": {
            "responseMimeType": "application/json", "responseJsonSchema": schema}}

    router = json.loads(side_text(json_call("complexity_reasoning", "complexity_score")))
    assert isinstance(router["complexity_score"], int) and 1 <= router["complexity_score"] <= 100
    assert json.loads(side_text(json_call("reasoning", "next_speaker")))["next_speaker"] == "user"
    loop = json.loads(side_text(json_call("unproductive_state_analysis",
                                          "unproductive_state_confidence")))
    assert loop["unproductive_state_confidence"] == 0
    assert side_text(json_call("corrected_string_escaping")) == "{}"
    assert side_text({"contents": [{"parts": [{"text": "summarise"}]}]}) == SIDE_TEXT

    body = json_call("reasoning", "next_speaker")
    reply = reply_for("turns: [{text: main}]\nside_usage: {input_tokens: 3, output_tokens: 1}",
                      body)
    assert reply.kind == "side"
    answer = GEMINI.render(call(WHOLE, body, ""), reply)
    text = answer.message["candidates"][0]["content"]["parts"][0]["text"]
    assert json.loads(text)["next_speaker"] == "user"
    assert answer.usage["promptTokenCount"] == 3
    assert GEMINI.side_answer(call("/v1beta/models/m:countTokens", body, ""))["totalTokens"] > 0


def test_errors_in_googles_shape() -> None:
    refusal = GEMINI.error(402, "axp: run stopped")
    assert refusal.status == 402 and refusal.body == {"error": {
        "code": 402, "message": "axp: run stopped", "status": "FAILED_PRECONDITION"}}
    # a script's default (Messages-style) type becomes Google's status name; its own stays
    scripted = ModelScript.from_yaml("turns: [{error: {status: 429, message: slow}}]")
    spec = scripted.turns[0].error
    assert spec is not None
    assert GEMINI.error(429, "slow", spec.type).body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert GEMINI.error(503, "x", "UNAVAILABLE").body["error"]["status"] == "UNAVAILABLE"
    assert GEMINI.error(401, "who").body["error"]["status"] == "UNAUTHENTICATED"
    assert GEMINI.error(418, "odd").body["error"]["status"] == "FAILED_PRECONDITION"


def test_a_forwarded_stream_is_assembled() -> None:
    chunks: list[Any] = [
        {"candidates": [{"content": {"role": "model", "parts": [
            {"text": "thinking ", "thought": True}]}, "index": 0}],
         "usageMetadata": {"promptTokenCount": 100}},
        {"candidates": [{"content": {"role": "model", "parts": [
            {"text": "more", "thought": True}, {"text": "Hel"}]}, "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}, "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "glob", "args": {"pattern": "*"}}}]},
            "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 7,
                           "thoughtsTokenCount": 3, "cachedContentTokenCount": 40},
         "modelVersion": "gemini-2.5-pro", "responseId": "r1"},
        "not json",
    ]
    answer = GEMINI.read_stream([("message", c) for c in chunks])
    parts = answer.message["candidates"][0]["content"]["parts"]
    assert parts == [{"text": "thinking more", "thought": True}, {"text": "Hello"},
                     {"functionCall": {"name": "glob", "args": {"pattern": "*"}}}]
    assert answer.message["candidates"][0]["finishReason"] == "STOP"
    assert answer.model == "gemini-2.5-pro" and answer.usage["candidatesTokenCount"] == 7
    assert GEMINI.tokens(answer.usage) == TokenUsage(input_tokens=60, output_tokens=10,
                                                     cache_read_tokens=40)
    # a stream asked without alt=sse is a JSON array of the same chunks
    assert GEMINI.read_body(chunks).message == answer.message
    failed = GEMINI.read_stream([("message", {"error": {"code": 500, "message": "boom"}})])
    assert failed.error == {"code": 500, "message": "boom"} and failed.message is None
    whole = GEMINI.read_body({"candidates": [], "usageMetadata": {"promptTokenCount": 2},
                              "modelVersion": "gemini-2.0-flash"})
    assert whole.usage == {"promptTokenCount": 2} and whole.model == "gemini-2.0-flash"
    assert GEMINI.read_body("text").message is None


def test_usage_to_tokens() -> None:
    assert tokens_of({}) == TokenUsage()
    assert tokens_of({"promptTokenCount": 50, "toolUsePromptTokenCount": 5,
                      "candidatesTokenCount": 8, "cachedContentTokenCount": 10,
                      "totalTokenCount": 63}) == TokenUsage(
        input_tokens=45, output_tokens=8, cache_read_tokens=10)
    # a cached count above the prompt count is clamped, never negative input
    assert tokens_of({"promptTokenCount": 5, "cachedContentTokenCount": 9}).input_tokens == 0
    assert tokens_of({"promptTokenCount": True, "candidatesTokenCount": "7"}) == TokenUsage()


@pytest.mark.parametrize(("model", "input_m", "output_m", "cached_m"), [
    ("gemini-2.5-flash", 0.30, 2.50, 0.03),
    ("models/gemini-2.5-flash-lite-preview-06-17", 0.10, 0.40, 0.01),
    ("gemini-2.5-pro", 1.25, 10.0, 0.125),
    ("gemini-2.0-flash-001", 0.10, 0.40, 0.025),
    ("gemini-3-pro-preview", 2.0, 12.0, 0.20),
    ("gemini-3.8-flash", 0.50, 3.0, 0.05),  # newer than the table: its family's newest price
    ("gemini-3.5-flash-lite", 0.10, 0.40, 0.01),
])
def test_gemini_prices(model: str, input_m: float, output_m: float, cached_m: float) -> None:
    tokens = TokenUsage(input_tokens=10_000, output_tokens=20_000, cache_read_tokens=30_000)
    assert cost_of(model, tokens) == pytest.approx(
        (input_m + 2 * output_m + 3 * cached_m) / 100)


def test_pro_prompts_over_200k_tokens_cost_more() -> None:
    short = TokenUsage(input_tokens=150_000, output_tokens=1_000, cache_read_tokens=50_000)
    long = TokenUsage(input_tokens=150_000, output_tokens=1_000, cache_read_tokens=50_001)
    assert cost_of("gemini-2.5-pro", short) == pytest.approx(
        (150_000 * 1.25 + 1_000 * 10 + 50_000 * 0.125) / 1e6)
    assert cost_of("gemini-2.5-pro", long) == pytest.approx(
        (150_000 * 2.5 + 1_000 * 15 + 50_001 * 0.25) / 1e6)
    # flash has one tier; Claude prices are untouched
    assert cost_of("gemini-2.5-flash", TokenUsage(input_tokens=300_000)) == pytest.approx(0.09)
    assert cost_of("claude-sonnet-4-5", TokenUsage(input_tokens=300_000)) == pytest.approx(0.9)


def test_a_secret_split_across_streamed_text_is_redacted() -> None:
    def chunk(*parts: dict[str, Any]) -> dict[str, Any]:
        return {"event": None, "data": {"candidates": [
            {"content": {"role": "model", "parts": list(parts)}, "index": 0}]}}

    events = [chunk({"text": "key is my-run-"}), chunk({"text": "secret ok"}),
              chunk({"functionCall": {"name": "x", "args": {}}}),
              chunk({"text": "a-th", "thought": True}), chunk({"text": "ought", "thought": True})]
    out = ApiRedactor(["my-run-secret"]).events(events)
    texts = [p.get("text") for e in out for p in e["data"]["candidates"][0]["content"]["parts"]]
    assert "".join(t for t in texts[:2] if t) == "key is [REDACTED] ok"
    assert "my-run" not in json.dumps(out)
    # the thought stream, with no secret, is left as it was
    assert texts[3:] == ["a-th", "ought"] and events[0]["data"]["candidates"][0]["content"][
        "parts"][0]["text"] == "key is my-run-"
    assert ApiRedactor(["elsewhere-secret"]).events(events) is events
